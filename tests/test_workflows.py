"""The shipped example workflows: every node id, widget count and value must still fit the code.

Each UI workflow is converted to API format (a renamed, removed or reordered input shifts or drops
widget values, which fails here rather than in a user's saved graph), validated as the server does,
and run through the in-repo executor with stand-ins for the core nodes it uses.
"""

import json

import pytest
import torch
from conftest import ROOT
from executor import PromptError, run_prompt
from PIL import Image
from workflows import core_stand_ins, ui_to_api, widget_names

WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))


def _uses_rembg(path) -> bool:
    return any(n["type"] == "CleanCutRembg" for n in json.loads(path.read_text())["nodes"])


RUNS = [pytest.param(p, id=p.stem, marks=[pytest.mark.slow, pytest.mark.model] if _uses_rembg(p) else [])
        for p in WORKFLOWS]  # the rembg ones run the real model: slow


@pytest.fixture
def classes(pack):
    return {**pack.NODE_CLASS_MAPPINGS, **core_stand_ins(ROOT / "assets")}


def test_every_node_is_in_an_example_workflow_with_a_thumbnail(pack):
    used = {node["type"] for wf in WORKFLOWS for node in json.loads(wf.read_text())["nodes"]}
    assert set(pack.NODE_CLASS_MAPPINGS) <= used, "a node no example workflow shows"
    for wf in WORKFLOWS:
        assert any(wf.with_suffix(ext).exists() for ext in (".jpg", ".webp")), f"{wf.name} has no thumbnail"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_widgets_match_input_types(path, classes):
    workflow = json.loads(path.read_text())
    for node in workflow["nodes"]:
        cls = classes[node["type"]]
        names = widget_names(cls)
        values = node["widgets_values"][:len(names)]
        assert len(values) == len(names), f"{path.stem} node {node['id']}: widget count changed"
        for name, value in zip(names, values, strict=True):
            kind = cls.INPUT_TYPES().get("required", {}).get(name) or cls.INPUT_TYPES()["optional"][name]
            if isinstance(kind[0], list):
                assert value in kind[0], f"{path.stem} node {node['id']}.{name}: {value!r} no longer an option"
            elif kind[0] in ("INT", "FLOAT"):
                assert kind[1]["min"] <= value <= kind[1]["max"], f"{node['type']}.{name} out of range"


@pytest.mark.parametrize("path", RUNS)
def test_workflow_runs(path, classes, tmp_path, monkeypatch, request):
    workflow = json.loads(path.read_text())
    if _uses_rembg(path):
        request.getfixturevalue("u2netp")
    monkeypatch.setenv("CLEANCUT_OUTPUT_DIR", str(tmp_path))
    run = run_prompt(ui_to_api(workflow, classes), classes, extra_pnginfo={"workflow": workflow})
    for node in workflow["nodes"]:
        cls = classes[node["type"]]
        outputs = run.outputs[str(node["id"])]
        assert len(outputs) == len(cls.RETURN_TYPES)
        for value, kind in zip(outputs, cls.RETURN_TYPES, strict=True):
            if kind in ("IMAGE", "MASK"):
                assert value.shape[0] >= 1 and value.isfinite().all()
    if any(n["type"] == "CleanCutSave" for n in workflow["nodes"]):
        saved = list(tmp_path.rglob("*.png"))
        assert saved, "the Save node wrote nothing"
        assert all("workflow" in Image.open(p).text for p in saved), "workflow metadata missing"


@pytest.mark.model
def test_a_workflow_saved_before_an_optional_widget_was_added_still_runs(u2netp, classes, tmp_path, monkeypatch):
    """tests/data holds example 02 as saved before the rembg node had ``decontaminate``, ``runtime`` and
    ``model_file``: three widget values fewer. The front end keeps the new widgets' defaults; so does the
    converter, and the results are those of the current example."""
    monkeypatch.setenv("CLEANCUT_OUTPUT_DIR", str(tmp_path))
    old = json.loads((ROOT / "tests" / "data" / "saved_before_decontaminate.json").read_text())
    new = json.loads((ROOT / "example_workflows" / "02_preprocess_rembg_matting_save.json").read_text())
    rembg = next(n for n in old["nodes"] if n["type"] == "CleanCutRembg")
    assert len(rembg["widgets_values"]) == len(widget_names(classes["CleanCutRembg"])) - 3
    got = [run_prompt(ui_to_api(w, classes), classes).outputs["3"] for w in (old, new)]
    assert all(torch.equal(a, b) for a, b in zip(*got, strict=True))


def test_a_shifted_widget_list_is_still_an_error(classes):
    workflow = json.loads((ROOT / "example_workflows" / "03_threshold_cutout_batch.json").read_text())
    node = next(n for n in workflow["nodes"] if n["type"] == "CleanCutAlphaThreshold")
    node["widgets_values"] = node["widgets_values"][:2]  # a required widget missing: values would shift
    with pytest.raises(PromptError):
        ui_to_api(workflow, classes)
