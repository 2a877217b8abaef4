"""The command line on a folder of mixed files: sizes, formats, bit depths, alpha, a corrupt file."""

import json
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import PACK, ROOT, mixed_inputs
from modelfiles import u2netp_fixture  # noqa: F401  (the u2netp fixture)
from PIL import Image


@pytest.fixture(scope="module", name="cli")
def cli_fixture():
    import importlib

    return importlib.import_module(PACK.__name__ + ".cli")


@pytest.fixture(scope="module", name="main")
def main_fixture(cli):
    return cli.main


@pytest.fixture(name="folder")
def folder_fixture(tmp_path, photo_arrays):
    return mixed_inputs(tmp_path / "in", photo_arrays)


def test_threshold_cutout_of_a_mixed_folder(main, folder, tmp_path):
    out = tmp_path / "out"
    code = main(["cutout", str(folder), "--out", str(out), "--method", "threshold", "--quiet", "--batch-size", "4"])
    assert code == 1, "one corrupt input: exit code 1, the rest written"
    names = sorted(p.name for p in out.iterdir())
    stems = ["a", "b", "c", "d_rgba", "e16"]
    assert names == sorted(f"{s}_{r}.png" for s in stems for r in ("original", "cutout", "extracted", "mask"))
    d_orig = Image.open(out / "d_rgba_original.png")
    assert d_orig.mode == "RGBA", "alpha of an RGBA input is preserved in the original"
    assert np.array_equal(np.asarray(d_orig)[..., 3], np.asarray(Image.open(folder / "d_rgba.png"))[..., 3])
    cut = Image.open(out / "a_cutout.png")
    assert cut.mode == "RGBA" and cut.size == (240, 200)
    mask = np.asarray(Image.open(out / "a_mask.png"))
    assert set(np.unique(mask)) <= {0, 255} and 0 < (mask == 255).mean() < 1
    assert np.array_equal(np.asarray(cut)[..., 3], mask), "cut-out alpha is the saved mask"
    meta = json.loads(cut.text["cleancut"])
    assert meta["source"].endswith("a.png") and meta["method"] == "threshold"
    e16 = np.asarray(Image.open(out / "e16_original.png").convert("RGB"))
    assert np.abs(e16.astype(int) - photo_astro_crop(folder)).max() <= 1, "16-bit input decoded as such"


def photo_astro_crop(folder):
    return cv2.cvtColor(cv2.imread(str(folder / "e16.png"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB) // 257


def test_selected_roles_and_webp(main, folder, tmp_path):
    out = tmp_path / "out"
    code = main(["cutout", str(folder / "a.png"), str(folder / "c.webp"), "--out", str(out), "--method",
                 "threshold", "--save", "cutout,mask", "--format", "webp (lossless)", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_cutout.webp", "a_mask.webp", "c_cutout.webp", "c_mask.webp"]


def test_usage_errors(main, tmp_path):
    assert main(["cutout", str(tmp_path / "nothing*.png"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    img = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(img)
    assert main(["cutout", str(img), "--out", str(tmp_path / "o"), "--save", "everything", "--quiet"]) == 2


def test_console_entry_point_runs_as_a_module(tmp_path):
    # `python -m cleancut` needs the package name: emulate the installed layout with a symlink.
    (tmp_path / "cleancut").symlink_to(ROOT, target_is_directory=True)
    res = subprocess.run([sys.executable, "-m", "cleancut", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0 and "demo" in res.stdout and "cutout" in res.stdout


def run_interrupted(cli, main, monkeypatch, argv, presses):
    """Run ``argv`` with ``presses`` Ctrl-Cs arriving while the first batch is processed."""
    import os
    import signal

    real_cut_out = cli.cut.cut_out

    def cut_out_then_interrupt(batch, args, on_progress=None):  # the user presses Ctrl-C while the first batch runs
        out = real_cut_out(batch, args, on_progress)
        for _ in range(presses):
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(cli.cut, "cut_out", cut_out_then_interrupt)
    previous = signal.getsignal(signal.SIGINT)
    try:
        return main(argv)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_after_the_current_batch_and_keeps_its_files(cli, main, folder, tmp_path, monkeypatch,
                                                                    capsys):
    argv = ["cutout", str(folder / "a.png"), str(folder / "b.jpg"), str(folder / "c.webp"), "--out",
            str(tmp_path / "o"), "--method", "threshold", "--batch-size", "2", "--quiet"]
    assert run_interrupted(cli, main, monkeypatch, argv, presses=1) == 130
    written = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert written == sorted(f"{s}_{r}.png" for s in "ab" for r in ("original", "cutout", "extracted", "mask"))
    assert "1 input not processed" in capsys.readouterr().out, "the summary says what is left to do"


def test_second_ctrl_c_stops_at_once_with_the_summary(cli, main, folder, tmp_path, monkeypatch, capsys):
    argv = ["cutout", str(folder / "a.png"), str(folder / "b.jpg"), str(folder / "c.webp"), "--out",
            str(tmp_path / "o"), "--method", "threshold", "--batch-size", "2", "--quiet"]
    assert run_interrupted(cli, main, monkeypatch, argv, presses=2) == 130
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "KeyboardInterrupt" not in captured.err
    assert "stopped at once" in captured.err.strip().splitlines()[-1]
    assert captured.out.strip().endswith("0 done, 0 skipped, 0 failed; 0 files written to "
                                         f"{tmp_path / 'o'}; interrupted: 3 inputs not processed"), \
        "stopped inside the first batch: nothing was written, and the summary says so"
    assert not any((tmp_path / "o").iterdir())


SUMMARY = re.compile(r"cleancut cutout: (\d+) inputs: (\d+) done, 0 skipped, 0 failed; (\d+) files? written to \S+; "
                     r"interrupted: (\d+) inputs? not processed")


@pytest.mark.slow
@pytest.mark.model
def test_any_number_of_ctrl_c_ends_with_the_summary_and_exit_130(tmp_path, photo_arrays, u2netp):
    """Three Ctrl-Cs 50 ms apart aborted the process in 4 of 10 runs ("terminate called without an active
    exception", -6) or killed it (-2): the late ones hit the interpreter's teardown of torch and onnxruntime."""
    src = tmp_path / "in"
    src.mkdir()
    photos = list(photo_arrays.values())
    for i in range(16):
        Image.fromarray(photos[i % 4][i * 5:i * 5 + 200, :240]).save(src / f"p{i:02d}.png")
    (tmp_path / "cleancut").symlink_to(ROOT, target_is_directory=True)  # python -m cleancut: this tree
    for attempt, batch in enumerate((8, 2, 4, 1, 3)):  # the presses land in different phases of the run
        out = tmp_path / f"out{attempt}"
        proc = subprocess.Popen([sys.executable, "-m", "cleancut", "cutout", str(src), "--out", str(out), "--quiet",
                                 "--batch-size", str(batch)], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not any(out.glob("*_mask.png")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(3):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, (attempt, proc.returncode, stderr[-2000:])
        assert "terminate called" not in stderr and "Traceback" not in stderr, stderr
        summary = SUMMARY.fullmatch(stdout.strip().splitlines()[-1])
        assert summary, stdout
        inputs, done, written, left = map(int, summary.groups())
        files = list(out.glob("*.png"))
        assert inputs == 16 and done + left == 16 and 0 < done < 16, stdout
        assert written == len(files) == 4 * done, "the summary counts the files on disk: whole sets only"
        assert not list(out.glob(".cleancut-*.tmp"))


@pytest.mark.model
def test_rembg_cutout_and_demo(main, folder, tmp_path, u2netp):
    out = tmp_path / "r"
    assert main(["cutout", str(folder / "a.png"), "--out", str(out), "--quiet", "--alpha-matting"]) == 0
    assert Image.open(out / "a_cutout.png").mode == "RGBA" and Image.open(out / "a_extracted.png").mode == "RGBA"
    demo = tmp_path / "demo"
    assert main(["demo", "--out", str(demo), "--size", "128", "--quiet"]) == 0
    names = {p.name for p in demo.iterdir()}
    assert "contact_sheet.jpg" in names and "chelsea_extracted.png" in names and len(names) == 17
    sheet = np.asarray(Image.open(demo / "contact_sheet.jpg")).astype(int)
    assert sheet.shape[1] == 3 * 128 and sheet.shape[0] > 4 * 128, "three columns, four rows, a caption strip"
    strip = sheet[:sheet.shape[0] - 4 * 128]
    for col in range(3):  # each column has its caption: light text on the dark strip
        assert (strip[:, col * 128:(col + 1) * 128] > 180).any(), f"column {col} has no caption"
    cut = np.asarray(Image.open(demo / "chelsea_cutout.png")).astype(int)
    clear = cut[..., 3] == 0
    shown = sheet[-4 * 128:][128:2 * 128, 2 * 128:]  # chelsea's row (the second), cut-out column
    assert clear.any() and len(np.unique(shown[clear].mean(axis=1) // 40)) >= 2, "a checkerboard, not one colour"
    code = main(["cutout", str(demo), "--out", str(tmp_path / "again"), "--method", "threshold", "--quiet"])
    assert code == 2, "the demo's own files (contact sheet included) are not inputs: nothing to do"


@pytest.mark.model
def test_edges_option_reaches_the_node(main, folder, tmp_path, u2netp):
    saved = {}
    for edges in ("rembg", "straight"):
        out = tmp_path / edges
        assert main(["cutout", str(folder / "a.png"), "--out", str(out), "--quiet", "--background", "white",
                     "--edges", edges, "--save", "cutout,mask"]) == 0
        saved[edges] = np.asarray(Image.open(out / "a_cutout.png").convert("RGB")).astype(int)
    mask = np.asarray(Image.open(tmp_path / "rembg" / "a_mask.png")) / 255.0
    # on white, rembg's edges are darker (photo x mask twice): never lighter than the straight blend
    assert (saved["rembg"] <= saved["straight"] + 1).all()
    assert (saved["rembg"] < saved["straight"] - 2)[(mask > 0.2) & (mask < 0.8)].any()


def test_models_list_reports_presence_and_md5(main, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    (tmp_path / "u2netp.onnx").write_bytes(b"not the model")
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    u2netp = next(line for line in lines if line.split()[0] == "u2netp")
    assert "md5" in u2netp.lower() and str(tmp_path) in u2netp


@pytest.mark.model
def test_progress_advances_per_image_within_a_batch(main, folder, tmp_path, monkeypatch, u2netp):
    """The bar used to move once per batch (matting sat at 0/29 for 82 s): it follows the cut-out now."""
    import tqdm

    positions = []
    real = tqdm.tqdm.refresh
    monkeypatch.setattr(tqdm.tqdm, "refresh", lambda self, *a, **k: positions.append(self.n) or real(self, *a, **k))
    same = tmp_path / "same"
    same.mkdir()
    for i in range(4):
        Image.open(folder / "a.png").save(same / f"s{i}.png")
    assert main(["cutout", str(same), "--out", str(tmp_path / "o"), "--batch-size", "4", "--save", "mask"]) == 0
    assert {1, 2, 3} <= set(positions), f"the bar only saw {sorted(set(positions))}"
