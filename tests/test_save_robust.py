"""Save Cut-outs under bad conditions: failed writes, concurrent saves, bad prefixes, path variables."""

import os
import re
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture
def outdir(tmp_path, monkeypatch):
    root = tmp_path / "output"
    root.mkdir()
    monkeypatch.setenv("CLEANCUT_OUTPUT_DIR", str(root))
    return root


@pytest.fixture
def node(pack):
    return pack.NODE_CLASS_MAPPINGS["CleanCutSave"]()


@pytest.fixture
def saving(pack):
    return pack.utils.saving


@pytest.fixture
def checks(pack):
    return pack.utils.checks


def all_files(folder):
    """Every file below ``folder``, hidden ones (temporary files) included, relative and sorted."""
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


# --- 1. a failed write leaves nothing behind --------------------------------------------------------------


def test_too_wide_webp_is_refused_before_anything_is_written(node, outdir, checks):
    with pytest.raises(checks.SettingError, match="16383") as err:
        node.save("w/x", "webp (lossless)", original=torch.rand(1, 1, 8, 3), cutout=torch.rand(1, 1, 16384, 4))
    assert err.value.name == "format" and "png" in err.value.message, "names the input and the way out"
    assert all_files(outdir) == [], "no 0-byte file, no half set"


def failing_save(monkeypatch, fail_on: int, message="No space left on device"):
    """Patch Pillow so that its ``fail_on``-th save writes a few bytes, then fails as a full disk does."""
    real, calls = Image.Image.save, []

    def save(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == fail_on:
            fp.write(b"\x89PNG partial")
            raise OSError(28, message)
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    return calls


def test_failed_write_keeps_whole_items_only_and_says_what_was_saved(node, outdir, checks, monkeypatch):
    original, cutout = torch.rand(3, 8, 8, 3), torch.rand(3, 8, 8, 4)
    failing_save(monkeypatch, fail_on=4)  # item 2's cut-out (files go original, cutout per item)
    with pytest.raises(checks.CleanCutError) as err:
        node.save("f/x", "png", original=original, cutout=cutout)
    msg = str(err.value)
    assert err.value.name == "filename_prefix"
    assert "No space left on device" in msg and "x_00002_cutout.png" in msg, "says what failed"
    assert "x_00001" in msg and "x_00001_original.png" in msg, "says what was saved before"
    assert isinstance(err.value.__cause__, OSError)
    assert all_files(outdir) == ["f/x_00001_cutout.png", "f/x_00001_original.png"], "no partial, temp or half item"
    back = np.asarray(Image.open(outdir / "f" / "x_00001_cutout.png"))
    assert np.array_equal(back, np.rint(cutout[0].numpy() * 255).astype(np.uint8)), "item 1 intact"


def test_failed_first_write_says_nothing_was_saved(node, outdir, checks, monkeypatch):
    failing_save(monkeypatch, fail_on=1)
    with pytest.raises(checks.CleanCutError, match="Nothing was saved"):
        node.save("x", "webp (lossless)", original=torch.rand(1, 8, 8, 3))
    assert all_files(outdir) == []


def test_write_item_failure_leaves_no_file(saving, checks, tmp_path, monkeypatch):
    failing_save(monkeypatch, fail_on=2)
    items = {"original": torch.rand(1, 8, 8, 3), "mask": torch.rand(1, 8, 8)}
    with pytest.raises(checks.CleanCutError, match="No space left"):
        saving.write_item(str(tmp_path), "stem", items, 0)
    assert all_files(tmp_path) == []


def test_write_item_never_overwrites_and_keeps_the_item_whole(saving, checks, tmp_path):
    (tmp_path / "stem_mask.png").write_bytes(b"someone else's file")
    items = {"original": torch.rand(1, 8, 8, 3), "mask": torch.rand(1, 8, 8)}
    with pytest.raises(checks.CleanCutError, match="exists already"):
        saving.write_item(str(tmp_path), "stem", items, 0)
    assert (tmp_path / "stem_mask.png").read_bytes() == b"someone else's file"
    assert all_files(tmp_path) == ["stem_mask.png"], "the original of that item is not left alone either"


def test_files_get_the_usual_permissions(saving, tmp_path):
    saving.write_item(str(tmp_path), "p", {"original": torch.rand(1, 4, 4, 3)}, 0)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "p_original.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_saving_works_without_hard_links(node, outdir, saving, monkeypatch):
    def no_link(src, dst):
        raise PermissionError(1, "Operation not permitted")  # FAT/exFAT drives, some network shares

    monkeypatch.setattr(saving.os, "link", no_link)
    (outdir / "h_00002_mask.png").write_bytes(b"keep")
    node.save("h", "png", original=torch.rand(2, 8, 8, 3))
    assert all_files(outdir) == ["h_00002_mask.png", "h_00003_original.png", "h_00004_original.png"]
    assert (outdir / "h_00002_mask.png").read_bytes() == b"keep"


@pytest.mark.parametrize("hard_links", [True, False])
def test_name_taken_during_placement_moves_the_whole_item_on(saving, outdir, monkeypatch, hard_links):
    real_link, calls = saving._link, []
    if not hard_links:
        monkeypatch.setattr(saving.os, "link", lambda src, dst: (_ for _ in ()).throw(PermissionError(1, "no")))

    def link(temp, final):  # another process writes r_00001_mask.png just after our original is placed
        calls.append(final)
        if len(calls) == 2:
            (outdir / "r_00001_mask.png").write_bytes(b"theirs")
        return real_link(temp, final)

    monkeypatch.setattr(saving, "_link", link)
    original, mask = torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8)
    saved = saving.save_set(str(outdir), "r", {"original": original, "mask": mask})
    assert [s["filename"] for s in saved] == ["r_00002_original.png", "r_00002_mask.png"]
    assert all_files(outdir) == ["r_00001_mask.png", "r_00002_mask.png", "r_00002_original.png"]
    assert (outdir / "r_00001_mask.png").read_bytes() == b"theirs"
    back = np.asarray(Image.open(outdir / "r_00002_original.png"))
    assert np.array_equal(back, np.rint(original[0].numpy() * 255).astype(np.uint8)), "moved back, then placed"


def test_other_role_appearing_under_our_counter_moves_the_item_on(saving, outdir, monkeypatch):
    real_place, calls = saving._place, []

    def place(pairs):  # another process put a cut-out under our counter while we placed the original
        calls.append(pairs)
        real_place(pairs)
        if len(calls) == 1:
            (outdir / "o_00001_cutout.png").write_bytes(b"theirs")

    monkeypatch.setattr(saving, "_place", place)
    saving.save_set(str(outdir), "o", {"original": torch.rand(1, 8, 8, 3)})
    assert all_files(outdir) == ["o_00001_cutout.png", "o_00002_original.png"], "never one set of two runs"


# --- 2. concurrent saves to one prefix --------------------------------------------------------------------


def run_threads(n, target):
    barrier, errors = threading.Barrier(n), []

    def worker(i):
        barrier.wait()
        try:
            target(i)
        except Exception as exc:  # collected: the assertion shows every failure
            errors.append(f"{i}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_saves_to_one_prefix_all_succeed(saving, outdir):
    n, results = 20, {}

    def save(i):
        level = i / (n - 1)
        items = {"original": torch.full((1, 4, 4, 3), level), "mask": torch.full((1, 4, 4), level)}
        results[i] = saving.save_set(str(outdir), "c/x", items)

    assert run_threads(n, save) == []
    stems = {}
    for i, saved in results.items():
        assert [s["role"] for s in saved] == ["original", "mask"]
        counters = {re.match(r"x_(\d+)_", s["filename"]).group(1) for s in saved}
        assert len(counters) == 1, "one item, one counter"
        stems[counters.pop()] = i
        for s in saved:  # nobody's file was overwritten by another thread
            assert np.asarray(Image.open(s["path"])).flat[0] == round(i / (n - 1) * 255)
    assert len(stems) == n, "counters are unique"
    assert len(all_files(outdir)) == 2 * n, "no file lost, no temp file left"


def test_concurrent_saves_with_different_roles_never_share_a_counter(saving, outdir):
    n, results = 20, {}

    def save(i):
        role = "original" if i % 2 else "cutout"
        results[i] = saving.save_set(str(outdir), "d", {role: torch.rand(1, 4, 4, 3)})

    assert run_threads(n, save) == []
    counters = [re.match(r"d_(\d+)_", s["filename"]).group(1) for saved in results.values() for s in saved]
    assert len(set(counters)) == n, "an original and a cut-out of different runs never form one set"


# --- 3. filename_prefix ------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix, match", [
    ("a" * 240, "too long"),
    ("d" * 300 + "/x", "too long"),
    ("a\x00b", "control character"),
    ("a\nb", "control character"),
    (123, "expected text"),
    (None, "expected text"),
    (["a"], "expected text"),
])
def test_bad_prefix_is_a_setting_error(node, outdir, checks, prefix, match):
    with pytest.raises(checks.SettingError, match=match) as err:
        node.save(prefix, "png", original=torch.rand(1, 8, 8, 3))
    assert err.value.name == "filename_prefix"
    assert all_files(outdir) == []


def test_longest_allowed_prefix_saves(node, outdir):
    node.save("a" * 200, "webp (lossless)", extracted=torch.rand(1, 4, 4, 4))
    assert all_files(outdir) == ["a" * 200 + "_00001_extracted.webp"]


def test_folder_part_that_is_a_file_is_a_setting_error(node, outdir, checks):
    (outdir / "taken").write_bytes(b"a file")
    for prefix in ("taken/x", "taken/deeper/x"):
        with pytest.raises(checks.SettingError, match="'taken' is a file") as err:
            node.save(prefix, "png", original=torch.rand(1, 8, 8, 3))
        assert err.value.name == "filename_prefix"
    assert all_files(outdir) == ["taken"]


@pytest.mark.parametrize("prefix, folder", [("a/..", ""), ("s/t/../..", ""), (".", ""), ("./", ""), ("", ""),
                                            ("  ", "")])
def test_name_part_is_never_empty_or_dots(node, outdir, prefix, folder):
    node.save(prefix, "png", original=torch.rand(1, 8, 8, 3))
    assert all_files(outdir) == [os.path.join(folder, "cleancut_00001_original.png")]


def test_symlink_out_of_the_output_folder_is_refused(node, outdir, checks, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (outdir / "link").symlink_to(elsewhere, target_is_directory=True)
    for prefix in ("link/x", "link/sub/x"):
        with pytest.raises(checks.SettingError, match="outside the output folder") as err:
            node.save(prefix, "png", original=torch.rand(1, 8, 8, 3))
        assert err.value.name == "filename_prefix"
    assert all_files(elsewhere) == []


def test_symlinks_that_stay_inside_are_fine(node, outdir, tmp_path, monkeypatch):
    (outdir / "real").mkdir()
    (outdir / "alias").symlink_to(outdir / "real", target_is_directory=True)
    res = node.save("alias/x", "png", original=torch.rand(1, 8, 8, 3))
    assert (outdir / "real" / "x_00001_original.png").exists()
    assert res["ui"]["images"][0]["subfolder"] == "alias", "the path the UI's /view endpoint accepts"
    linked_root = tmp_path / "linked_output"  # ComfyUI's output folder itself may be a symlink
    linked_root.symlink_to(outdir, target_is_directory=True)
    monkeypatch.setenv("CLEANCUT_OUTPUT_DIR", str(linked_root))
    res = node.save("sub/y", "png", original=torch.rand(1, 8, 8, 3))
    assert (outdir / "sub" / "y_00001_original.png").exists() and res["ui"]["images"][0]["subfolder"] == "sub"


def test_core_variables_are_expanded(saving):
    now = time.struct_time((2024, 3, 7, 9, 5, 2, 3, 67, 0))
    got = saving.expand_variables("%year%-%month%-%day%/x_%hour%%minute%%second%_%width%x%height%", now, (640, 480))
    assert got == "2024-03-07/x_090502_640x480"
    assert saving.expand_variables("%date:yyyy-MM-dd%/%date:yyMMdd_hhmmss%_%date:d.M%", now) == \
        "2024-03-07/240307_090502_7.3"
    assert saving.expand_variables("100%_%unknown%_%", now) == "100%_%unknown%_%", "others left as written"


def test_node_expands_variables(node, outdir):
    node.save("%year%-%month%-%day%/x_%width%", "png", original=torch.rand(1, 8, 12, 3))
    (name,) = all_files(outdir)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}/x_12_00001_original\.png", name), name


# --- 4. the node's widgets and the other inputs ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", None, 3])
def test_bad_format_is_a_setting_error(node, outdir, checks, fmt):
    with pytest.raises(checks.SettingError, match="png") as err:
        node.save("x", fmt, original=torch.rand(1, 8, 8, 3))
    assert err.value.name == "format"


def test_node_checks_widgets(node, outdir, monkeypatch):
    seen = []
    monkeypatch.setattr(type(node), "check_widgets", classmethod(lambda cls, values: seen.append(values)))
    node.save("x", "png", original=torch.rand(1, 8, 8, 3))
    assert seen and seen[0]["format"] == "png"


def test_unserialisable_metadata_is_a_setting_error(node, outdir, checks):
    with pytest.raises(checks.SettingError, match="JSON") as err:
        node.save("x", "png", original=torch.rand(1, 8, 8, 3), extra_pnginfo={"workflow": object()})
    assert "workflow" in str(err.value)
    assert all_files(outdir) == []


def test_extra_pnginfo_that_is_not_a_dict_is_a_setting_error(node, outdir, checks):
    with pytest.raises(checks.SettingError, match="extra_pnginfo: expected a dict"):
        node.save("x", "png", original=torch.rand(1, 8, 8, 3), extra_pnginfo=["workflow"])
    assert all_files(outdir) == []


def test_item_errors_are_input_errors(node, outdir, saving, checks):
    with pytest.raises(checks.InputError, match="original: 2, cutout: 3"):
        node.save("e", "png", original=torch.rand(2, 8, 8, 3), cutout=torch.rand(3, 8, 8, 4))
    with pytest.raises(checks.InputError, match="Nothing to save"):
        node.save("e", "png")
    with pytest.raises(checks.SettingError, match="original, cutout") as err:
        saving.check_items({"thumbnail": torch.rand(1, 8, 8, 3)})
    assert err.value.name == "thumbnail"
