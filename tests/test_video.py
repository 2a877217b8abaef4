"""Video with alpha: reading (utils/video_read), writing (utils/video_write) and the streaming temporal filter
(utils/temporal); the Save Cut-out Video node is in test_save_video.py.

The clip (video_clips.py) is synthetic with a known subject. Written in each format and decoded with PyAV
(``libvpx-vp9`` for the WebM alpha) or Pillow (WebP, PNG), it comes back with its count, rate and size exact and
its alpha and colour within the measured tolerances below (in 8-bit levels; colour where the subject is opaque).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image
from video_clips import H, N, W, av, clip_fixture, disc_clip, vio_fixture  # noqa: F401  (fixtures clip, vio)

# Measured at quality 80 (the default) and 100 on video_clips.py's clip: (alpha max, colour max, colour mean), levels.
# VP9 (CRF 13): alpha 3.25, colour 7.45 (mean 1.89: 4:2:0 and lossy); lossless VP9: alpha 1.5, colour 5.97 (mean
# 1.65: the 4:2:0 YUV round trip through swscale, not the codec). ProRes 4444 (10-bit colour, 16-bit alpha): 0.31,
# 0.58. WebP lossless and PNG: 0.5, 0.5 (8-bit rounding only); lossy WebP 80: alpha 0.5 (lossless), colour 10.95.
TOLERANCE = {("webm", 80): (4.0, 9.0, 2.5), ("webm", 100): (2.0, 7.0, 2.0), ("mov", 80): (0.5, 1.0, 0.2),
             ("webp", 100): (0.51, 0.51, 0.3), ("webp", 80): (0.51, 13.0, 2.5), ("png", 80): (0.51, 0.51, 0.3)}


def written(vio, path, fmt, clip, fps=24, quality=80, **kw) -> str:
    with vio.video_write.VideoWriter(path, fmt, fps, quality=quality, **kw) as writer:
        writer.write(clip[:10])  # two writes: frames append
        writer.write(clip[10:])
    return writer.path


def decoded(vio, path, fmt) -> torch.Tensor:
    """Every frame as float RGBA / RGB: PyAV for WebM and MOV (through read_frames), Pillow for WebP and PNG."""
    if fmt in ("webm", "mov"):
        return torch.cat([chunk for chunk, _ in vio.video_read.read_frames(path)])
    if fmt == "png":
        files = sorted(os.listdir(path))
        return torch.from_numpy(np.stack([np.asarray(Image.open(os.path.join(path, f))) for f in files])).float() / 255
    im, frames = Image.open(path), []
    for k in range(im.n_frames):
        im.seek(k)
        frames.append(np.asarray(im.convert("RGBA")))
    return torch.from_numpy(np.stack(frames)).float() / 255


def webp_durations(path) -> list[int]:
    """Each ANMF frame's duration in ms, read from the file (24-bit little-endian after x, y, w-1, h-1)."""
    data = open(path, "rb").read()
    return [int.from_bytes(data[m.start() + 20:m.start() + 23], "little") for m in re.finditer(b"ANMF", data)]


# ---------------------------------------------------------------- writing and reading back
@pytest.mark.parametrize("fmt, quality", list(TOLERANCE))
def test_round_trip_alpha_and_colour(vio, tmp_path, clip, fmt, quality):
    ext = vio.video_write.FORMATS[fmt].ext
    path = written(vio, str(tmp_path / f"clip{ext}"), fmt, clip, quality=quality)
    got = decoded(vio, path, fmt)
    assert got.shape == (N, H, W, 4)
    a_max, c_max, c_mean = TOLERANCE[fmt, quality]
    alpha_err = (got[..., 3] - clip[..., 3]).abs() * 255
    colour_err = (got[..., :3] - clip[..., :3]).abs()[clip[..., 3] > 0.5] * 255
    assert alpha_err.max() <= a_max and colour_err.max() <= c_max and colour_err.mean() <= c_mean, (
        float(alpha_err.max()), float(colour_err.max()), float(colour_err.mean()))
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(path)]  # no temporary left


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30000, 1001)])
@pytest.mark.parametrize("fmt", ["webm", "mov"])
def test_count_rate_size_exact(vio, tmp_path, clip, fmt, fps):
    path = written(vio, str(tmp_path / f"c.{fmt}"), fmt, clip, fps=fps)
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == fps
        assert (stream.codec_context.width, stream.codec_context.height) == (W, H)
        frames = list(container.decode(stream))
    assert len(frames) == N
    times = [float(f.pts * f.time_base) for f in frames]
    assert max(abs(t - i / float(fps)) for i, t in enumerate(times)) <= 0.0005  # WebM: 1 ms ticks
    info = vio.video_read.probe(path)
    assert (info.width, info.height, info.fps, info.has_alpha) == (W, H, fps, True)
    assert info.frames == (N if fmt == "mov" else None) and info.frame_estimate == N


@pytest.mark.parametrize("fps", [24.0, 29.97])
def test_webp_frame_durations(vio, tmp_path, clip, fps):
    """WebP stores whole milliseconds per frame: each within 1 ms, the total within 1 ms of N / fps."""
    path = written(vio, str(tmp_path / "c.webp"), "webp", clip, fps=fps, quality=100)
    durations = webp_durations(path)
    assert len(durations) == N == Image.open(path).n_frames
    rate = vio.video_write.as_rate(fps)
    assert all(abs(d - 1000 / float(rate)) < 1 for d in durations)
    assert abs(sum(durations) - 1000 * N / float(rate)) <= 1


def test_rates_typed_as_decimals_are_exact(vio):
    as_rate = vio.video_write.as_rate
    assert as_rate(29.97) == Fraction(30000, 1001) and as_rate(23.976) == Fraction(24000, 1001)
    assert as_rate(25.0) == 25 and as_rate(12.5) == Fraction(25, 2) and as_rate(Fraction(7, 3)) == Fraction(7, 3)


def test_source_timestamps_are_kept(vio, tmp_path, clip):
    """Given pts in a time base, the frames keep them (a variable-rate clip stays variable)."""
    pts = [0, 40, 100, 180, 200, 260]
    with vio.video_write.VideoWriter(str(tmp_path / "v.mov"), "mov", 24, time_base=Fraction(1, 1000)) as w:
        w.write(clip[:6], pts=pts)
    with av.open(w.path) as container:
        got = [round(float(f.pts * f.time_base) * 1000) for f in container.decode(video=0)]
    assert got == pts


@pytest.mark.parametrize("fmt", ["webm", "mov", "webp", "png"])
def test_grey_mask_video(vio, tmp_path, clip, fmt):
    mask = clip[:6, ..., 3]
    path = str(tmp_path / f"m{vio.video_write.FORMATS[fmt].ext}")
    with vio.video_write.VideoWriter(path, fmt, 24, quality=100) as writer:
        writer.write(mask)
    got = decoded(vio, path, fmt)
    grey = got[..., 0] if got.ndim == 4 else got
    assert grey.shape == mask.shape
    if got.ndim == 4:  # grey: R = G = B, opaque
        assert (got[..., :3].amax(-1) - got[..., :3].amin(-1)).max() == 0
        if got.shape[-1] == 4:
            assert got[..., 3].min() == 1
    # measured at quality 100: VP9 1.44 levels (limited-range Y), ProRes 1.0, WebP and PNG 0.5 (rounding only)
    assert (grey - mask).abs().max() * 255 <= 1.5


def test_odd_sizes_need_no_padding(vio, tmp_path):
    clip = disc_clip(4, 63, 95)
    for fmt in ("webm", "mov"):
        path = written(vio, str(tmp_path / f"odd.{fmt}"), fmt, clip)
        got = decoded(vio, path, fmt)
        assert got.shape == (4, 63, 95, 4)


# ---------------------------------------------------------------- reading real clips
def encode_rgb(path, frames: np.ndarray, codec: str, fps=24, rotation=None, audio: np.ndarray | None = None,
               sample_rate=44100, audio_codec="aac"):
    """Write uint8 RGB frames ``[n, H, W, 3]`` as an MP4 / MKV with PyAV (and a stereo float track)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = None
        if audio is not None:
            sound = out.add_stream(audio_codec, rate=sample_rate)
            sound.layout = "stereo"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                out.mux(packet)
        out.mux(stream.encode())
        if sound is not None:
            frame = av.AudioFrame.from_ndarray(audio, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = sample_rate, 0
            out.mux(sound.encode(frame))
            out.mux(sound.encode())


@pytest.fixture(scope="module")
def pan(photo_arrays) -> np.ndarray:
    """30 frames of 128x96 panning 4 px per frame across the astronaut photo."""
    img = photo_arrays["astronaut"]
    return np.stack([img[100:196, 40 + 4 * i:168 + 4 * i] for i in range(30)])


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_read_real_clip(vio, tmp_path, pan, codec):
    path = tmp_path / "pan.mp4"
    encode_rgb(path, pan, codec, fps=Fraction(30000, 1001))
    info = vio.video_read.probe(path)
    assert (info.width, info.height, info.frames, info.fps) == (128, 96, 30, Fraction(30000, 1001))
    assert not info.has_alpha and not info.has_audio and info.codec == codec
    chunks = list(vio.video_read.read_frames(path))
    frames = torch.cat([c for c, _ in chunks])
    assert frames.shape == (30, 96, 128, 3) and frames.dtype == torch.float32
    assert sum(len(p) for _, p in chunks) == 30
    source = torch.from_numpy(pan).float() / 255
    err = (frames[:, None] - source[None]).abs().mean(dim=(2, 3, 4)) * 255  # [decoded, source]
    assert torch.equal(err.argmin(dim=1), torch.arange(30))  # each frame is closest to its own source: in order
    assert err.diagonal().max() < 11  # lossy at default rates: up to 8.9 levels for mpeg4 (200 kb/s); 15+ off by one


@pytest.mark.parametrize("rotation, k", [(90, 1), (-90, -1), (180, 2)])
def test_rotated_clip_comes_out_upright(vio, tmp_path, pan, rotation, k):
    """A display matrix rotating by ``rotation`` degrees counter-clockwise (as phones store portrait video): the
    frames come out as np.rot90 (counter-clockwise) of the stored ones, at the upright size."""
    stored = np.ascontiguousarray(pan[:6])
    path = tmp_path / "rot.mp4"
    encode_rgb(path, stored, "h264", rotation=rotation)
    info = vio.video_read.probe(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((96, 128) if rotation != 180 else (128, 96))
    frames = torch.cat([c for c, _ in vio.video_read.read_frames(path)])
    expected = torch.from_numpy(np.rot90(stored, k, axes=(1, 2)).copy()).float() / 255
    assert frames.shape == expected.shape
    assert (frames - expected).abs().mean() * 255 < 6


def test_chunks_stay_within_the_pixel_budget(vio, tmp_path):
    clip = disc_clip(300, 32, 48)
    path = written(vio, str(tmp_path / "long.webm"), "webm", clip, quality=50)
    budget = 10 * 32 * 48 + 100  # ten frames' worth, and a little
    sizes = [c.shape[0] for c, _ in vio.video_read.read_frames(path, chunk_pixels=budget)]
    assert sum(sizes) == 300 and max(sizes) == 10 and all(s * 32 * 48 <= budget for s in sizes)
    one = [c.shape[0] for c, _ in vio.video_read.read_frames(path, chunk_pixels=1)]
    assert one == [1] * 300  # at least one frame per chunk


@pytest.mark.parametrize("fmt", ["webm", "mov"])
def test_audio_track_is_kept(vio, tmp_path, clip, pan, fmt):
    rate = 44100
    t = np.arange(2 * rate) / rate  # 2 s of sound for a 1 s video: trimmed to the video
    sine = (0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)])).astype(np.float32)
    source = tmp_path / "sound.mp4"
    encode_rgb(source, pan[:24], "h264", audio=sine, sample_rate=rate)
    assert vio.video_read.probe(source).has_audio
    path = written(vio, str(tmp_path / f"out.{fmt}"), fmt, clip, audio=str(source))
    with av.open(path) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == {"webm": "opus", "mov": "pcm_s16le"}[fmt]
        samples = sum(f.samples for f in container.decode(stream))
        seconds = samples / stream.codec_context.sample_rate
    assert abs(seconds - N / 24) <= 1 / 24  # within a frame (Opus adds its 6.5 ms pre-skip)
    # ComfyUI's AUDIO dict
    path = written(vio, str(tmp_path / f"dict.{fmt}"), fmt, clip,
                   audio={"waveform": torch.from_numpy(sine)[None], "sample_rate": rate})
    with av.open(path) as container:
        stream = container.streams.audio[0]
        seconds = sum(f.samples for f in container.decode(stream)) / stream.codec_context.sample_rate
    assert abs(seconds - N / 24) <= 1 / 24


def test_audio_errors(vio, tmp_path, clip):
    VideoWriter = vio.video_write.VideoWriter
    with pytest.raises(ValueError, match="^audio: webp holds no audio"):
        VideoWriter(str(tmp_path / "a.webp"), "webp", 24, audio={"waveform": torch.zeros(1, 2, 10), "sample_rate": 8})
    silent = written(vio, str(tmp_path / "silent.webm"), "webm", clip[:3])
    with pytest.raises(ValueError, match="has no audio stream"):
        written(vio, str(tmp_path / "b.webm"), "webm", clip[:3], audio=silent)
    with pytest.raises(ValueError, match="^audio: expected an AUDIO waveform"):
        written(vio, str(tmp_path / "c.webm"), "webm", clip[:3], audio={"waveform": torch.zeros(2, 2, 10),
                                                                       "sample_rate": 8000})
    assert sorted(os.listdir(tmp_path)) == ["silent.webm"]


# ---------------------------------------------------------------- bad files, is_video
def test_corrupt_and_truncated_files_name_the_file(vio, tmp_path, clip):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all " * 100)
    with pytest.raises(ValueError, match=re.escape(str(junk)) + ": not a readable video"):
        vio.video_read.probe(junk)
    with pytest.raises(ValueError, match="no such file"):
        vio.video_read.probe(tmp_path / "missing.mp4")
    for fmt in ("mov", "webm"):
        whole = open(written(vio, str(tmp_path / f"whole.{fmt}"), fmt, clip), "rb").read()
        cut = tmp_path / f"cut.{fmt}"
        cut.write_bytes(whole[:len(whole) // 2])
        with pytest.raises(ValueError, match=re.escape(str(cut)) + ": (not a readable video|is truncated)"):
            for _ in vio.video_read.read_frames(cut):
                pass


def test_is_video_by_content(vio, tmp_path, clip, pan):
    still = Image.fromarray(pan[0])
    frames = [Image.fromarray(f) for f in pan[:4]]
    for name, kw in [("s.png", {}), ("s.jpg", {}), ("s.webp", {}), ("s.gif", {}),
                     ("a.gif", {"save_all": True, "append_images": frames[1:]}),
                     ("a.webp", {"save_all": True, "append_images": frames[1:]}),
                     ("a.png", {"save_all": True, "append_images": frames[1:]})]:
        (frames[0] if kw else still).save(tmp_path / name, **kw)
        assert not vio.video_read.is_video(tmp_path / name), name
    encode_rgb(tmp_path / "v.mp4", pan[:4], "h264")
    os.replace(tmp_path / "v.mp4", tmp_path / "v.png")  # by content, not name
    assert vio.video_read.is_video(tmp_path / "v.png")
    assert vio.video_read.is_video(written(vio, str(tmp_path / "c.webm"), "webm", clip[:3]))
    (tmp_path / "junk.mp4").write_bytes(b"junk" * 50)
    assert not vio.video_read.is_video(tmp_path / "junk.mp4")
    assert not vio.video_read.is_video(tmp_path / "missing.mp4")


# ---------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("fmt", ["webm", "mov", "webp", "png"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_midway_leaves_nothing(vio, tmp_path, clip, monkeypatch, fmt, error):
    VideoWriter = vio.video_write.VideoWriter
    hook = "_write_png" if fmt == "png" else "_encode"
    real, calls = getattr(VideoWriter, hook), []

    def failing(self, *args):
        calls.append(1)
        if len(calls) > 2:
            raise error("disk on fire")
        return real(self, *args)

    monkeypatch.setattr(VideoWriter, hook, failing)
    target = tmp_path / ("out" + vio.video_write.FORMATS[fmt].ext)
    with pytest.raises(error, match="disk on fire"):
        with VideoWriter(str(target), fmt, 24) as writer:
            for i in range(N):
                writer.write(clip[i:i + 1])
    assert os.listdir(tmp_path) == []


def test_never_overwrites_unless_asked(vio, tmp_path, clip):
    path = str(tmp_path / "c.webm")
    written(vio, path, "webm", clip[:2])
    before = open(path, "rb").read()
    with pytest.raises(FileExistsError):
        written(vio, path, "webm", clip[:5])
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["c.webm"]
    written(vio, path, "webm", clip[:5], overwrite=True)
    assert open(path, "rb").read() != before and os.listdir(tmp_path) == ["c.webm"]


def test_writer_errors(vio, tmp_path, clip):
    VideoWriter = vio.video_write.VideoWriter
    for kwargs, name in [({"fmt": "gif"}, "format"), ({"fps": 0}, "fps"), ({"fps": -1.0}, "fps"),
                         ({"quality": 101}, "quality"), ({"quality": 5.5}, "quality")]:
        with pytest.raises(ValueError, match=f"^{name}:"):
            VideoWriter(str(tmp_path / "x.webm"), **{"fmt": "webm", **kwargs})
    with pytest.raises(ValueError, match="^frames: size 48x32 differs"):
        with VideoWriter(str(tmp_path / "x.webm"), "webm", 24) as writer:
            writer.write(clip[:2])
            writer.write(disc_clip(1, 32, 48))
    with pytest.raises(ValueError, match="^frames: no frame was written"):
        with VideoWriter(str(tmp_path / "x.webm"), "webm", 24):
            pass
    assert os.listdir(tmp_path) == []


def test_imports_without_pyav():
    code = ("import sys; sys.modules['av'] = None; sys.path.insert(0, 'tools'); from packloader import load_pack; "
            "import importlib; p = load_pack(); vw = importlib.import_module(p.__name__ + '.utils.video_write')\n"
            "try:\n    vw.VideoWriter('x.webm').__enter__()\nexcept RuntimeError as e:\n    print(e)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "needs PyAV: pip install" in done.stdout


# ---------------------------------------------------------------- temporal smoothing over a stream
@pytest.mark.parametrize("weight", [0.5, 0.9])
@pytest.mark.parametrize("chunk", [1, 7, 50])
def test_temporal_stream_matches_the_whole_clip(vio, weight, chunk):
    """Measured: at most 2.4e-7 from smooth_frames on the whole clip (float32 rounding; weights 0.3 to 0.95, chunks
    of 1 to 128 frames), below the bound tolerance = 1e-4 / 255 = 3.9e-7 that the lookahead guarantees."""
    g = torch.Generator().manual_seed(1)
    masks = torch.rand(400, 6, 5, generator=g)
    masks[40:80] = (masks[40:80] > 0.5).float()  # hard steps too
    whole = vio.masks.smooth_frames(masks.clone(), weight)
    stream, parts = vio.temporal.TemporalStream(weight), []
    for start in range(0, masks.shape[0], chunk):
        part = masks[start:start + chunk]
        before = part.clone()
        parts.append(stream.push(part))
        assert torch.equal(part, before)  # input unchanged
        assert sum(p.shape[0] for p in parts) <= max(0, start + part.shape[0] - stream.lookahead)  # it waits
    parts.append(stream.flush())
    got = torch.cat(parts)
    assert got.shape == masks.shape
    assert (got - whole).abs().max() <= 1e-2 / 255  # the brief's bound; measured 2.4e-7


def test_temporal_stream_lookahead_and_passthrough(vio):
    lookahead, TemporalStream = vio.temporal.lookahead, vio.temporal.TemporalStream
    assert lookahead(0.0) == 0 and lookahead(0.5) == 22 and lookahead(0.95) == 288
    assert 0.5 ** lookahead(0.5) <= vio.temporal.TOLERANCE < 0.5 ** (lookahead(0.5) - 1)
    stream = TemporalStream(0.0)
    x = torch.rand(3, 4, 4)
    assert torch.equal(stream.push(x), x) and stream.flush().shape[0] == 0
    short = TemporalStream(0.8)  # a clip shorter than the lookahead: all at flush, exact
    y = torch.rand(5, 4, 4)
    assert short.push(y).shape[0] == 0
    assert torch.equal(short.flush(), vio.masks.smooth_frames(y.clone(), 0.8))
    with pytest.raises(ValueError, match="^temporal:"):
        TemporalStream(0.99)
    sized = TemporalStream(0.5)
    sized.push(torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="^mask: frames of 5x5 follow frames of 4x4"):
        sized.push(torch.rand(1, 5, 5))
