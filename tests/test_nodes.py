"""Every registered node: declaration habits, and behaviour shared by all IMAGE -> IMAGE nodes."""

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
