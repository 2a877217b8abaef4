"""What the command line writes: re-runs, --overwrite, output names, and earlier outputs among the inputs."""

import errno
import json
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image
from test_cli import cli_fixture, folder_fixture, main_fixture  # noqa: F401  (fixtures cli, folder, main)

THRESHOLD = ["--method", "threshold", "--quiet"]
ROLES = ("original", "cutout", "extracted", "mask")


@pytest.fixture
def clean(folder, tmp_path):
    """Three readable inputs (the mixed folder without its corrupt file)."""
    src = tmp_path / "clean"
    src.mkdir()
    for name in ("a.png", "b.jpg", "c.webp"):
        shutil.copy(folder / name, src / name)
    return src


def sources(out) -> dict[str, str]:
    """Output file name -> the input it was made from (its "cleancut" PNG text chunk)."""
    return {p.name: json.loads(Image.open(p).text["cleancut"])["source"] for p in sorted(out.iterdir())}


def test_a_rerun_skips_inputs_whose_outputs_exist(main, clean, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["cutout", str(clean), "--out", str(out), *THRESHOLD]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert main(["cutout", str(clean), "--out", str(out), *THRESHOLD]) == 0, "a second run does not crash"
    assert "3 skipped" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before, "skipped: nothing rewritten"


def test_an_incomplete_set_is_redone_and_overwrite_redoes_everything(main, clean, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["cutout", str(clean), "--out", str(out), *THRESHOLD]) == 0
    reference = np.asarray(Image.open(out / "a_mask.png"))
    (out / "a_mask.png").unlink()  # as an interrupted run leaves it
    Image.new("L", (240, 200), 7).save(out / "b_mask.png")  # a stale file of a complete set
    capsys.readouterr()
    assert main(["cutout", str(clean), "--out", str(out), *THRESHOLD]) == 0
    assert np.array_equal(np.asarray(Image.open(out / "a_mask.png")), reference), "a's set is completed"
    assert "2 skipped" in capsys.readouterr().out
    assert np.asarray(Image.open(out / "b_mask.png")).max() == 7, "b's set was complete: left alone"
    assert main(["cutout", str(clean), "--out", str(out), "--overwrite", *THRESHOLD]) == 0
    assert np.asarray(Image.open(out / "b_mask.png")).max() == 255, "--overwrite replaces the earlier files"
    assert len(list(out.iterdir())) == 3 * len(ROLES)


@pytest.mark.parametrize("case", ["read-only folder", "a file on the path"])
def test_an_output_folder_that_cannot_be_made_is_one_line_and_the_summary(main, clean, tmp_path, capsys, case):
    parent = tmp_path / "parent"
    if case == "read-only folder":
        parent.mkdir()
        parent.chmod(0o555)
        if os.access(parent, os.W_OK):
            parent.chmod(0o755)
            pytest.skip("running as root: a read-only folder is writable all the same")
    else:  # fails for root too
        parent.write_text("a file, not a folder")
    out = parent / "cut" / "sub"  # its sub-folders must be made
    try:
        code = main(["cutout", str(clean), "--out", str(out), *THRESHOLD])
    finally:
        if parent.is_dir():
            parent.chmod(0o755)
    captured = capsys.readouterr()
    assert code == 1
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "cannot create the output folder" in err[0] and str(out) in err[0], err
    assert "Errno" not in err[0] and ("Permission denied" in err[0] or "Not a directory" in err[0]), "why, in words"
    assert captured.out.strip() == (f"cleancut cutout: 3 inputs: 0 done, 0 skipped, 0 failed; 0 files written to "
                                    f"{out}; stopped (no output folder): 3 inputs not processed")


@pytest.mark.parametrize("code, chained", [(errno.ENOSPC, False), (errno.EDQUOT, True)])
def test_a_full_disk_stops_the_run_and_names_the_rest_as_not_processed(cli, main, tmp_path, photo_arrays,
                                                                       monkeypatch, capsys, code, chained):
    src = tmp_path / "six"
    src.mkdir()
    for i in range(6):
        Image.fromarray(photo_arrays["coffee"][i * 10:i * 10 + 60, :80]).save(src / f"p{i}.png")
    saving = cli.images.saving
    real_write, real_cut = saving.write_item, cli.cut.cut_out
    calls = {"cut": 0, "write": 0}

    def write_until_full(*args, **kwargs):  # the first input fits, then the disk is full
        calls["write"] += 1
        if calls["write"] == 1:
            return real_write(*args, **kwargs)
        full = OSError(code, os.strerror(code))
        if not chained:
            raise full
        raise saving.SaveError("cutout", f"could not write ({full}); no file of this item was kept.") from full

    def counted_cut(*args, **kwargs):
        calls["cut"] += 1
        return real_cut(*args, **kwargs)

    monkeypatch.setattr(saving, "write_item", write_until_full)
    monkeypatch.setattr(cli.cut, "cut_out", counted_cut)
    out = tmp_path / "o"
    assert main(["cutout", str(src), "--out", str(out), "--batch-size", "1", *THRESHOLD]) == 1
    assert calls == {"cut": 2, "write": 2}, "nothing is decoded and cut out after the first 'no space'"
    captured = capsys.readouterr()
    assert captured.out.strip() == (f"cleancut cutout: 6 inputs: 1 done, 0 skipped, 1 failed; 4 files written to "
                                    f"{out}; stopped ({os.strerror(code)}): 4 inputs not processed")
    assert os.strerror(code) in captured.err and len(list(out.iterdir())) == 4


def test_a_run_removes_stale_temporary_files_and_only_those(main, clean, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    old = time.time() - 3600
    stale = out / f".cleancut-{'a' * 32}.tmp"  # what a run killed mid-write left behind
    live = out / f".cleancut-{'b' * 32}.tmp"  # another process writing now
    foreign = out / ".cleancut-notes.tmp"  # not a name the pack gives its temporary files
    for path in (stale, live, foreign):
        path.write_bytes(b"")
    os.utime(stale, (old, old))
    os.utime(foreign, (old, old))
    assert main(["cutout", str(clean), "--out", str(out), *THRESHOLD]) == 0
    assert not stale.exists() and live.exists() and foreign.exists()


def test_demo_runs_twice_into_the_same_folder(main, tmp_path):
    out = tmp_path / "demo"
    for _ in range(2):
        assert main(["demo", "--out", str(out), "--size", "64", *THRESHOLD]) == 0
    assert len(list(out.iterdir())) == 4 * len(ROLES) + 1


def test_output_names_depend_on_the_input_set_not_its_order(main, tmp_path, photo_arrays):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    cat = photo_arrays["chelsea"]
    Image.fromarray(cat[:40, :50]).save(src / "cat.png")
    Image.fromarray(cat[40:80, :50]).save(src / "cat.jpg")
    Image.fromarray(cat[80:120, :50]).save(src / "cat-2.png")
    Image.fromarray(cat[:40, 50:100]).save(src / "sub" / "cat.png")
    inputs = [str(src / n) for n in ("cat.png", "cat.jpg", "cat-2.png", "sub/cat.png")]
    made = {}
    for order, paths in (("forward", inputs), ("reverse", inputs[::-1])):
        out = tmp_path / order
        assert main(["cutout", *paths, "--out", str(out), *THRESHOLD]) == 0
        made[order] = sources(out)
    assert made["forward"] == made["reverse"]
    assert len(made["forward"]) == 4 * len(ROLES), "four inputs, no collision"
    by_stem = {name.rsplit("_", 1)[0]: src_path for name, src_path in made["forward"].items()}
    assert by_stem["cat-2"].endswith("cat-2.png"), "an input keeps its own name when it is unique"
    assert len(set(by_stem.values())) == 4


def test_earlier_outputs_in_an_input_folder_are_not_processed_again(main, clean, tmp_path, capsys):
    assert main(["cutout", str(clean), "--out", str(clean), *THRESHOLD]) == 0, "--out may be the input folder"
    first = sorted(p.name for p in clean.iterdir())
    capsys.readouterr()
    assert main(["cutout", str(clean), "--out", str(clean), *THRESHOLD]) == 0
    assert sorted(p.name for p in clean.iterdir()) == first, "no x_cutout_cutout.png"
    captured = capsys.readouterr()
    assert "3 skipped" in captured.out and "earlier CleanCut output" in captured.err
    other = tmp_path / "other"
    assert main(["cutout", str(clean / "*_cutout.png"), "--out", str(other), *THRESHOLD]) == 2, \
        "a glob that finds only earlier outputs finds no input"


def test_output_stems_are_unique_and_order_free_with_frames_and_case():
    from pathlib import Path

    from conftest import PACK

    stems = PACK.utils.imageio.output_stems
    paths = [Path(p) for p in ("/a/cat.png", "/a/cat.jpg", "/a/Cat.png", "/a/sub/cat.png", "/a/cat-2.png",
                               "/a/cat.gif", "/a/cat_f0001.png")]
    frames = {Path("/a/cat.gif"): 2}  # cat.gif's first frame would be named like cat_f0001.png
    named = stems(paths, frames)
    assert named == stems(paths[::-1], frames) == stems(paths[2:] + paths[:2], frames)
    finals = [f"{named[p]}_f{k + 1:04d}" if p in frames else named[p] for p in paths for k in range(frames.get(p, 1))]
    assert len({s.casefold() for s in finals}) == len(finals), finals
    assert named[Path("/a/cat-2.png")] == "cat-2" and named[Path("/a/sub/cat.png")] == "sub_cat_png"


@pytest.mark.model
def test_refine_runs_refine_edges_on_the_cut(main, u2netp, photo_arrays, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo_arrays["chelsea"][:120, :160]).save(src / "cat.png")
    runs = {}
    for name, extra in (("plain", []), ("refined", ["--refine", "guided filter", "--band-width", "8"]),
                        ("unmixed", ["--decontaminate"]),
                        ("both", ["--refine", "guided filter", "--band-width", "8", "--decontaminate"])):
        out = tmp_path / name
        assert main(["cutout", str(src), "--out", str(out), "--quiet", "--save", "cutout,mask", *extra]) == 0
        runs[name] = {r: np.asarray(Image.open(out / f"cat_{r}.png")) for r in ("cutout", "mask")}
        meta = json.loads(Image.open(out / "cat_cutout.png").text["cleancut"])
        assert meta.get("refine") == ("guided filter" if name in ("refined", "both") else None)
        assert meta["decontaminate"] is (name in ("unmixed", "both"))
    plain, refined, unmixed, both = runs["plain"], runs["refined"], runs["unmixed"], runs["both"]
    assert np.array_equal(both["mask"], refined["mask"]) and not np.array_equal(both["cutout"], refined["cutout"])
    assert not np.array_equal(plain["mask"], refined["mask"])  # the edge moved
    assert np.array_equal(refined["cutout"][..., 3], refined["mask"])
    assert np.array_equal(plain["mask"], unmixed["mask"]) and not np.array_equal(plain["cutout"], unmixed["cutout"])
