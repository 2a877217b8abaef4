"""``cleancut cutout`` on video files: two videos per clip, streamed, with what the source had kept.

The clips are tiny and made here with PyAV: 12 frames of 64x48, a light disc moving right over a dark blue
background (the threshold method keeps exactly the disc), H.264 or MPEG-4, with or without sound, one with a
display rotation, one with irregular timestamps. Most tests use the threshold method (no model, fast).
"""

from __future__ import annotations

import json
import os
import signal
from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import PACK
from modelfiles import u2netp_fixture  # noqa: F401  (the u2netp fixture)
from PIL import Image
from test_cli import cli_fixture, main_fixture  # noqa: F401  (fixtures cli, main)

av = pytest.importorskip("av")

N, H, W = 12, 48, 64
THRESHOLD = ["--method", "threshold", "--quiet"]
video_read = PACK.utils.video_read
masks = PACK.utils.masks


def disc_frames(n: int = N, h: int = H, w: int = W) -> np.ndarray:
    """uint8 RGB ``[n, h, w, 3]``: a disc of radius 10 moving 3 px right per frame over dark blue."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[..., 2] = 40
    for i in range(n):
        frames[i][(xx - (12 + 3 * i)) ** 2 + (yy - h // 2) ** 2 < 100] = (230, 200, 60)
    return frames


def make_clip(path, codec: str = "h264", fps=24, audio: bool = False, rotation: int | None = None,
              pts: list[int] | None = None, frames: np.ndarray | None = None):
    """Write the disc clip to ``path`` with PyAV: ``pts`` in milliseconds (irregular timestamps) or at ``fps``;
    ``audio``: one second of a stereo sine (AAC); ``rotation``: a display matrix (as phones store portrait video)."""
    frames = disc_frames() if frames is None else frames
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=44100) if audio else None
        if sound is not None:
            sound.layout = "stereo"
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if sound is not None:
            t = np.arange(44100) / 44100
            wave = (0.3 * np.stack([np.sin(2 * np.pi * 440 * t)] * 2)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 44100, 0
            out.mux(sound.encode(frame))
            out.mux(sound.encode())
    return path


def decoded(path):
    """``(frames [n, H, W, C] float, times in seconds, VideoInfo)`` of a written video or PNG sequence folder."""
    if os.path.isdir(path):
        names = sorted(os.listdir(path))
        arrays = [np.asarray(Image.open(os.path.join(path, n))) for n in names]
        return torch.from_numpy(np.stack(arrays)).float() / 255, None, None
    info = video_read.probe(path)
    chunks = list(video_read.read_frames(path, info=info))
    times = [float(p * info.time_base) for _, pts in chunks for p in pts]
    return torch.cat([c for c, _ in chunks]), times, info


def audio_codec(path) -> str | None:
    with av.open(str(path)) as container:
        return container.streams.audio[0].codec_context.name if container.streams.audio else None


def summary(capsys) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {"sound": make_clip(folder / "sound.mp4", audio=True),
            "mpeg4": make_clip(folder / "mpeg4.mp4", codec="mpeg4"),
            "rot": make_clip(folder / "rot.mp4", rotation=90),
            "vfr": make_clip(folder / "vfr.mkv", pts=[0, 40, 100, 120, 200, 260, 300, 340, 420, 460, 500, 560])}


def test_a_clip_gives_a_cutout_and_a_mask_video_with_its_rate_count_size_and_sound(main, clips, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["cutout", str(clips["sound"]), "--out", str(out), *THRESHOLD]) == 0
    assert summary(capsys) == (f"cleancut cutout: 1 input (0 images, 1 video; 12 video frames cut out): 1 done, "
                               f"0 skipped, 0 failed; 2 files written to {out}")
    assert sorted(os.listdir(out)) == ["sound_cutout.webm", "sound_mask.webm"]
    source, source_times, source_info = decoded(clips["sound"])
    cut, times, info = decoded(out / "sound_cutout.webm")
    mask, _, mask_info = decoded(out / "sound_mask.webm")
    assert cut.shape == (N, H, W, 4) and mask.shape == (N, H, W, 3) and info.fps == source_info.fps == 24
    assert info.has_alpha and not mask_info.has_alpha and info.codec == "vp9"
    assert max(abs(a - b) for a, b in zip(times, source_times, strict=True)) <= 0.0005  # WebM: 1 ms ticks
    disc = torch.from_numpy(disc_frames()[..., 0] > 128)  # the threshold method keeps exactly the disc
    assert ((cut[..., 3] > 0.5) == disc).float().mean() > 0.95 and ((mask[..., 0] > 0.5) == disc).float().mean() > 0.95
    assert audio_codec(out / "sound_cutout.webm") == "opus" and audio_codec(out / "sound_mask.webm") is None
    with av.open(str(out / "sound_cutout.webm")) as container:  # the settings, as the image outputs record them
        meta = json.loads({k.lower(): v for k, v in container.metadata.items()}["cleancut"])
    assert meta["method"] == "threshold" and meta["source"] == str(clips["sound"]) and meta["role"] == "cutout"


@pytest.mark.parametrize("fmt", ["mov", "webp", "png"])
def test_every_video_format(main, clips, tmp_path, fmt):
    out = tmp_path / "o"
    assert main(["cutout", str(clips["sound"]), "--out", str(out), "--video-format", fmt, *THRESHOLD]) == 0
    ext = {"mov": ".mov", "webp": ".webp", "png": ""}[fmt]
    cut_path, mask_path = out / f"sound_cutout{ext}", out / f"sound_mask{ext}"
    if fmt == "webp":  # Pillow reads animated WebP
        im = Image.open(cut_path)
        assert (im.n_frames, im.size, im.mode) == (N, (W, H), "RGBA")
        assert any(str(v).startswith("cleancut:") for v in im.getexif().values()), "marked as ours (EXIF)"
        return
    cut, times, info = decoded(cut_path)
    mask = decoded(mask_path)[0]
    assert cut.shape == (N, H, W, 4) and mask.shape[:3] == (N, H, W)
    if fmt == "mov":  # ProRes 4444 with the source's time base: timestamps exact, PCM sound
        assert times == decoded(clips["sound"])[1] and info.codec == "prores"
        assert audio_codec(cut_path) == "pcm_s16le"
    else:  # a folder of RGBA PNGs and one of grey PNGs: no sound
        assert sorted(os.listdir(cut_path))[0] == "frame_000001.png" and mask.ndim == 3
        assert torch.equal((cut[..., 3] * 255).round(), (mask * 255).round()), "the cut-out's alpha is the mask"


def test_rotation_comes_out_upright_and_mpeg4_reads(main, clips, tmp_path):
    out = tmp_path / "o"
    assert main(["cutout", str(clips["rot"]), str(clips["mpeg4"]), "--out", str(out), "--video-format", "png",
                 *THRESHOLD]) == 0
    upright = np.rot90(disc_frames()[..., 0] > 128, 1, axes=(1, 2))  # 90 degrees counter-clockwise
    mask = decoded(out / "rot_mask")[0]
    assert mask.shape == (N, W, H), "portrait: width and height swapped"
    assert ((mask > 0.5).numpy() == upright).mean() > 0.95
    assert decoded(out / "mpeg4_mask")[0].shape == (N, H, W)


def test_irregular_timestamps_are_kept(main, clips, tmp_path):
    out = tmp_path / "o"
    assert main(["cutout", str(clips["vfr"]), "--out", str(out), "--video-format", "mov", *THRESHOLD]) == 0
    source_times = decoded(clips["vfr"])[1]
    assert source_times[:4] == [0.0, 0.04, 0.1, 0.12]
    assert decoded(out / "vfr_cutout.mov")[1] == source_times == decoded(out / "vfr_mask.mov")[1]


def test_temporal_in_small_chunks_equals_one_chunk_and_the_whole_clip_filter(main, clips, tmp_path):
    src, png = str(clips["mpeg4"]), ["--video-format", "png"]
    runs = {"plain": ["--batch-size", "12"], "one": ["--batch-size", "12", "--temporal", "0.5"],
            "small": ["--max-pixels", str(2 * W * H), "--temporal", "0.5"]}  # chunks of two frames
    for name, extra in runs.items():
        assert main(["cutout", src, "--out", str(tmp_path / name), *png, *extra, *THRESHOLD]) == 0
    folder = {name: tmp_path / name / "mpeg4_mask" for name in runs}
    names = sorted(os.listdir(folder["one"]))
    assert len(names) == N and names == sorted(os.listdir(folder["small"]))
    for n in names:
        assert (folder["one"] / n).read_bytes() == (folder["small"] / n).read_bytes(), n
    smoothed = decoded(folder["one"])[0]
    whole = masks.smooth_frames(decoded(folder["plain"])[0].clone(), 0.5)  # Refine Mask's temporal, whole clip
    assert (smoothed - whole).abs().max() * 255 <= 0.5 + 1e-4, "the same masks, to the 8-bit rounding"
    assert ((smoothed > 0) & (smoothed < 1)).any(), "smoothing made the binary masks soft"


def test_rerun_skips_finished_videos_and_overwrite_redoes_them(main, clips, tmp_path, capsys):
    out, argv = tmp_path / "o", ["cutout", str(clips["mpeg4"]), "--out", str(tmp_path / "o"), *THRESHOLD]
    assert main(argv) == 0
    first = (out / "mpeg4_cutout.webm").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    line = summary(capsys)
    assert "0 done, 1 skipped (outputs exist" in line and "0 video frames cut out" in line
    assert (out / "mpeg4_cutout.webm").stat().st_mtime_ns == first
    (out / "mpeg4_mask.webm").unlink()  # an incomplete set is redone
    assert main(argv) == 0
    assert (out / "mpeg4_mask.webm").is_file()
    assert main([*argv, "--overwrite"]) == 0
    assert "1 done, 0 skipped" in summary(capsys) and (out / "mpeg4_cutout.webm").stat().st_mtime_ns != first


def test_a_damaged_video_fails_alone_and_leaves_nothing(main, clips, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    good = (src / "good.mp4")
    good.write_bytes(clips["mpeg4"].read_bytes())
    (src / "no_header.mp4").write_bytes(clips["sound"].read_bytes()[:3000])  # cut before the MP4 index
    Image.fromarray(disc_frames()[0]).save(src / "still.png")
    long = disc_frames(40)  # a WebM cut in the middle: read until the damage, then it fails
    make_clip(tmp_path / "long.mkv", codec="mpeg4", frames=long)
    whole = (tmp_path / "long.mkv").read_bytes()
    (src / "truncated.mkv").write_bytes(whole[:len(whole) // 2])
    out = tmp_path / "o"
    assert main(["cutout", str(src), "--out", str(out), "--batch-size", "4", *THRESHOLD]) == 1
    captured = capsys.readouterr()
    assert "4 inputs (1 image, 3 videos; 12 video frames cut out): 2 done, 0 skipped, 2 failed" in captured.out
    failed = [line for line in captured.err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2 and any(f"{src / 'no_header.mp4'}: not a readable video" in f for f in failed)
    assert any(f"{src / 'truncated.mkv'}: is truncated" in f or "truncated.mkv" in f for f in failed), failed
    assert sorted(os.listdir(out)) == sorted(["good_cutout.webm", "good_mask.webm", "still_cutout.png",
                                              "still_extracted.png", "still_mask.png", "still_original.png"])


def interrupt_on_chunk(cli, monkeypatch, chunk: int, presses: int) -> None:
    """Ctrl-C pressed ``presses`` times while chunk number ``chunk`` of a clip is cut out."""
    real, calls = cli.cut.cut_out, []

    def pressing(batch, args, on_progress=None):
        calls.append(batch.shape[0])
        if len(calls) == chunk:
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)  # the second raises KeyboardInterrupt here, mid-video
        return real(batch, args, on_progress)

    monkeypatch.setattr(cli.cut, "cut_out", pressing)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_leaves_no_partial_video(cli, main, clips, tmp_path, monkeypatch, capsys, presses):
    interrupt_on_chunk(cli, monkeypatch, chunk=2, presses=presses)
    out = tmp_path / "o"
    previous = signal.getsignal(signal.SIGINT)
    try:
        code = main(["cutout", str(clips["mpeg4"]), "--out", str(out), "--batch-size", "4", *THRESHOLD])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    assert os.listdir(out) == [], "neither a partial video nor its temporary file"
    assert summary(capsys).endswith("0 done, 0 skipped, 0 failed; 0 files written to "
                                    f"{out}; interrupted: 1 input not processed")


def test_video_options_are_checked_up_front(main, clips, tmp_path, capsys):
    base = ["cutout", str(clips["mpeg4"]), "--out", str(tmp_path / "o"), "--quiet"]
    for extra, words in [(["--temporal", "0.5", "--alpha-matting"], "--alpha-matting does nothing with --temporal"),
                         (["--temporal", "0.5", "--only-mask"], "--temporal does not go with --only-mask"),
                         (["--temporal", "0.99"], "--temporal"), (["--video-quality", "101"], "--video-quality"),
                         (["--video-format", "gif"], "--video-format")]:
        assert main([*base, *extra]) == 2, extra
        assert words in capsys.readouterr().err, extra
    assert main([*base, "--save", "original", "--method", "threshold"]) == 1
    assert "names no role written for videos (cutout, mask)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


def test_video_outputs_in_an_input_folder_are_not_inputs(main, clips, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "clip.mp4").write_bytes(clips["mpeg4"].read_bytes())
    for fmt in ("webm", "mov", "webp"):
        assert main(["cutout", str(src), "--out", str(src), "--video-format", fmt, *THRESHOLD]) == 0
    capsys.readouterr()
    assert main(["cutout", str(src), "--out", str(tmp_path / "again"), *THRESHOLD]) == 0
    captured = capsys.readouterr()
    assert "6 earlier CleanCut output(s) skipped" in captured.err and "1 input (0 images, 1 video" in captured.out


@pytest.mark.model
def test_rembg_on_a_video_with_temporal_refine_and_a_background_colour(main, clips, tmp_path, u2netp):
    out = tmp_path / "o"
    assert main(["cutout", str(clips["sound"]), "--out", str(out), "--quiet", "--temporal", "0.5", "--refine",
                 "guided filter", "--background", "white", "--video-format", "mov"]) == 0
    cut, _, info = decoded(out / "sound_cutout.mov")
    assert cut.shape == (N, H, W, 4) and cut[..., 3].min() * 255 > 254.9, "on a colour the cut-out video is opaque"
    with av.open(str(out / "sound_cutout.mov")) as container:
        meta = json.loads(container.metadata["cleancut"])
    assert meta["temporal"] == 0.5 and meta["refine"] == "guided filter" and meta["background"] == "white"
