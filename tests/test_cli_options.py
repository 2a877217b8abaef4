"""The command line's options: derived from the library and the node declarations, checked once, up front."""

import dataclasses
import json
import re

import numpy as np
import pytest
from conftest import PACK
from PIL import Image
from test_cli import cli_fixture, main_fixture  # noqa: F401  (fixtures cli, main)


def help_entries(main, capsys, command="cutout") -> dict[str, str]:
    """``--flag`` -> its help entry (names, metavar and text) with whitespace removed (argparse wraps lines)."""
    assert main([command, "--help"]) == 0
    entries, current = {}, None
    for line in capsys.readouterr().out.splitlines():
        if re.match(r"^  -", line):  # an option's first line
            current = line.split()[0].rstrip(",")
            entries[current] = ""
        elif not line.startswith("  "):
            current = None  # a group title or the usage
        if current:
            entries[current] += squash(line)
    return entries


def squash(text: str) -> str:
    return "".join(text.split())


def declaration(node_id: str, name: str) -> tuple:
    cls = PACK.NODE_CLASS_MAPPINGS[node_id]
    return {**cls.REQUIRED, **cls.OPTIONAL}[name]


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (16, 12), (200, 30, 30)).save(path)
    return path


def test_every_preprocessing_setting_is_a_flag_with_its_default_range_and_description(main, capsys):
    entries = help_entries(main, capsys)
    for field in dataclasses.fields(PACK.utils.pipeline.Settings):
        _, opts = declaration("CleanCutPreprocess", field.name)
        entry = entries["--" + field.name.replace("_", "-")]
        assert squash(f"range {opts['min']}..{opts['max']}, default {field.default}") in entry, entry
        assert squash(opts["tooltip"].split(".")[0]) in entry, "the node's tooltip describes the flag"
    assert all("default" in e for e in entries.values() if not e.startswith(("-h", "--help", "--out"))), \
        "every option states its default"


def test_method_options_take_their_defaults_and_ranges_from_the_options_dataclasses(main, capsys):
    entries = help_entries(main, capsys)
    rembg_defaults = {f.name: f.default for f in dataclasses.fields(PACK.utils.rembg.RembgOptions)}
    for flag, name in [("--foreground-threshold", "alpha_matting_foreground_threshold"),
                       ("--erode-size", "alpha_matting_erode_size")]:
        _, opts = declaration("CleanCutRembg", name)
        assert squash(f"range {opts['min']}..{opts['max']}, default {rembg_defaults[name]}") in entries[flag]
    th = PACK.utils.threshold.ThresholdOptions()
    assert squash(f"range 1..24, default {th.threshold_tolerance}") in entries["--tolerance"]
    assert squash(f"default {th.mode}") in entries["--mode"]


def test_choices_are_the_modules_own(cli):
    actions = {a.dest: a for a in cli.build_parser()._subparsers._group_actions[0].choices["cutout"]._actions}
    assert tuple(actions["mode"].choices) == PACK.utils.threshold.MODES
    assert tuple(actions["model"].choices) == PACK.utils.rembg.MODEL_NAMES
    assert tuple(actions["background"].choices) == tuple(PACK.utils.rembg.BACKGROUNDS)
    assert tuple(actions["edges"].choices) == PACK.utils.rembg.EDGES
    assert set(PACK.utils.saving.FORMATS) <= set(actions["format"].choices)
    rembg_fields = {f.name for f in dataclasses.fields(PACK.utils.rembg.RembgOptions)}
    th_fields = {f.name for f in dataclasses.fields(PACK.utils.threshold.ThresholdOptions)}
    flags = cli.options
    assert set(flags.REMBG_FLAGS.values()) == rembg_fields and set(flags.THRESHOLD_FLAGS.values()) == th_fields


def test_webp_is_an_alias_of_lossless_webp(main, image, tmp_path):
    out = tmp_path / "o"
    assert main(["cutout", str(image), "--out", str(out), "--method", "threshold", "--format", "webp",
                 "--save", "cutout", "--quiet"]) == 0
    assert [p.name for p in out.iterdir()] == ["x_cutout.webp"]


@pytest.mark.parametrize("extra, flag", [
    (["--method", "threshold", "--background", "white"], "--background"),
    (["--method", "threshold", "--alpha-matting"], "--alpha-matting"),
    (["--method", "threshold", "--model", "u2net"], "--model"),
    (["--method", "threshold", "--edges", "straight"], "--edges"),
    (["--method", "threshold", "--only-mask"], "--only-mask"),
    (["--method", "threshold", "--post-process-mask"], "--post-process-mask"),
    (["--mode", "foreground"], "--mode"),
    (["--threshold", "100"], "--threshold"),
    (["--method", "rembg", "--tolerance", "3"], "--tolerance"),
    (["--erode-size", "5"], "--erode-size"),  # matting's settings without --alpha-matting
    (["--band-width", "8"], "--band-width"),  # without --refine
    (["--refine", "closed-form", "--band-width", "8"], "--band-width"),  # the guided filter's only
    (["--refine", "none", "--alpha-matting"], "--alpha-matting"),
    (["--only-mask", "--refine", "none"], "--refine"),
    (["--alpha-matting", "--decontaminate"], "--decontaminate"),
    (["--only-mask", "--decontaminate"], "--decontaminate"),
    (["--method", "threshold", "--decontaminate"], "--decontaminate"),  # threshold: Refine Edges' only
    (["--method", "threshold", "--refine", "none", "--edges", "straight"], "--edges"),
    (["--refine", "guided filter", "--band-width", "0"], "--band-width"),
    (["--method", "threshold", "--tile-grid", "4"], "--tile-grid"),  # CLAHE's tiles without a clip limit
    (["--method", "threshold", "--save", ""], "--save"),
    (["--method", "threshold", "--save", "everything"], "--save"),
])
def test_options_that_do_not_apply_are_usage_errors(main, image, tmp_path, capsys, extra, flag):
    out = tmp_path / "o"
    assert main(["cutout", str(image), "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0], err
    assert not out.exists(), "nothing is created for a usage error"


@pytest.mark.parametrize("extra, refine_decontaminates", [
    (["--method", "threshold", "--refine", "guided filter", "--decontaminate"], True),  # refused before
    (["--method", "threshold", "--refine", "closed-form", "--erode-size", "2", "--decontaminate"], True),
    (["--method", "threshold", "--refine", "guided filter"], False),
    (["--refine", "guided filter", "--decontaminate"], True),  # rembg: the colours once, by Refine Edges
    (["--decontaminate"], None),  # rembg's own decontaminate, no Refine Edges
])
def test_decontaminate_goes_to_refine_edges_with_refine_for_either_method(cli, tmp_path, extra,
                                                                           refine_decontaminates):
    args = cli.build_parser().parse_args(["cutout", "x.png", "--out", str(tmp_path), *extra])
    cli.resolve(args)
    refine = args.refine_options
    assert (refine.decontaminate if refine else None) is refine_decontaminates
    if args.method == "rembg":
        assert args.options.decontaminate is (refine is None), "rembg's decontaminate only without --refine"
    assert cli.cut.settings_metadata(args)["decontaminate"] is ("--decontaminate" in extra), "the files record it"


def test_threshold_refine_decontaminate_is_applied_and_recorded(main, tmp_path, photo_arrays):
    src = tmp_path / "cat.png"
    Image.fromarray(photo_arrays["chelsea"][:120, :160]).save(src)
    saved = {}
    for name, extra in (("plain", []), ("unmixed", ["--decontaminate"])):
        out = tmp_path / name
        assert main(["cutout", str(src), "--out", str(out), "--method", "threshold", "--refine", "guided filter",
                     "--band-width", "8", "--save", "cutout,mask", "--quiet", *extra]) == 0
        cut = Image.open(out / "cat_cutout.png")
        meta = json.loads(cut.text["cleancut"])
        assert meta["refine"] == "guided filter" and meta["decontaminate"] is (name == "unmixed")
        saved[name] = np.asarray(cut)
    plain, unmixed = saved["plain"], saved["unmixed"]
    assert np.array_equal(plain[..., 3], unmixed[..., 3]), "decontamination changes colours, not the alpha"
    edge = (plain[..., 3] > 0) & (plain[..., 3] < 255)
    assert edge.any() and (plain[..., :3] != unmixed[..., :3])[edge].any(), "the edge colours were re-estimated"


@pytest.mark.parametrize("extra, flag", [
    (["--method", "threshold", "--threshold", "300"], "--threshold"),
    (["--method", "threshold", "--saturation", "50"], "--saturation"),  # above the node's slider
    (["--method", "threshold", "--gamma", "0"], "--gamma"),
    (["--method", "threshold", "--batch-size", "0"], "--batch-size"),
])
def test_a_bad_setting_is_reported_once_before_any_input_is_read(main, image, tmp_path, capsys, extra, flag):
    out = tmp_path / "o"
    copy = tmp_path / "y.png"
    copy.write_bytes(image.read_bytes())
    assert main(["cutout", str(image), str(copy), "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0], err
    assert not out.exists()


def test_a_missing_model_is_reported_once_with_how_to_get_it(main, image, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "empty"))
    out = tmp_path / "o"
    copy = tmp_path / "y.png"
    copy.write_bytes(image.read_bytes())
    assert main(["cutout", str(image), str(copy), "--out", str(out), "--model", "u2net", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cleancut models fetch u2net" in err[0], err
    assert not out.exists(), "no output folder when nothing can be processed"


def test_the_default_model_is_fetched_up_front(cli, main, image, tmp_path, capsys, monkeypatch):
    asked = []

    def offline(name):
        asked.append(name)
        raise RuntimeError(f"could not fetch rembg model '{name}' (offline)")

    monkeypatch.setattr(cli.download, "ensure", offline)
    out = tmp_path / "o"
    assert main(["cutout", str(image), "--out", str(out), "--quiet"]) == 1
    assert asked == [PACK.utils.rembg.RembgOptions().model]
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not out.exists()


def test_out_naming_a_file_is_a_usage_error(main, image, tmp_path, capsys):
    target = tmp_path / "taken.txt"
    target.write_text("not a folder")
    assert main(["cutout", str(image), "--out", str(target), "--method", "threshold", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "Traceback" not in err[0]
    assert main(["demo", "--out", str(target), "--method", "threshold", "--quiet"]) == 2


def test_a_bad_choice_is_one_line_and_exit_2(main, image, tmp_path, capsys):
    assert main(["cutout", str(image), "--out", str(tmp_path / "o"), "--mode", "sideways"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--mode" in err[0]


def test_library_prints_do_not_reach_the_output(main, image, tmp_path, capsys, monkeypatch):
    import sys

    node = PACK.NODE_CLASS_MAPPINGS["CleanCutAlphaThreshold"]
    real_run = node.run

    def noisy_run(self, *args, **kwargs):  # what pymatting's ichol does from its worker threads
        sys.stdout.write("PERFORMANCE WARNING:\nThresholded incomplete Cholesky decomposition failed\n")
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(node, "run", noisy_run)
    assert main(["cutout", str(image), "--out", str(tmp_path / "o"), "--method", "threshold", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "PERFORMANCE WARNING" not in captured.out + captured.err


def test_help_says_what_the_original_output_is(main, capsys):
    save = help_entries(main, capsys)["--save"]
    assert squash("the decoded input") in save and squash("not a copy of the file") in save
