"""Refine Mask: each step against its reference library (OpenCV, scipy), the step order, batching and errors."""

from __future__ import annotations

import importlib

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from conftest import PACK

mk = importlib.import_module(PACK.__name__ + ".utils.masks")
mo = importlib.import_module(PACK.__name__ + ".utils.morphology")
NODE = PACK.NODE_CLASS_MAPPINGS["CleanCutMask"]


def ellipse(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


@pytest.fixture(scope="module")
def shapes() -> torch.Tensor:
    """Binary masks ``[3, 90, 120]`` with a ring (a hole), specks of 1-12 px, a piece on the border, noise."""
    rng = np.random.default_rng(7)
    m = np.zeros((3, 90, 120), np.float32)
    yy, xx = np.mgrid[0:90, 0:120]
    d = np.hypot(yy - 45, xx - 50)
    m[0] = (d < 30) & (d > 12)  # a ring: the hole inside is 4-connected to nothing outside
    m[0, 5:7, 100:102] = 1  # a 4 px speck
    m[0, 80, 110] = 1  # 1 px
    m[0, 40:44, 47:50] = 1  # an island of 12 px inside the hole
    m[1, :, :15] = 1  # touches the border
    m[1, 30:60, 60:100] = 1
    m[1, 40:43, 70:72] = 0  # a 6 px hole
    m[2] = rng.random((90, 120)) < 0.05
    return torch.from_numpy(m)


@pytest.fixture(scope="module")
def soft(shapes) -> torch.Tensor:
    """The shapes blurred into soft masks, plus noise: every value distinct from 0 and 1 somewhere."""
    rng = np.random.default_rng(8)
    blurred = np.stack([ndi.gaussian_filter(m, 2.0) for m in shapes.numpy()])
    return torch.from_numpy(np.clip(blurred + 0.02 * rng.random(blurred.shape), 0, 1).astype(np.float32))


def test_half_widths_are_opencvs_ellipse():
    for r in (1, 2, 3, 8, 17, 40, 100):
        rows = np.zeros((2 * r + 1, 2 * r + 1), np.uint8)
        for dy, w in enumerate(mo.ellipse_half_widths(r)):
            rows[r + dy, r - w:r + w + 1] = rows[r - dy, r - w:r + w + 1] = 1
        assert np.array_equal(rows, ellipse(r)), r
    # it is not a Euclidean disc: the reason the grow cannot be a thresholded distance transform
    assert ellipse(8)[8 + 2, 8 + 8] == 1 and ellipse(8)[8 + 8, 8 + 2] == 0


@pytest.mark.parametrize("r", [1, 2, 5, 23, 24, 31, 64])
def test_binary_grow_and_shrink_equal_opencv(shapes, backend, r):
    m = shapes.numpy()
    grown = np.stack([cv2.dilate(x, ellipse(r)) for x in m])
    shrunk = np.stack([cv2.erode(x, ellipse(r)) for x in m])
    assert np.array_equal(mo.grow(shapes, r, backend).numpy(), grown)
    assert np.array_equal(mo.grow(shapes, -r, backend).numpy(), shrunk)


def test_grow_at_the_largest_radii(backend):
    m = np.zeros((1, 30, 600), np.float32)
    m[0, 10, 20] = m[0, 25, 580] = 1  # 256 px and more from most of the image
    for r in (254, 255, mk.MAX_GROW):
        assert np.array_equal(mo.grow(torch.from_numpy(m), r, backend).numpy()[0], cv2.dilate(m[0], ellipse(r)))


@pytest.mark.parametrize("r", [1, 4, 13, 20])  # 20: the row-maxima path on the CPU too
def test_soft_grow_is_opencvs_grey_dilation(soft, backend, r):
    got = mo.grow(soft, r, backend).numpy()
    assert np.array_equal(got, np.stack([cv2.dilate(x, ellipse(r)) for x in soft.numpy()]))
    eroded = mo.grow(soft, -r, backend).numpy()  # 1 - dilate(1 - m): one float rounding off OpenCV's erode
    assert np.abs(eroded - np.stack([cv2.erode(x, ellipse(r)) for x in soft.numpy()])).max() <= 1e-7


def test_fill_holes_equals_scipy(shapes, soft):
    for masks in (shapes, soft):
        got = mo.fill_and_clean(masks, True, 0)
        ref = np.stack([ndi.binary_fill_holes(x > 0.5) for x in masks.numpy()])
        assert np.array_equal(got.numpy() > 0.5, ref)
        keep = ~(ref & ~(masks.numpy() > 0.5))  # pixels not filled keep their value exactly
        assert np.array_equal(got.numpy()[keep], masks.numpy()[keep])
    assert int((mo.fill_and_clean(shapes, True, 0) - shapes).sum()) > 100  # the ring's hole got filled


def reference_islands(mask: np.ndarray, n: int, fill_holes: bool) -> np.ndarray:
    """Pieces under ``n`` px dropped (8-connected), holes under ``n`` filled (4-connected background pieces
    off the border), from cv2.connectedComponentsWithStats and scipy's hole filling."""
    on = (mask > 0.5).astype(np.uint8)
    out = on.astype(bool)
    if fill_holes:
        out = ndi.binary_fill_holes(on)
    else:
        holes = ndi.binary_fill_holes(on) & ~out
        count, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
        out |= (stats[:, cv2.CC_STAT_AREA] < n)[labels] & holes
    count, labels, stats, _ = cv2.connectedComponentsWithStats(on, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < n
    small[0] = False
    return out & ~small[labels]


@pytest.mark.parametrize("n, fill", [(5, False), (13, False), (13, True), (100000, False)])
def test_remove_islands_matches_connected_components(shapes, n, fill):
    got = mo.fill_and_clean(shapes, fill, n).numpy()
    for i, x in enumerate(shapes.numpy()):
        assert np.array_equal(got[i] > 0.5, reference_islands(x, n, fill)), i
    if n == 13:  # the 12 px island inside the ring is gone, the ring stays
        assert got[0, 42, 48] == 0 and got[0, 45, 70] == 1


def test_edge_distance_is_the_euclidean_distance_transform(shapes, backend):
    on = shapes > 0.5
    got = mo.edge_distance(on, 20, backend).numpy()
    for i, x in enumerate(on.numpy()):
        inside, outside = ndi.distance_transform_edt(x), ndi.distance_transform_edt(~x)
        ref = np.minimum(np.where(x, inside, outside), 20)
        assert np.abs(got[i] - ref).max() <= 1e-4
    assert (mo.edge_distance(torch.ones(1, 5, 6, dtype=torch.bool), 7, backend) == 7).all()  # no edge at all


def test_blur_is_scipys_gaussian(soft, backend):
    for sigma in (0.7, 3.0):
        ref = np.stack([ndi.gaussian_filter(x.astype(np.float64), sigma, mode="reflect") for x in soft.numpy()])
        assert np.abs(mk.blur(soft, sigma, backend).numpy() - ref).max() <= 1e-5


@pytest.mark.parametrize("mode", mk.FEATHER_MODES)
def test_feather_is_a_ramp_across_the_edge(backend, mode):
    m = torch.zeros(1, 40, 80)
    m[0, :, :40] = 1  # a vertical edge between columns 39 and 40, touching the image border at the top
    got = mk.feather(m, 8, mode, backend)[0, 20]
    signed = torch.arange(80.0).sub(39.5).neg()  # + inside (left), - outside: distance to the edge
    expected = {"both": 0.5 + signed / 8, "inside": signed / 8, "outside": 1 + signed / 8}[mode].clamp(0, 1)
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(mk.feather(m, 8, mode, backend)[0, 0], got)  # the image border is not an edge


def test_steps_run_in_the_documented_order(shapes, backend):
    opts = mk.MaskOptions(fill_holes=True, remove_islands=5, grow=-2, smooth=1.5, feather=3, feather_mode="outside",
                          black_point=0.2, white_point=0.8, invert=True)
    expected = shapes.clone()
    expected = mo.fill_and_clean(expected, True, 5)
    expected = mo.grow(expected, -2, backend)
    expected = mk.blur(expected, 1.5, backend)
    expected = mk.feather(expected, 3, "outside", backend)
    expected = ((expected - 0.2) / 0.6).clamp(0, 1)
    assert torch.allclose(mk.refine_mask(shapes, opts, backend), 1 - expected, atol=1e-6)


def test_temporal_smoothing_cuts_flicker_and_is_symmetric():
    g = torch.Generator().manual_seed(3)
    still = torch.zeros(1, 32, 32)
    still[0, 8:24, 8:24] = 1
    frames = (still + 0.2 * torch.randn(24, 32, 32, generator=g)).clamp(0, 1)
    out = mk.refine_mask(frames, mk.MaskOptions(temporal=0.6))
    assert mk.flicker(out) < 0.5 * mk.flicker(frames)
    # zero lag: a subject that appears at frame 24 of 48 is half there between frames 23 and 24, not later
    step = torch.zeros(48, 1, 1)
    step[24:] = 1
    smoothed = mk.refine_mask(step, mk.MaskOptions(temporal=0.6))[:, 0, 0]
    assert abs(float(smoothed[23] + smoothed[24]) - 1) < 0.01 and 0.1 < float(smoothed[23]) < 0.5
    # the recursion: y = lerp(x, y_prev, w) forwards, then backwards, as documented
    y = frames.clone()
    for t in range(1, 24):
        y[t] = 0.4 * frames[t] + 0.6 * y[t - 1]
    for t in range(22, -1, -1):
        y[t] = 0.4 * y[t] + 0.6 * y[t + 1]
    assert torch.allclose(out, y, atol=1e-5)


def test_batch_equals_loop_and_input_unchanged(soft, device, monkeypatch):
    opts = mk.MaskOptions(grow=3, remove_islands=5, smooth=1.0, feather=4, feather_mode="outside")
    x = soft.to(device)
    before = x.clone()
    monkeypatch.setattr(PACK.utils.runtime, "PIXELS_PER_CHUNK", 90 * 120)  # one mask per chunk
    out = mk.refine_mask(x, opts)
    assert torch.equal(x, before) and out.shape == x.shape and out.device == x.device and out.dtype == x.dtype
    for i in range(3):
        assert torch.allclose(out[i], mk.refine_mask(x[i:i + 1], opts)[0], atol=1e-6)


def test_neutral_settings_return_the_mask_as_a_new_tensor(soft):
    out = NODE().run(soft)[0]
    assert torch.equal(out, soft) and out.data_ptr() != soft.data_ptr()


def test_node_equals_utils_and_accepts_workflow_values(soft):
    opts = mk.MaskOptions(grow=-4, fill_holes=True, smooth=2.0, feather=6, feather_mode="inside", invert=True)
    # allclose: OpenCV's first blur of a process can differ from later ones in the last bit (seen: 3 px, 6e-8)
    assert torch.allclose(NODE().run(soft, **vars(opts))[0], mk.refine_mask(soft, opts), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"grow": 1000}, "grow:"), ({"smooth": -1.0}, "smooth:"), ({"feather_mode": "middle"}, "feather_mode:"),
    ({"black_point": 0.6, "white_point": 0.4}, "white_point:"), ({"temporal": 1.0}, "temporal:"),
    ({"remove_islands": 2.5}, "remove_islands:"),
])
def test_bad_settings_name_the_input(soft, kwargs, match):
    with pytest.raises(ValueError, match=match):
        NODE().run(soft, **kwargs)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 8, 8, 3), "mask:"), (torch.zeros(0, 8, 8), "mask:"),
    (torch.full((1, 8, 8), float("nan")), "mask:"), (torch.zeros(1, 8, 8, dtype=torch.uint8), "mask:"),
])
def test_bad_masks_name_the_input(bad, match):
    with pytest.raises(ValueError, match=match):
        NODE().run(bad, grow=2)


def test_tiny_and_one_sided_masks(backend):
    for m in (torch.ones(2, 1, 1), torch.zeros(1, 3, 1), torch.ones(1, 4, 5)):
        out = mk.refine_mask(m, mk.MaskOptions(grow=3, fill_holes=True, remove_islands=2, feather=3))
        assert out.shape == m.shape and torch.isfinite(out).all()
    assert (mk.refine_mask(torch.ones(1, 4, 5), mk.MaskOptions(grow=-2, feather=2)) == 1).all()  # no edge inside


@pytest.mark.parametrize("sigma", [1.1, 2.5, 5.5, 10.0, 14.0])  # sigmas whose rounded kernels sum above 1 on both
def test_smooth_and_invert_stay_within_0_and_1(backend, sigma):
    """README: the refined mask is clamped to 0..1. A blur's rounding gave 1.0000001, and -1.2e-7 inverted."""
    g = torch.Generator().manual_seed(3)
    masks = torch.rand(3, 64, 96, generator=g)
    masks[1] = (masks[1] > 0.5).float()  # hard edges
    masks[2] = 1.0  # all subject: the blur's kernel sum shows as is
    for invert in (False, True):
        out = mk.refine_mask(masks, mk.MaskOptions(smooth=sigma, invert=invert), backend)
        assert out.min() >= 0 and out.max() <= 1, (invert, out.min().item(), out.max().item())
