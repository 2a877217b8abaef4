"""side_by_side: layout, resizing, broadcasting, caption, errors."""

import importlib

import pytest
import torch


@pytest.fixture
def compare(pack):
    return importlib.import_module(pack.__name__ + ".utils.compare")


def test_layout_and_resize(compare, device):
    a = torch.rand(2, 60, 80, 3, device=device)
    b = torch.rand(2, 30, 20, 3, device=device)  # resized to height 60 -> width 40
    out = compare.side_by_side(a, b)
    assert out.shape == (2, 60, 120, 3) and out.device == a.device
    assert torch.equal(out[:, :, :80], a), "left panel must be image_a unchanged"
    flat = torch.full((1, 30, 20, 3), 0.25, device=device)
    assert torch.allclose(compare.side_by_side(a[:1], flat)[0, :, 80:], torch.full((60, 40, 3), 0.25,
                                                                                     device=device), atol=1e-6)


def test_batch_of_one_broadcasts_and_order_is_kept(compare):
    a = torch.stack([torch.full((10, 10, 3), v) for v in (0.1, 0.5, 0.9)])
    b = torch.rand(1, 10, 10, 3)
    out = compare.side_by_side(a, b)
    assert out.shape[0] == 3
    for i, v in enumerate((0.1, 0.5, 0.9)):
        assert torch.allclose(out[i, :, :10], torch.full((10, 10, 3), v))
        assert torch.allclose(out[i, :, 10:], b[0])
    assert compare.side_by_side(b, a).shape[0] == 3


def test_rgba_and_caption(compare):
    a, b = torch.rand(1, 40, 40, 4), torch.rand(1, 40, 40, 3)
    out = compare.side_by_side(a, b, "before | after")
    assert out.shape[-1] == 4 and out.shape[1] > 40, "caption strip on top, RGBA kept"
    top = out.shape[1] - 40
    assert torch.equal(out[0, top:, 40:, 3], torch.ones(40, 40)), "RGB side gets opaque alpha"
    strip = out[0, :top, :, :3]
    assert strip.max() > 0.8 and strip.min() < 0.2, "caption text drawn on a dark strip"


def test_mismatched_batches_are_a_clear_error(compare):
    with pytest.raises(ValueError, match="image_a has 3 images but image_b has 2"):
        compare.side_by_side(torch.rand(3, 8, 8, 3), torch.rand(2, 8, 8, 3))
    with pytest.raises(ValueError, match="image_b: .*channels"):
        compare.side_by_side(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8, 2))


def test_inputs_unchanged(compare):
    a, b = torch.rand(2, 16, 16, 3) * 1.2, torch.rand(2, 8, 8, 3)
    a0, b0 = a.clone(), b.clone()
    compare.side_by_side(a, b, "x")
    assert torch.equal(a, a0) and torch.equal(b, b0)


def test_compare_node_matches_utils(pack, compare):
    node = pack.NODE_CLASS_MAPPINGS["CleanCutCompare"]()
    a, b = torch.rand(2, 20, 30, 3), torch.rand(1, 10, 10, 3)
    (out,) = node.run(a, b, "a | b")
    assert torch.equal(out, compare.side_by_side(a, b, "a | b"))


def test_output_is_clamped_even_when_b_needs_no_resize(compare):
    a, b = torch.full((1, 8, 8, 3), 0.5), torch.linspace(-0.5, 1.5, 8 * 8 * 3).view(1, 8, 8, 3)
    out = compare.side_by_side(a, b)
    assert out.min() >= 0 and out.max() <= 1
