"""Every registered node: declaration habits, and behaviour shared by all IMAGE -> IMAGE nodes."""

import json

import numpy as np
import pytest
import torch
from conftest import PACK

NODE_IDS = sorted(PACK.NODE_CLASS_MAPPINGS)


def widget_specs(cls):
    spec = cls.INPUT_TYPES()
    return {name: s for section in ("required", "optional") for name, s in spec.get(section, {}).items()}


def defaults(cls):
    """Default value of every widget input (first option of a combo)."""
    out = {}
    for name, (kind, *rest) in widget_specs(cls).items():
        opts = rest[0] if rest else {}
        if isinstance(kind, (list, tuple)):
            out[name] = opts.get("default", kind[0])
        elif "default" in opts:
            out[name] = opts["default"]
    return out


def is_filter(cls):
    """One required IMAGE input, IMAGE first output, no other required link: the preprocess filters."""
    req = cls.INPUT_TYPES()["required"]
    links = [n for n, (k, *_) in req.items() if isinstance(k, str) and k.isupper() and k not in
             ("INT", "FLOAT", "STRING", "BOOLEAN")]
    return links == ["image"] and cls.RETURN_TYPES[0] == "IMAGE"


FILTERS = [n for n in NODE_IDS if is_filter(PACK.NODE_CLASS_MAPPINGS[n])]


def test_registry_rejects_duplicate_ids_and_display_names(pack):
    registry, node_cls = pack.nodes.base.registry, pack.nodes.base.Node
    first = type("CleanCutA", (node_cls,), {"DISPLAY_NAME": "A"})
    again = type("CleanCutA", (node_cls,), {"DISPLAY_NAME": "Another"})
    same_name = type("CleanCutB", (node_cls,), {"DISPLAY_NAME": "A"})
    nameless = type("CleanCutC", (node_cls,), {})
    assert registry([first]) == ({"CleanCutA": first}, {"CleanCutA": "A"})
    for clash in (again, same_name, nameless):
        with pytest.raises(ValueError, match=clash.__name__):
            registry([first, clash])


def test_every_node_id_is_its_class_name_and_prefixed(pack):
    assert NODE_IDS and all(n.startswith("CleanCut") for n in NODE_IDS)
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert cls.__name__ == node_id and pack.NODE_DISPLAY_NAME_MAPPINGS[node_id] == cls.DISPLAY_NAME


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_declaration(pack, node_id):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    assert cls.CATEGORY.startswith("CleanCut/")
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 20
    assert callable(getattr(cls, cls.FUNCTION))
    assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)
    for name, spec in widget_specs(cls).items():
        opts = spec[1] if len(spec) > 1 else {}
        assert len(opts.get("tooltip", "")) > 10, f"{node_id}.{name} has no tooltip"
        if spec[0] in ("INT", "FLOAT"):
            assert opts["min"] <= opts["default"] <= opts["max"], f"{node_id}.{name} default out of range"


@pytest.mark.parametrize("node_id", FILTERS)
def test_filter_keeps_batch_order_device_and_input(pack, node_id, synthetic, device):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    x = torch.cat([synthetic, synthetic.flip(1)]).to(device)  # four distinct RGBA images
    before = x.clone()
    node = cls()
    with torch.inference_mode():  # ComfyUI runs nodes in inference mode; worker threads do not inherit it
        out = getattr(node, cls.FUNCTION)(image=x, **defaults(cls))
    assert len(out) == len(cls.RETURN_TYPES)
    img = out[0]
    assert torch.equal(x, before), "input tensor was modified"
    assert img.shape == x.shape and img.device == x.device and img.dtype == x.dtype
    assert torch.equal(img[..., 3], x[..., 3]), "alpha must pass through"
    for i in range(x.shape[0]):
        alone = getattr(node, cls.FUNCTION)(image=x[i:i + 1], **defaults(cls))[0]
        assert torch.allclose(img[i:i + 1], alone, atol=1e-5), f"image {i} differs from the same image alone"


@pytest.mark.parametrize("node_id", FILTERS)
def test_filter_rejects_out_of_range_widgets(pack, node_id, synthetic):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    node, base = cls(), defaults(cls)
    for name, (kind, *rest) in widget_specs(cls).items():
        if kind not in ("INT", "FLOAT"):
            continue
        too_big = rest[0]["max"] + (1 if kind == "INT" else 0.5)
        with pytest.raises(ValueError, match=name):
            getattr(node, cls.FUNCTION)(image=synthetic, **{**base, name: too_big})


@pytest.mark.parametrize("node_id", FILTERS)
@pytest.mark.parametrize("bad, match", [(torch.rand(1, 8, 8, 1), "channels"), (torch.rand(0, 8, 8, 3), "empty"),
                                        (torch.full((1, 8, 8, 3), float("inf")), "NaN")])
def test_filter_rejects_bad_images(pack, node_id, bad, match):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    with pytest.raises(ValueError, match=f"image: .*{match}"):
        getattr(cls(), cls.FUNCTION)(image=bad, **defaults(cls))


def test_filters_accept_positional_widget_values(pack, synthetic):
    node = pack.NODE_CLASS_MAPPINGS["CleanCutGammaGain"]()
    assert torch.equal(node.run(synthetic, 1.6, 0.9)[0], node.run(image=synthetic, gamma=1.6, gain=0.9)[0])


@pytest.mark.parametrize("node_id", FILTERS)
def test_filter_clamps_alpha_and_out_of_range_values_and_accepts_grad(pack, node_id, synthetic):
    """Every filter's output lies in 0..1, alpha included, even at neutral settings; grad inputs work."""
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    wild = synthetic.clone()
    wild[0, :10, :, :3] *= 65535.0  # 16-bit-scale values
    wild[..., 3] *= 2.0  # an alpha of up to 2.0 from a buggy node
    out = getattr(cls(), cls.FUNCTION)(image=wild.requires_grad_(True), **defaults(cls))[0]
    assert out.min() >= 0 and out.max() <= 1, f"{node_id} passed values outside 0..1 through"
    assert torch.equal(out[..., 3], wild[..., 3].detach().clamp(0, 1))


def test_a_widget_given_twice_is_an_error(pack, synthetic):
    node = pack.NODE_CLASS_MAPPINGS["CleanCutGammaGain"]()
    with pytest.raises(ValueError, match="gamma: given both by position and by keyword"):
        node.run(synthetic, 1.6, gamma=0.9)


# Every node on awkward tensors (issue #22): inputs that require grad, meta tensors, masks without pixels,
# [H, W] and bool masks. Inputs come from the declarations, so a new node is covered as it is registered.

InputError = PACK.utils.checks.InputError
VARIANTS = {  # settings that reach each code path of a node that has several (default: the defaults only)
    "CleanCutComposite": [{"background": mode} for mode in PACK.utils.composite.MODES]
    + [{"background": "image", "fit": "contain", "color": "#10203080", "linear_light": True}],
    "CleanCutRefineEdges": [{}, {"decontaminate": True}],
    "CleanCutMask": [{}, {"grow": 2, "fill_holes": True, "remove_islands": 3, "smooth": 1.0, "feather": 2,
                          "black_point": 0.1, "invert": True, "temporal": 0.5}],
}
USES_EVERY_INPUT = {"CleanCutComposite": {"background": "image"}}  # other modes ignore background_image


def tensor_inputs(cls, size=(12, 16)) -> dict:
    """Small valid values for every IMAGE (RGBA) and MASK input of ``cls``, required and optional."""
    g = torch.Generator().manual_seed(0)
    kinds = {name: spec[0] for name, spec in widget_specs(cls).items()}
    return {name: torch.rand(1, *size, *((4,) if kind == "IMAGE" else ()), generator=g)
            for name, kind in kinds.items() if kind in ("IMAGE", "MASK")}


def mask_inputs(cls) -> list[str]:
    return [name for name, spec in widget_specs(cls).items() if spec[0] == "MASK"]


def outputs(cls, outdir, monkeypatch, **inputs) -> list:
    """The node's outputs; for an output node, the pixels of the files it wrote into ``outdir``, by name."""
    monkeypatch.setenv("CLEANCUT_OUTPUT_DIR", str(outdir))
    got = getattr(cls(), cls.FUNCTION)(**inputs)
    if cls.RETURN_TYPES:
        return list(got)
    from PIL import Image

    pictures = [torch.from_numpy(np.array(Image.open(p))) for p in sorted(outdir.rglob("*.png"))]
    if pictures or not any(outdir.rglob("*.webm")):
        return pictures
    return [chunk for p in sorted(outdir.rglob("*.webm")) for chunk, _ in PACK.utils.video_read.read_frames(p)]


MASK_NODES = [n for n in NODE_IDS if mask_inputs(PACK.NODE_CLASS_MAPPINGS[n])]
GRAD_CASES = [pytest.param(n, v, id=f"{n}-{i}", marks=[pytest.mark.model] if n == "CleanCutRembg" else [])
              for n in NODE_IDS for i, v in enumerate(VARIANTS.get(n, [{}]))]
META_CASES = [(n, name) for n in NODE_IDS for name in tensor_inputs(PACK.NODE_CLASS_MAPPINGS[n])]


@pytest.mark.parametrize("node_id, settings", GRAD_CASES)
def test_inputs_that_require_grad_work_and_no_output_requires_grad(request, node_id, settings, backend,
                                                                   monkeypatch, tmp_path):
    """A script's tensors (ComfyUI runs nodes in inference mode, scripts need not): every tensor input is
    detached at the entry point, so no op refuses it (numpy(), out=) and no output carries a graph."""
    if node_id == "CleanCutRembg":
        request.getfixturevalue("u2netp")
    monkeypatch.setenv("CLEANCUT_BACKEND", backend)  # both paths: runtime.pick_backend reads it
    cls = PACK.NODE_CLASS_MAPPINGS[node_id]
    inputs = {name: t.requires_grad_(True) for name, t in tensor_inputs(cls).items()}
    got = outputs(cls, tmp_path, monkeypatch, **{**defaults(cls), **settings, **inputs})
    assert got, f"{node_id} returned (or saved) nothing"
    assert not any(t.requires_grad for t in got)


@pytest.mark.parametrize("node_id", MASK_NODES)
@pytest.mark.parametrize("shape", [(1, 0, 8), (1, 8, 0)])
def test_masks_without_pixels_are_refused_naming_the_mask(node_id, shape, backend, monkeypatch, tmp_path):
    monkeypatch.setenv("CLEANCUT_BACKEND", backend)
    cls = PACK.NODE_CLASS_MAPPINGS[node_id]
    for name in mask_inputs(cls):
        inputs = {**defaults(cls), **tensor_inputs(cls), name: torch.zeros(shape)}
        with pytest.raises(InputError, match=f"{name}: the masks have no pixels") as err:
            outputs(cls, tmp_path, monkeypatch, **inputs)
        assert err.value.name == name and "free space" not in str(err.value)
    assert not list(tmp_path.rglob("*")), "nothing may be written"


@pytest.mark.parametrize("node_id, name", META_CASES)
def test_meta_tensors_are_refused_naming_the_input(node_id, name, monkeypatch, tmp_path):
    cls = PACK.NODE_CLASS_MAPPINGS[node_id]
    inputs = {**defaults(cls), **USES_EVERY_INPUT.get(node_id, {}), **tensor_inputs(cls)}
    inputs[name] = torch.empty(inputs[name].shape, device="meta")
    with pytest.raises(InputError, match=f"{name}: the tensor has no data: it is on the 'meta' device") as err:
        outputs(cls, tmp_path, monkeypatch, **inputs)
    assert err.value.name == name and "'cpu' or 'cuda'" in str(err.value)  # says what to do


@pytest.mark.parametrize("node_id", MASK_NODES)
def test_2d_and_bool_masks_equal_a_float_batch_of_one(node_id, backend, monkeypatch, tmp_path):
    """As ComfyUI's own mask nodes: a [H, W] mask is a batch of one, a bool mask is 0/1."""
    monkeypatch.setenv("CLEANCUT_BACKEND", backend)
    cls = PACK.NODE_CLASS_MAPPINGS[node_id]
    base = {**defaults(cls), **USES_EVERY_INPUT.get(node_id, {}), **tensor_inputs(cls)}
    for name in mask_inputs(cls):
        soft, hard = base[name], base[name] > 0.5  # [1, H, W] float and bool
        for i, (given, same_as) in enumerate([(soft[0], soft), (hard, hard.float()), (hard[0], hard.float())]):
            got = outputs(cls, tmp_path / f"given{i}", monkeypatch, **{**base, name: given})
            want = outputs(cls, tmp_path / f"float{i}", monkeypatch, **{**base, name: same_as})
            assert len(got) == len(want) > 0
            for g, w in zip(got, want, strict=True):
                assert g.shape == w.shape and g.dtype == w.dtype and torch.equal(g, w), (name, i)


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_search_aliases(pack, node_id):
    """Words users type in the node search, as data on the class: lower case, unique, not the display name."""
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    aliases = cls.SEARCH_ALIASES
    assert isinstance(aliases, tuple) and len(aliases) >= 3, f"{node_id} has too few search aliases"
    assert all(isinstance(a, str) and a and a == a.strip().lower() for a in aliases)
    assert len(set(aliases)) == len(aliases) and cls.DISPLAY_NAME.lower() not in aliases


def test_search_aliases_find_the_nodes_users_look_for(pack):
    """The words of issue #22 that found nothing: each now finds the node that does it."""
    def found(word):
        return {n for n, cls in pack.NODE_CLASS_MAPPINGS.items() if any(word in a for a in cls.SEARCH_ALIASES)}

    assert {"CleanCutRembg", "CleanCutRefineEdges"} <= found("matting")
    assert {"CleanCutRembg", "CleanCutAlphaThreshold"} <= found("remove bg") & found("cutout")
    assert "CleanCutComposite" in found("green screen") and "CleanCutRefineEdges" in found("despill")
    assert "CleanCutRembg" in found("alpha") and "CleanCutMask" in found("feather")


def test_object_info_carries_the_search_aliases(pack):
    """ComfyUI's /object_info entry of a V1 node (server.py node_info, from ComfyUI PR #12010, January 2026):
    ``info['search_aliases'] = getattr(obj_class, 'SEARCH_ALIASES', [])``, sent as JSON: a list of strings."""
    for cls in pack.NODE_CLASS_MAPPINGS.values():
        info = json.loads(json.dumps({"search_aliases": getattr(cls, "SEARCH_ALIASES", [])}))
        assert info["search_aliases"] == list(cls.SEARCH_ALIASES)


ADVANCED = {  # expert settings the front end may fold away: the node works well at their defaults
    "CleanCutRembg": {"alpha_matting_foreground_threshold", "alpha_matting_background_threshold",
                      "alpha_matting_erode_size", "edges", "runtime", "model_file"},
    "CleanCutRefineEdges": {"foreground_threshold", "background_threshold", "erode_size"},
    "CleanCutAlphaThreshold": {"legacy_alternating"},
    "CleanCutMask": {"feather_mode", "black_point", "white_point"},
    "CleanCutComposite": {"linear_light"},
    "CleanCutPreprocess": {"tile_grid", "sharpen_radius"},
}


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_advanced_inputs_are_widgets_with_defaults(pack, node_id):
    """``advanced`` only marks widgets that have a default (hidden, they must still do the right thing); links and
    the main settings stay in view. It is a display hint: the widget order saved workflows rely on is unchanged
    (test_api_freeze)."""
    specs = widget_specs(pack.NODE_CLASS_MAPPINGS[node_id])
    marked = {name for name, (_, *rest) in specs.items() if rest and rest[0].get("advanced")}
    assert node_id not in ADVANCED or marked == ADVANCED[node_id]
    assert all(name in defaults(pack.NODE_CLASS_MAPPINGS[node_id]) for name in marked)

