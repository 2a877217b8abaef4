"""The ray engine against the local engine: same files byte for byte, same summary, work not lost.

One local Ray instance (2 CPUs) serves the module. The CLI is driven through the package ``cleancut`` (the
name Ray workers import the pack by), installed by README's test command.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, mixed_inputs
from modelfiles import u2netp_fixture  # noqa: F401  (the u2netp fixture)
from PIL import Image

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.model]

cli = importlib.import_module("cleancut.cli")
engine = importlib.import_module("cleancut.cli.ray_engine")
cut = importlib.import_module("cleancut.cli.cut")
bridges = importlib.import_module("cleancut.utils.bridges")
options = importlib.import_module("cleancut.cli.options")
PACKAGE = engine.PACKAGE


@pytest.fixture(scope="module", autouse=True)
def local_ray(u2netp):
    """A 2-CPU local Ray instance for the module (started after $U2NET_HOME is set: workers inherit it)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(name="folder")
def folder_fixture(tmp_path, photo_arrays):
    """The command-line tests' mixed folder (sizes, formats, RGBA, 16-bit, a corrupt file) and an animated file."""
    src = mixed_inputs(tmp_path / "in", photo_arrays)
    cat = photo_arrays["chelsea"]
    frames = [Image.fromarray(cat[i * 10:i * 10 + 80, :100]) for i in range(3)]
    frames[0].save(src / "g_anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    return src


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = cli.main(["cutout", *map(str, argv), "--quiet"])
    return code, capsys.readouterr().out.strip()


@pytest.mark.parametrize("extra", [[], ["--refine", "guided filter", "--clip-limit", "2.0", "--format", "webp"]])
def test_ray_writes_the_local_engines_files_and_summary(folder, tmp_path, capsys, extra):
    local_code, local_summary = run_cli(capsys, folder, "--out", tmp_path / "local", *extra)
    ray_code, ray_summary = run_cli(capsys, folder, "--out", tmp_path / "ray", "--engine", "ray", *extra)
    same = ray_summary.replace(str(tmp_path / "ray"), str(tmp_path / "local"))
    assert (ray_code, same) == (local_code, local_summary) and ray_code == options.EXIT_FAILED  # corrupt: alone
    assert "7 inputs: 6 done, 0 skipped, 1 failed" in ray_summary
    local, remote = files(tmp_path / "local"), files(tmp_path / "ray")
    assert local == remote and len(local) == 8 * 4  # 5 stills + 3 frames, 4 roles each: byte for byte
    # a second run skips what is done, as the local engine does
    assert run_cli(capsys, folder, "--out", tmp_path / "ray", "--engine", "ray", *extra)[1].startswith(
        "cleancut cutout: 7 inputs: 0 done, 6 skipped")


def test_ray_writes_the_local_engines_videos(tmp_path, capsys, photo_arrays):
    """A clip is one work item: a worker streams it whole and writes what the local engine writes, byte for byte
    (PNG sequences: no encoder in between), with the same summary."""
    from test_cli_video import make_clip

    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "clip.mp4", audio=True)
    Image.fromarray(photo_arrays["chelsea"][:60, :80]).save(src / "still.png")
    extra = ["--method", "threshold", "--video-format", "png", "--temporal", "0.5", "--batch-size", "4"]
    local_code, local_summary = run_cli(capsys, src, "--out", tmp_path / "local", *extra)
    ray_code, ray_summary = run_cli(capsys, src, "--out", tmp_path / "ray", "--engine", "ray", *extra)
    assert (ray_code, ray_summary.replace(str(tmp_path / "ray"), str(tmp_path / "local"))) == (local_code,
                                                                                               local_summary)
    assert "2 inputs (1 image, 1 video; 12 video frames cut out): 2 done" in ray_summary

    def tree(folder):
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    local, remote = tree(tmp_path / "local"), tree(tmp_path / "ray")
    assert local == remote and len(local) == 4 + 2 * 12  # the still's set, two sequences of 12 frames


def test_a_worker_killed_mid_run_loses_nothing(folder, tmp_path, capsys):
    run_cli(capsys, folder, "--out", tmp_path / "local", "--batch-size", "1")
    args = options.build_parser().parse_args(["cutout", str(folder), "--out", str(tmp_path / "ray"), "--quiet",
                                              "--engine", "ray", "--batch-size", "1", "--workers", "2"])
    options.resolve(args)
    found, todo, failed, skipped = cli.gather(args)
    marker = tmp_path / "died"
    code = engine.run_on_ray(args, found, todo, failed, skipped, fault=(str(marker), "c"))
    summary = capsys.readouterr().out
    assert marker.exists(), "the fault did not fire: the test would prove nothing"
    assert code == options.EXIT_FAILED and "6 done, 0 skipped, 1 failed; 32 files written" in summary
    assert files(tmp_path / "ray") == files(tmp_path / "local")  # every image written, once (no _1 duplicates)


def ray_command(src, out, *extra) -> subprocess.Popen:
    """``cleancut cutout --engine ray`` in a process of its own (its own local Ray instance), output captured."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen([sys.executable, "-m", PACKAGE, "cutout", str(src), "--out", str(out), "--engine", "ray",
                             "--quiet", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


RAY_ERROR = re.compile(r"ERROR|max_restarts|^\[[^]]* E \d+ \d+\]", re.M)  # Python's and Ray Core's error lines


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_summary_counts_the_sets_on_disk_and_leaves_no_temporary_file(tmp_path, photo_arrays, presses):
    """The summary said "0 done ... 0 files written" with complete sets on disk, and a temporary file stayed."""
    src = tmp_path / "in"
    src.mkdir()
    photos = list(photo_arrays.values())
    for i in range(12):  # large enough that a batch's writes take a while: the second press lands in them
        Image.fromarray(photos[i % 4][:384, i * 4:i * 4 + 384]).save(src / f"p{i:02d}.png")
    out = tmp_path / "out"
    proc = ray_command(src, out)
    deadline = time.monotonic() + 180
    while not any(out.glob("*_mask.png")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)  # two presses inside one wait of the driver count once
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == options.EXIT_INTERRUPTED, stderr[-2000:]
    summary = re.search(r"12 inputs: (\d+) done, 0 skipped, 0 failed; (\d+) files? written to .*; interrupted: "
                        r"(\d+) inputs? not processed", stdout)
    assert summary, stdout + stderr[-2000:]
    done, written, left = map(int, summary.groups())
    files = sorted(p.name for p in out.iterdir())
    assert [n for n in files if n.startswith(".")] == [], "no temporary file stays in --out"
    assert written == len(files) == 4 * done and done > 0 and done + left == 12, (stdout, files)
    assert not RAY_ERROR.search(stderr), stderr


def test_a_ray_run_logs_no_error_and_removes_stale_temporary_files(tmp_path, photo_arrays):
    """Every run printed Ray Core's ERROR line "has constructor arguments in the object store and max_restarts >
    0" (Ray Data's pool actors take their settings by reference); a killed run's temporary file stayed for good."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        Image.fromarray(photo_arrays["chelsea"][:64, i * 64:i * 64 + 96]).save(src / f"p{i}.png")
    out = tmp_path / "out"
    out.mkdir()
    stale, live = out / f".cleancut-{'a' * 32}.tmp", out / f".cleancut-{'b' * 32}.tmp"
    for path in (stale, live):
        path.write_bytes(b"")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    stdout, stderr = ray_command(src, out, "--method", "threshold").communicate(timeout=180)
    assert "2 inputs: 2 done" in stdout, stdout + stderr
    assert not RAY_ERROR.search(stderr), stderr
    assert not stale.exists() and live.exists(), "a stale temporary file is removed, a recent one (a live write) kept"


def test_engine_flags_apply_to_ray_only(folder, tmp_path, capsys):
    for flag, value in (("--workers", "2"), ("--address", "auto"), ("--gpus-per-worker", "1")):
        assert cli.main(["cutout", str(folder), "--out", str(tmp_path / "o"), flag, value, "--quiet"]) == \
            options.EXIT_USAGE
        assert "applies with --engine ray only" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [
    ["--refine", "closed-form", "--erode-size", "4", "--saturation", "1.3", "--save", "cutout,mask", "--format",
     "webp", "--decontaminate"],
    ["--model", "u2net_custom", "--model-file", "my net.onnx", "--runtime", "onnxruntime"],  # the rembg node's
    ["--method", "threshold", "--refine", "guided filter", "--decontaminate"],
])
def test_canonical_flags_rebuild_the_same_settings(folder, tmp_path, extra):
    args = options.build_parser().parse_args(["cutout", str(folder), "--out", str(tmp_path), *extra])
    options.resolve(args)
    flags = options.canonical_flags(args)
    assert {f for f in extra if f.startswith("--")} <= set(flags), "every flag given travels to the workers"
    again = engine._worker_args(flags, 0)
    for name in ("settings", "options", "refine_options", "roles", "format", "method"):
        assert getattr(again, name) == getattr(args, name), name


def test_library_entry_point_on_a_dataset(photo_arrays):
    images = [photo_arrays["chelsea"][:120, :160], photo_arrays["astronaut"][:120, :160],
              photo_arrays["coffee"][:96, :128]]
    ds = ray.data.from_items([{"image": im, "id": i} for i, im in enumerate(images)])
    rows = sorted(ds.map_batches(engine.CutoutImages, fn_constructor_kwargs={"model": "u2netp"}, batch_size=2,
                                 compute=ray.data.ActorPoolStrategy(size=1)).take_all(), key=lambda r: r["id"])
    args = engine._worker_args([], 0)
    for row, im in zip(rows, images, strict=True):
        local = cut.cut_out(bridges.pil2tensor([Image.fromarray(im)]), args)
        assert np.array_equal(row["cutout"], bridges.tensor2np(local["cutout"])[0])
        assert row["cutout"].shape == (*im.shape[:2], 4) and row["mask"].shape == im.shape[:2]


def test_the_pack_and_the_local_cli_never_import_ray(tmp_path):
    code = ("import sys, cleancut, cleancut.cli\n"
            "rc = cleancut.cli.main(['cutout', sys.argv[1], '--out', sys.argv[2], '--method', 'threshold',\n"
            "                        '--quiet'])\n"
            "print(rc, 'ray' in sys.modules)\n")
    img = tmp_path / "x.png"
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(img)
    done = subprocess.run([sys.executable, "-c", code, str(img), str(tmp_path / "o")], capture_output=True,
                          text=True, cwd=ROOT.parent)
    assert done.stdout.splitlines()[-1].split() == ["0", "False"], done.stderr  # after the summary line


def test_without_ray_the_engine_says_what_to_install_before_reading_anything(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: importing it fails
    out = tmp_path / "never"
    assert cli.main(["cutout", str(folder), "--out", str(out), "--engine", "ray", "--quiet"]) == options.EXIT_USAGE
    assert 'pip install "cleancut[ray]"' in capsys.readouterr().err and not out.exists()


def test_gpu_workers_on_a_cluster_without_gpus_are_refused_not_left_waiting(folder, tmp_path, capsys):
    code = cli.main(["cutout", str(folder), "--out", str(tmp_path / "g"), "--engine", "ray", "--gpus-per-worker",
                     "1", "--quiet"])
    assert code == options.EXIT_USAGE and "--gpus-per-worker: the Ray cluster has 0 GPUs" in capsys.readouterr().err
