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
from make_workflows import CANVAS, ZOOM
from PIL import Image
from workflows import TITLE_HEIGHT, core_stand_ins, min_size, ui_to_api, widget_names

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


def _boxes(workflow: dict) -> dict:
    """{node id: (left, top, right, bottom)} in graph units, title bar included (the saved pos is below it)."""
    return {n["id"]: (n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
            for n in workflow["nodes"]}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_opens_readable_on_the_graph(path):
    """The saved view: a zoom at which the front end draws titles and widget text, the graph in view (all of it
    on the reference canvas, or its start when even the smallest readable zoom cannot show it all)."""
    workflow = json.loads(path.read_text())
    ds = workflow["extra"]["ds"]
    assert ZOOM[0] <= ds["scale"] <= ZOOM[1], f"opens at {ds['scale']:.0%}"
    boxes = _boxes(workflow).values()
    screen = [[(v + ds["offset"][i % 2]) * ds["scale"] for i, v in enumerate(box)] for box in boxes]
    left, top = min(s[0] for s in screen), min(s[1] for s in screen)
    right, bottom = max(s[2] for s in screen), max(s[3] for s in screen)
    assert 0 <= left < CANVAS[0] / 4 and 0 <= top < CANVAS[1] / 4, "the view starts away from the graph"
    assert bottom <= CANVAS[1], "the graph runs off the bottom"
    assert right <= CANVAS[0] or ds["scale"] == ZOOM[0], "the graph would fit at a lower zoom"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_no_node_overlaps_another(path):
    boxes = sorted(_boxes(json.loads(path.read_text())).items())
    for i, (a, (al, at, ar, ab)) in enumerate(boxes):
        for b, (bl, bt, br, bb) in boxes[i + 1:]:
            assert min(ar, br) <= max(al, bl) or min(ab, bb) <= max(at, bt), f"nodes {a} and {b} overlap"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_link_runs_left_to_right(path):
    """Data flows left to right: each link leaves a node that ends left of where its target starts."""
    workflow = json.loads(path.read_text())
    boxes = _boxes(workflow)
    for link_id, src, _, dst, *_ in workflow["links"]:
        assert boxes[src][2] < boxes[dst][0], f"link {link_id} ({src} -> {dst}) runs back"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_node_sizes_fit_their_widgets(path, classes):
    """At least the size the front end computes from the slots, widgets and pictures: a smaller saved size is
    grown on load, into the neighbours."""
    for node in json.loads(path.read_text())["nodes"]:
        width, height = min_size(classes[node["type"]])
        assert node["size"][0] >= width and node["size"][1] >= height, \
            f"{path.stem} node {node['id']} ({node['type']}): {node['size']} < {[width, height]}"


def test_min_size_counts_slots_widgets_and_pictures(classes):
    """The front end's arithmetic (20 px per slot row, 20 + 4 per widget, 8 + 6 padding, a 220 px picture),
    checked against sizes measured in ComfyUI_frontend 1.27 (LGraphNode.computeSize)."""
    assert min_size(classes["CleanCutRembg"]) == (210, 362)  # 3 outputs, 12 widgets
    assert min_size(classes["CleanCutSaturation"]) == (210, 58)
    assert min_size(classes["CleanCutSave"]) == (210, 366)  # 4 slot rows, 2 widgets, the saved pictures
    assert min_size(classes["LoadImage"]) == (210, 326)  # file combo, upload button, picture
    assert min_size(classes["PreviewImage"]) == (140, 258)


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
