"""Writing cut-out videos with alpha (and grey mask videos) with PyAV, atomically.

=========  ==============================  ===========================  ===============================
format     video                           quality 0-100 (100 = best)   audio
=========  ==============================  ===========================  ===============================
``webm``   VP9 ``yuva420p`` (libvpx-vp9)   CRF ``63 (100 - q) / 100``,  Opus 48 kHz
                                           100 = lossless VP9
``mov``    ProRes 4444 ``yuva444p10le``    90+: 4444 XQ, below: 4444    PCM 16-bit
           (prores_ks), 16-bit alpha
``webp``   animated WebP (libwebp_anim)    100 = lossless, else lossy   none (WebP has no audio)
                                           at that quality
``png``    a folder of numbered RGBA PNGs  always lossless              none (a folder of images)
=========  ==============================  ===========================  ===============================

VP9's CRF runs 0 (best, largest) to 63 (worst, smallest); 4:2:0 halves the colour resolution, and odd sizes are
fine (the chroma planes round up; nothing is padded). YUV formats are converted with BT.709 limited range and
tagged so. A grey mask video (:meth:`VideoWriter.write` with ``[b, H, W]``) uses the same formats without alpha.
PyAV is imported inside the functions: the pack imports without it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from torch import Tensor

from .checks import InputError, check_number, fail
from .video_audio import AudioFeed
from .video_read import require_av


@dataclass(frozen=True)
class VideoFormat:
    """One output format: file extension, FFmpeg muxer and encoders, pixel formats with and without alpha."""

    ext: str  # "" for the PNG folder
    muxer: str | None
    codec: str | None
    alpha_pix: str
    grey_pix: str
    audio: str | None  # audio encoder; None: the format holds no audio
    deep: bool = False  # fed 16 bits per channel (ProRes is 10-bit)


FORMATS = {
    "webm": VideoFormat(".webm", "webm", "libvpx-vp9", "yuva420p", "yuv420p", "libopus"),
    "mov": VideoFormat(".mov", "mov", "prores_ks", "yuva444p10le", "yuv444p10le", "pcm_s16le", deep=True),
    "webp": VideoFormat(".webp", "webp", "libwebp_anim", "bgra", "bgra", None),
    "png": VideoFormat("", None, None, "RGBA", "L", None),
}
DEFAULT_QUALITY = 80
PNG_FRAME = "frame_{:06}.png"  # names inside a PNG sequence folder, from frame_000001.png
NTSC = (24, 30, 48, 60, 120)  # rates whose x1000/1001 form a typed 23.976 / 29.97 / ... stands for


def vp9_crf(quality: int) -> int:
    """Quality 0-100 (100 = best) as libvpx-vp9's CRF 0-63 (0 = best); 80 -> 13."""
    return round(63 * (100 - quality) / 100)


def codec_options(fmt: str, quality: int) -> dict[str, str]:
    """The encoder options of ``fmt`` (a key of :data:`FORMATS`) at ``quality`` 0-100 (100 = best)."""
    if fmt == "webm":
        if quality >= 100:
            return {"lossless": "1", "row-mt": "1"}
        return {"crf": str(vp9_crf(quality)), "b": "0", "row-mt": "1", "cpu-used": "2"}
    if fmt == "mov":  # ProRes is a fixed-rate intermediate: two profiles carry alpha
        return {"profile": "4444xq" if quality >= 90 else "4444", "vendor": "apl0"}
    if fmt == "webp":
        return {"lossless": "1"} if quality >= 100 else {"lossless": "0", "quality": str(quality)}
    return {}


def as_rate(fps: float | Fraction) -> Fraction:
    """``fps`` as an exact rate: a Fraction as given; 23.976, 29.97, 59.94... as 24000/1001, 30000/1001...;
    other numbers to 1/1000 (as core's Save WEBM)."""
    if isinstance(fps, Fraction):
        return fps
    for n in NTSC:
        if abs(fps - n * 1000 / 1001) < 0.005:
            return Fraction(n * 1000, 1001)
    return Fraction(round(fps * 1000), 1000)


def place_new(temp: str, path: str) -> str:
    """Give ``temp`` (a file or a folder) the name ``path``, never replacing anything: ``FileExistsError`` if
    ``path`` exists. Files are hard-linked (atomic and exclusive); a folder is renamed after a check (a name
    taken in between by an empty folder is replaced on POSIX, refused on Windows)."""
    if os.path.lexists(path):
        raise FileExistsError(path)
    if os.path.isdir(temp):
        os.rename(temp, path)
        return path
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, exFAT, some shares): claim the name, then move onto it
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(temp, path)
        return path
    os.unlink(temp)
    return path


def _replace(temp: str, path: str) -> str:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    os.replace(temp, path)
    return path


def _remove(path: str | None) -> None:
    if path is None:
        return
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


class VideoWriter:
    """Write frames to a video file (or PNG folder), atomically: a hidden temporary beside ``path`` gets the name
    only when the block ends without an error; on an error or KeyboardInterrupt it is removed, no partial file.

    Args:
        path: the file to write (``.webm`` / ``.mov`` / ``.webp``: the extension is not added) or, for ``png``,
            the folder to create.
        fmt: ``webm``, ``mov``, ``webp`` or ``png`` (see the module docstring).
        fps: > 0, frames per second; a float is made exact by :func:`as_rate`.
        size: ``(width, height)``; ``None`` takes the first frames' size.
        quality: 0-100, 100 = best (lossless where the format can); mapped per format as in the module docstring.
        audio: ``None``; a media file whose first audio stream is re-encoded (``webm``: Opus, ``mov``: PCM); or
            ComfyUI's AUDIO ``{"waveform": [1, C, T] tensor, "sample_rate": int}``. Trimmed to the video's
            length, starting with the first frame. ``webp`` / ``png`` hold no audio: an error.
        time_base: the tick of the ``pts`` given to :meth:`write` (e.g. :class:`VideoInfo`'s), default ``1/fps``.
        place: ``place(temp, path) -> final path`` names the finished temporary; default :func:`place_new`
            (never overwrites: ``FileExistsError``), or replacing when ``overwrite``.
        metadata: text entries stored in the container (WebM / MOV tags; WebP EXIF as core's Save Animated
            WEBP; the first PNG's text chunks).
    """

    def __init__(self, path: str | os.PathLike, fmt: str = "webm", fps: float | Fraction = 24.0,
                 size: tuple[int, int] | None = None, quality: int = DEFAULT_QUALITY, audio: object = None, *,
                 time_base: Fraction | None = None, overwrite: bool = False,
                 place: Callable[[str, str], str] | None = None, metadata: Mapping[str, str] | None = None):
        if fmt not in FORMATS:
            fail("format", f"{fmt!r} is not one of {', '.join(FORMATS)}.")
        check_number(float(fps) if isinstance(fps, Fraction) else fps, "fps", low=1e-3)
        check_number(quality, "quality", 0, 100, integer=True)
        if size is not None and (len(size) != 2 or min(size) < 1):
            fail("size", f"expected (width, height) in pixels, got {size!r}.")
        if audio is not None and FORMATS[fmt].audio is None:
            fail("audio", f"{fmt} holds no audio track; choose webm or mov to keep the sound, or leave audio out.")
        self.path, self.fmt, self.spec = os.fspath(path), fmt, FORMATS[fmt]
        self.rate = as_rate(fps)
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.rate
        self.size, self.quality, self.audio_source = size, quality, audio
        self.place = place or (_replace if overwrite else place_new)
        self.metadata = dict(metadata or {})
        self.frames, self.grey = 0, None  # frames written; grey: mask frames (set by the first write)
        self._temp = self._container = self._stream = self._audio = None
        self._end = 0  # the end of the last frame written, in time_base ticks

    def __enter__(self) -> VideoWriter:
        folder = os.path.dirname(os.path.abspath(self.path))
        self._temp = os.path.join(folder, f".cleancut-{uuid.uuid4().hex}.tmp{self.spec.ext}")
        if self.spec.muxer is None:
            os.mkdir(self._temp)
            return self
        options = {"loop": "0"} if self.fmt == "webp" else {}  # loop forever, as core's Save Animated WEBP
        if self.fmt == "mov" and self.metadata:
            options["movflags"] = "use_metadata_tags"  # keep keys QuickTime does not define
        try:
            self._container = require_av().open(self._temp, "w", format=self.spec.muxer, options=options)
            for key, text in self.metadata.items():
                self._container.metadata[key] = text
        except BaseException:  # __exit__ is not called when __enter__ fails
            self.abort()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frames: Tensor, pts: list[int | None] | None = None) -> None:
        """Append ``frames``: IMAGE ``[b, H, W, 4]`` (RGB with straight alpha; 3 channels: opaque), or a grey MASK
        ``[b, H, W]`` for a mask video (every write of one file the same kind), values in 0..1 (clamped).
        ``pts``: each frame's timestamp in ``time_base`` ticks (kept as given), or ``None`` for constant fps."""
        if self._temp is None:
            raise RuntimeError("VideoWriter.write outside its 'with' block.")
        self._check_frames(frames, pts)
        if self.spec.muxer is None:
            self._write_png(frames)
            return
        if self._stream is None:
            self._open_streams()
        step = round(1 / (self.rate * self.time_base)) or 1  # ticks per frame at the nominal rate
        for i, array in enumerate(_pixels(frames, self.grey, self.spec.deep, rgba=True)):
            tick = pts[i] if pts is not None and pts[i] is not None else self._end
            self._encode(array, tick)
            self._end = tick + step
        if self._audio is not None:
            self._audio.feed(float(self._end * self.time_base))

    def _check_frames(self, frames: Tensor, pts: list | None) -> None:
        """Refuse frames of another kind or size than those before; set ``size`` and ``grey`` from the first."""
        if not isinstance(frames, Tensor):
            fail("frames", f"expected a tensor, got {type(frames).__name__}.", InputError)
        grey = frames.ndim == 3
        if frames.ndim not in (3, 4) or (not grey and frames.shape[-1] not in (3, 4)):
            fail("frames", f"expected IMAGE [b, H, W, 3|4] or MASK [b, H, W], got {tuple(frames.shape)}.", InputError)
        if self.grey is not None and grey != self.grey:
            fail("frames", "mixes masks and images in one video; write one kind per file.", InputError)
        size = (frames.shape[2], frames.shape[1])
        if self.size is not None and size != tuple(self.size):
            fail("frames", f"size {size[0]}x{size[1]} differs from the video's {self.size[0]}x{self.size[1]}; every "
                 "frame of a video has one size.", InputError)
        if pts is not None and len(pts) != frames.shape[0]:
            fail("pts", f"{len(pts)} timestamps for {frames.shape[0]} frames.", InputError)
        self.size, self.grey = size, grey

    def close(self) -> str:
        """Finish the file and give it its name; returns the final path (also in ``self.path``)."""
        try:
            if self.frames == 0:
                fail("frames", "no frame was written; a video needs at least one.", InputError)
            if self._container is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
                if self._audio is not None:
                    self._audio.finish(float(self._end * self.time_base))
                self._container.close()
                self._container = None
                if self.fmt == "webp" and self.metadata:  # FFmpeg's WebP muxer writes no tags
                    add_webp_exif(self._temp, self.metadata, self.size, not self.grey)
            self.path = self.place(self._temp, self.path)
        except BaseException:
            self.abort()
            raise
        self._temp = None
        return self.path

    def abort(self) -> None:
        """Drop everything written: the temporary file or folder is removed, ``path`` is left as it was."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # a half-written file may not close cleanly; it is deleted next
                pass
            self._container = None
        if self._audio is not None:
            self._audio.close()
        _remove(self._temp)
        self._temp = None

    def _open_streams(self) -> None:
        av, spec = require_av(), self.spec
        stream = self._container.add_stream(spec.codec, rate=self.rate, options=codec_options(self.fmt, self.quality))
        stream.width, stream.height = self.size
        stream.pix_fmt = spec.grey_pix if self.grey else spec.alpha_pix
        ctx = stream.codec_context
        ctx.time_base = self.time_base
        if stream.pix_fmt.startswith("yuv"):  # what _encode converts to, stated for players
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1  # BT.709
            ctx.color_range = 1  # limited ("MPEG")
        ctx.thread_type = "AUTO"
        self._stream = stream
        if self.audio_source is not None:
            self._audio = AudioFeed(av, self._container, spec.audio, self.audio_source)

    def _encode(self, array: np.ndarray, tick: int) -> None:
        av, pix = require_av(), self._stream.pix_fmt
        frame = av.VideoFrame.from_ndarray(array, format="rgba64le" if self.spec.deep else "rgba")
        if pix.startswith("yuv"):
            frame = frame.reformat(format=pix, dst_colorspace="itu709", dst_color_range="MPEG")
        else:
            frame = frame.reformat(format=pix)
        frame.pts, frame.time_base = tick, self.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def _write_png(self, frames: Tensor) -> None:
        for array in _pixels(frames, frames.ndim == 3, False):
            info = None
            if self.frames == 0 and self.metadata:
                info = PngInfo()
                for key, text in self.metadata.items():
                    info.add_text(key, text)
            mode = "L" if array.ndim == 2 else "RGBA"
            name = os.path.join(self._temp, PNG_FRAME.format(self.frames + 1))
            Image.fromarray(array, mode).save(name, format="PNG", compress_level=4, pnginfo=info)
            self.frames += 1


def add_webp_exif(path: str, metadata: Mapping[str, str], size: tuple[int, int], alpha: bool) -> None:
    """Store ``metadata`` in the WebP file at ``path`` as core's Save Animated WEBP does: EXIF entries
    ``"key:value"`` from tag 0x0110 (Model) downwards, in an ``EXIF`` chunk after the frames, flagged in the
    VP8X header (added for a simple one-frame file: ``size`` is the canvas, ``alpha`` its alpha flag)."""
    exif = Image.Exif()
    for i, (key, text) in enumerate(metadata.items()):
        exif[0x0110 - i] = f"{key}:{text}"
    payload = exif.tobytes()
    payload = payload[6:] if payload.startswith(b"Exif\x00\x00") else payload  # WebP holds the bare TIFF data
    chunk = b"EXIF" + len(payload).to_bytes(4, "little") + payload + b"\x00" * (len(payload) % 2)
    with open(path, "r+b") as f:
        head = f.read(21)
        if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
            return
        if head[12:16] == b"VP8X":  # an animation: flag and append, the frames stay where they are
            f.seek(20)
            f.write(bytes([head[20] | 0x08]))
            f.seek(0, os.SEEK_END)
            f.write(chunk)
        else:  # one frame as a simple file (VP8 / VP8L): small, rewritten with a VP8X header
            f.seek(12)
            body = f.read()
            flags = 0x08 | (0x10 if alpha else 0)
            vp8x = (b"VP8X" + (10).to_bytes(4, "little") + bytes([flags, 0, 0, 0]) +
                    (size[0] - 1).to_bytes(3, "little") + (size[1] - 1).to_bytes(3, "little"))
            f.seek(12)
            f.write(vp8x + body + chunk)
        total = f.tell() - 8
        f.seek(4)
        f.write(total.to_bytes(4, "little"))


def _pixels(frames: Tensor, grey: bool, deep: bool, rgba: bool = False) -> Iterator[np.ndarray]:
    """Each frame as a NumPy array: uint8 (uint16 if ``deep``), rounded; ``[H, W, 4]`` RGBA (RGB: opaque), or
    ``[H, W]`` for grey unless ``rgba`` (then R = G = B, opaque: swscale's grey-to-YUV path ignores the BT.709
    matrix and shifts grey levels by up to 4, its RGB path is exact to a level)."""
    scale, dtype = (65535, torch.int32) if deep else (255, torch.uint8)
    x = frames.detach().float().clamp(0, 1).mul(scale).round_().to(dtype).cpu()  # one chunk at a time
    if grey and rgba:
        x = x.unsqueeze(-1).expand(*x.shape, 3)
    if x.ndim == 4 and x.shape[-1] == 3:
        x = torch.cat([x, torch.full_like(x[..., :1], scale)], dim=-1)  # RGB: opaque
    out = x.numpy().astype(np.uint16) if deep else x.numpy()
    yield from out
