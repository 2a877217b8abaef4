"""Reading video files with PyAV: what a file holds (:func:`probe`), whether it is a video (:func:`is_video`), and its
frames upright, with alpha, in chunks of bounded size (:func:`read_frames`).

PyAV is imported inside the functions: the pack imports without it (ComfyUI ships it; the CLI needs it for video).
Alpha: a VP9 WebM with alpha stores it beside the colour (Matroska BlockAdditional, ``alpha_mode`` 1), which
FFmpeg's native ``vp9`` decoder ignores; it is decoded with ``libvpx-vp9`` instead. ProRes 4444, PNG / FFV1 / QT
RLE and other formats with an alpha plane keep it as well.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from .checks import InputError, fail
from .runtime import PIXELS_PER_CHUNK

log = logging.getLogger("cleancut")

# Demuxers of still and animated images: utils/decode.py reads those files (GIF / WebP / APNG frames included)
IMAGE_DEMUXERS = ("image2", "image2pipe", "gif", "apng", "webp", "ico", "tga", "svg")
ALPHA_DECODERS = {"vp9": "libvpx-vp9", "vp8": "libvpx"}  # FFmpeg's native VP8 / VP9 decoders drop the alpha
# Video names read in folder scans (besides imageio's image names); a file named explicitly is read by content
EXTENSIONS = (".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
              ".wmv", ".flv", ".ogv", ".3gp", ".mxf")


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found in a video file.

    Attributes:
        path: the file. width, height: the upright frame size (after ``rotation``), in pixels.
        frames: the frame count when the container states it (MP4 / MOV do, WebM / MKV do not), else ``None``.
        frame_estimate: ``frames``, or ``duration * fps`` rounded (for a progress bar; may be off by a few).
        fps: the average frame rate, exact (``Fraction(30000, 1001)`` for 29.97).
        rotation: the display rotation in degrees counter-clockwise (0, 90, 180 or -90), as PyAV reports it;
            :func:`read_frames` applies it. duration: seconds, or ``None`` if unknown.
        time_base: seconds per tick of the frame timestamps :func:`read_frames` returns.
        has_audio: the file has an audio stream. has_alpha: the frames carry alpha (decoded as RGBA).
        codec: the video codec (``"h264"``, ``"vp9"``, ``"prores"``...). pix_fmt: as decoded.
    """

    path: str
    width: int
    height: int
    frames: int | None
    frame_estimate: int
    fps: Fraction
    rotation: int
    duration: float | None
    time_base: Fraction
    has_audio: bool
    has_alpha: bool
    codec: str
    pix_fmt: str


def require_av():
    """The ``av`` module, or a RuntimeError that says how to install it."""
    try:
        import av
    except ImportError as exc:  # the environment, not the input
        raise RuntimeError("reading and writing video needs PyAV: pip install 'av>=14.2.0' (ComfyUI ships it)."
                           ) from exc
    return av


def open_container(path: str | os.PathLike) -> object:
    """``av.open(path)`` for reading, or :class:`InputError` naming the file (missing, unreadable, not a media file)."""
    av = require_av()
    if not os.path.isfile(path):
        fail(str(path), "no such file.", InputError)
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        fail(str(path), f"not a readable video (corrupt, truncated or an unsupported format: {exc}).", InputError)


def _video_stream(container, path):
    if not container.streams.video:
        fail(str(path), "has no video stream (an audio file?); give a video file.", InputError)
    return container.streams.video[0]


def is_video(path: str | os.PathLike) -> bool:
    """True when PyAV opens ``path`` and finds a video stream in a video container (decided by content, not name).

    Still and animated images (PNG, JPEG, WebP, GIF, APNG, TIFF, BMP: FFmpeg's ``image2``, ``*_pipe``, ``gif``,
    ``apng`` and ``webp`` demuxers) are not videos: :mod:`.decode` reads them, animated GIF / WebP / PNG frame by
    frame. Audio-only files and files PyAV cannot open are not videos either.
    """
    try:
        av = require_av()
    except RuntimeError:
        return False
    try:
        with av.open(str(path)) as container:
            name = container.format.name
            return bool(container.streams.video) and not name.endswith("_pipe") and name not in IMAGE_DEMUXERS
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        return False


def tagged(path: str | os.PathLike, key: str) -> bool:
    """True when ``path`` is a media file whose container metadata holds ``key`` (any case: Matroska upper-cases
    its tags); False for anything PyAV cannot open."""
    try:
        av = require_av()
        with av.open(str(path)) as container:
            return key.casefold() in {k.casefold() for k in container.metadata}
    except Exception:  # noqa: BLE001  not a media file (or no PyAV): not ours either way
        return False


def _decoder(stream):
    """The codec context to decode ``stream`` with: ``libvpx`` for VP8 / VP9 with alpha, else the stream's own."""
    av = require_av()
    name = stream.codec_context.name
    if stream.metadata.get("alpha_mode") == "1" and name in ALPHA_DECODERS:
        try:
            ctx = av.CodecContext.create(ALPHA_DECODERS[name], "r")
        except (av.FFmpegError, ValueError):
            log.warning("CleanCut: this PyAV has no %s decoder; the alpha of %s is lost.", ALPHA_DECODERS[name], name)
        else:
            if stream.codec_context.extradata:
                ctx.extradata = stream.codec_context.extradata
            ctx.thread_type = "AUTO"
            return ctx
    stream.codec_context.thread_type = "AUTO"  # frame threads: several frames decoded at once
    return stream.codec_context


def _frames(container, stream, path) -> Iterator:
    """Decoded ``av.VideoFrame`` s of ``stream``, in display order; :class:`InputError` naming ``path`` on damage."""
    av = require_av()
    ctx = _decoder(stream)
    try:
        for packet in container.demux(stream):
            yield from ctx.decode(packet)  # the last (empty) packet flushes the decoder
    except av.FFmpegError as exc:
        fail(str(path), f"cannot be decoded past this point (corrupt or truncated: {exc}).", InputError)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read ``path``'s header and first frame (for the rotation and whether alpha is decoded).

    Raises:
        InputError: named after ``path``: missing, not a video, corrupt, or no frame decodes.
    """
    with open_container(path) as container:
        stream = _video_stream(container, path)
        first = next(_frames(container, stream, path), None)
        if first is None:
            fail(str(path), "holds no decodable frame (empty, corrupt or truncated).", InputError)
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        duration = _duration(container, stream)
        frames = stream.frames or None
        estimate = frames or max(1, round((duration or 0) * fps))
        rotation = int(round(first.rotation / 90)) * 90 % 360
        rotation = rotation - 360 if rotation > 180 else rotation
        width, height = (first.height, first.width) if rotation in (90, -90) else (first.width, first.height)
        return VideoInfo(path=str(path), width=width, height=height, frames=frames, frame_estimate=estimate,
                         fps=Fraction(fps), rotation=rotation, duration=duration,
                         time_base=Fraction(first.time_base or stream.time_base),
                         has_audio=bool(container.streams.audio), has_alpha=_has_alpha(first),
                         codec=stream.codec_context.name, pix_fmt=first.format.name)


def _duration(container, stream) -> float | None:
    """The video stream's length in seconds: its own duration, else Matroska's per-track ``DURATION`` tag, else
    the container's when the file holds no audio (which may run longer than the video); ``None`` if unknown."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION", "")
    if tag.count(":") == 2:
        hours, minutes, seconds = tag.split(":")
        try:
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    if container.duration and not container.streams.audio:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _has_alpha(frame) -> bool:
    return any(c.is_alpha for c in frame.format.components)


def _deep(frame) -> bool:
    """More than 8 bits per component (ProRes, 10-bit H.265): decoded to 16-bit RGB(A) to keep them."""
    return max(c.bits for c in frame.format.components) > 8


def _rgb_format(alpha: bool, deep: bool) -> tuple[str, type, int]:
    """(PyAV format, NumPy dtype, full scale) of a decoded frame."""
    if deep:
        return ("rgba64le" if alpha else "rgb48le"), np.uint16, 65535
    return ("rgba" if alpha else "rgb24"), np.uint8, 255


def _to_array(frame, fmt: str) -> np.ndarray:
    """``frame`` as ``[H, W, C]`` in ``fmt``, converted by its own colour matrix and range (unspecified: BT.601
    limited, FFmpeg's default)."""
    return frame.reformat(format=fmt, src_color_range=frame.color_range or None).to_ndarray()


def read_frames(path: str | os.PathLike, chunk_pixels: int = PIXELS_PER_CHUNK,
                info: VideoInfo | None = None) -> Iterator[tuple[Tensor, list[int | None]]]:
    """Decode ``path`` lazily into chunks of upright frames.

    Args:
        path: a video file (see :func:`is_video`).
        chunk_pixels: at most this many pixels per chunk (frames x height x width; at least one frame per
            chunk): memory stays one chunk, whatever the clip's length.
        info: :func:`probe`'s result, if already known (else probed here).
    Yields:
        ``(frames, pts)``: IMAGE ``[b, H, W, 3 or 4]`` float32 in 0..1 on the CPU (4 channels, straight alpha,
        when the stream has alpha), rotated upright by the display rotation; and each frame's timestamp in
        ``info.time_base`` ticks (``None`` where the file gives none).
    Raises:
        InputError: named after ``path``: missing, not a video, corrupt or truncated (also midway: the frames
            before the damage have been yielded then), or fewer frames than the header states.
    """
    info = probe(path) if info is None else info
    per_chunk = max(1, int(chunk_pixels) // max(1, info.width * info.height))
    count, stamps = 0, []
    with open_container(path) as container:
        stream = _video_stream(container, path)
        frames = _frames(container, stream, path)
        while True:
            batch = _next_chunk(frames, per_chunk, info)
            if batch is None:
                break
            count += batch[0].shape[0]
            known = [p for p in batch[1] if p is not None]
            stamps = [*(stamps[:1] or known[:1]), *known[-1:]]  # the first timestamp and the last so far
            yield batch
    _check_complete(info, count, stamps)


def _check_complete(info: VideoInfo, count: int, stamps: list[int]) -> None:
    """:class:`InputError` if fewer frames came than the header states, or they end well before its duration."""
    if info.frames is not None and count < info.frames:
        fail(info.path, f"is truncated: {count} of the {info.frames} frames its header states could be decoded.",
             InputError)
    if info.frames is None and info.duration and len(stamps) == 2:
        seen = float((stamps[1] - stamps[0]) * info.time_base) + 1 / float(info.fps)
        if seen < info.duration - 1.5 / float(info.fps):  # more than a frame and a half missing at the end
            fail(info.path, f"is truncated: its frames end after {seen:.2f} s of the {info.duration:.2f} s its "
                 "header states.", InputError)


def _next_chunk(frames: Iterator, size: int, info: VideoInfo) -> tuple[Tensor, list[int | None]] | None:
    """Up to ``size`` frames from ``frames`` as an upright float32 IMAGE chunk, with their timestamps."""
    fmt, dtype, scale = _rgb_format(info.has_alpha, False)
    arrays, pts = None, []
    for frame in frames:
        if arrays is None:
            fmt, dtype, scale = _rgb_format(info.has_alpha, _deep(frame))
            channels = 4 if info.has_alpha else 3
            arrays = np.empty((size, frame.height, frame.width, channels), dtype)  # stored orientation
        if (frame.height, frame.width) != arrays.shape[1:3]:
            fail(info.path, f"changes size midway ({arrays.shape[2]}x{arrays.shape[1]}, then {frame.width}x"
                 f"{frame.height}); CleanCut reads clips of one frame size.", InputError)
        arrays[len(pts)] = _to_array(frame, fmt)
        pts.append(frame.pts)
        if len(pts) == size:
            break
    if not pts:
        return None
    batch = torch.from_numpy(arrays[:len(pts)].astype(np.float32)).div_(scale)  # [b, H, W, C], our own copy
    if info.rotation:
        batch = torch.rot90(batch, info.rotation // 90, dims=(1, 2)).contiguous()  # k > 0: counter-clockwise
    return batch, pts
