"""What the command line reads: missing inputs, EXIF orientation by content, animated files, batches."""

import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from conftest import PACK
from PIL import Image, ImageOps
from test_cli import cli_fixture, folder_fixture, main_fixture  # noqa: F401  (fixtures cli, folder, main)

THRESHOLD = ["--method", "threshold", "--quiet"]


def exif_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def asymmetric(h=20, w=40) -> np.ndarray:
    """No symmetry: each of the 8 EXIF orientations gives a different array."""
    y, x = np.mgrid[:h, :w]
    return np.dstack([x * 255 // w, y * 255 // h, (x < w // 4) * 255]).astype(np.uint8)


def with_exif_chunk(png: bytes, exif: Image.Exif) -> bytes:
    """``png`` with an eXIf chunk (the TIFF bytes, without JPEG's "Exif" prefix) before its first IDAT."""
    body = exif.tobytes().removeprefix(b"Exif\x00\x00")
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    at = png.index(b"IDAT") - 4
    return png[:at] + chunk + png[at:]


def test_missing_paths_and_empty_globs_are_failed_inputs(main, folder, tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["cutout", str(folder / "a.png"), str(tmp_path / "nosuch.jpg"), str(tmp_path / "*.jpeg"),
                 "--out", str(out), *THRESHOLD])
    assert code == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2 and "nosuch.jpg" in failed[0] and "*.jpeg" in failed[1], captured.err
    assert "2 failed" in captured.out
    assert (out / "a_cutout.png").is_file(), "the inputs that exist are still processed"


@pytest.mark.parametrize("name, fmt", [("o6.png", "PNG"), ("o6.webp", "WEBP"), ("jpeg_data.png", "JPEG"),
                                       ("o6.jpg", "JPEG"), ("o6.jfif", "JPEG")])
def test_exif_orientation_is_applied_by_content_for_every_format(main, tmp_path, name, fmt):
    src = tmp_path / "in"
    src.mkdir()
    options = {"PNG": {}, "WEBP": {"lossless": True}, "JPEG": {"quality": 95}}[fmt]
    Image.fromarray(asymmetric()).save(src / name, format=fmt, exif=exif_orientation(6), **options)
    out = tmp_path / "o"
    assert main(["cutout", str(src), "--out", str(out), "--save", "original", *THRESHOLD]) == 0
    got = np.asarray(Image.open(out / f"{src.joinpath(name).stem}_original.png"))
    want = np.asarray(ImageOps.exif_transpose(Image.open(src / name)).convert("RGB"))
    assert got.shape == want.shape == (40, 20, 3), "orientation 6: rotated 90 degrees clockwise"
    assert np.abs(got.astype(int) - want).mean() < 2, "same pixels as PIL's exif_transpose (JPEG: decoder rounding)"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pil(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(asymmetric()).save(path, exif=exif_orientation(orientation))
    got = PACK.utils.imageio.read_image(path)
    want = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    assert tuple(got.shape) == (1, *want.shape)
    assert np.array_equal(PACK.utils.bridges.to_uint8(got[0]), want)


def test_orientation_keeps_16_bits_and_alpha(tmp_path):
    rng = np.random.default_rng(0)
    rgba16 = rng.integers(0, 65536, (6, 10, 4), dtype=np.uint16)  # RGBA, 16 bits per channel
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgba16, cv2.COLOR_RGBA2BGRA))
    assert ok
    path = tmp_path / "deep.png"
    path.write_bytes(with_exif_chunk(png.tobytes(), exif_orientation(6)))
    got = PACK.utils.imageio.read_image(path)[0].numpy()
    want = np.rot90(rgba16, k=-1).astype(np.float32) / 65535  # orientation 6: 90 degrees clockwise
    assert got.shape == (10, 6, 4) and np.abs(got - want).max() < 1e-6


def test_animated_gif_frames_and_jfif_are_read(main, tmp_path, photo_arrays):
    src = tmp_path / "in"
    src.mkdir()
    colours = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    frames = [Image.new("RGB", (24, 16), c) for c in colours]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.fromarray(photo_arrays["chelsea"][:40, :60]).save(src / "photo.jfif", format="JPEG", quality=95)
    out = tmp_path / "o"
    assert main(["cutout", str(src), "--out", str(out), "--save", "original", *THRESHOLD]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["anim_f0001_original.png", "anim_f0002_original.png", "anim_f0003_original.png",
                     "photo_original.png"]
    for k, colour in enumerate(colours, 1):
        frame = np.asarray(Image.open(out / f"anim_f{k:04d}_original.png").convert("RGB"))
        assert np.abs(frame.astype(int) - colour).max() <= 8, f"frame {k} holds its own colours (GIF palette)"
        meta = json.loads(Image.open(out / f"anim_f{k:04d}_original.png").text["cleancut"])
        assert meta["frame"] == k and meta["source"].endswith("anim.gif")


def test_folder_scans_name_what_they_skip(main, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "x.png")
    (src / "notes.txt").write_text("not an image")
    assert main(["cutout", str(src), "--out", str(tmp_path / "o"), *THRESHOLD]) == 0
    err = capsys.readouterr().err
    assert "notes.txt" in err or ".txt" in err, "a skipped file is mentioned"


def batch_sizes(cli, monkeypatch) -> list[int]:
    sizes, real_cut_out = [], cli.cut.cut_out

    def recording(batch, args, on_progress=None):
        sizes.append(batch.shape[0])
        return real_cut_out(batch, args, on_progress)

    monkeypatch.setattr(cli.cut, "cut_out", recording)
    return sizes


@pytest.mark.parametrize("budget, expected", [(100_000, [2, 2]), (30_000, [1, 1, 1, 1]), (10**9, [4])])
def test_batches_hold_at_most_the_pixel_budget(cli, main, tmp_path, monkeypatch, budget, expected):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):  # 240 x 200 = 48,000 pixels each, one size: one group
        Image.new("RGB", (240, 200), (60 * i, 0, 0)).save(src / f"p{i}.png")
    sizes = batch_sizes(cli, monkeypatch)
    assert main(["cutout", str(src), "--out", str(tmp_path / "o"), "--batch-size", "8", "--max-pixels",
                 str(budget), *THRESHOLD]) == 0
    assert sizes == expected, "a batch never exceeds the budget; an image larger than it goes alone"


def test_the_pixel_budget_is_documented(main, capsys):
    assert main(["cutout", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-pixels" in text and f"default {PACK.utils.imageio.MAX_PIXELS}" in text


def test_decoder_warnings_name_the_file(main, tmp_path, capfd):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "bad_icc.png", icc_profile=b"not a colour profile" * 8)
    assert main(["cutout", str(src), "--out", str(tmp_path / "o"), *THRESHOLD]) == 0
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "iCCP" in line]
    assert all("bad_icc.png" in line for line in lines), err
