"""CLAHE: parity of both backends with OpenCV, batching, alpha, hue, dispatch and every error path."""

from __future__ import annotations

import importlib

import cv2
import numpy as np
import pytest
import torch

SETTINGS = [(2.0, 8), (4.0, 4), (1.0, 3)]  # (clip_limit, tile_grid); 300x451 divides by none of 8, 4, 3


@pytest.fixture(scope="module")
def mod(pack):
    # By full name, so the test does not depend on utils/__init__.py listing the module.
    return importlib.import_module(f"{pack.__name__}.utils.clahe")


@pytest.fixture(scope="module")
def to_uint8(pack):
    return pack.utils.bridges.to_uint8


def opencv_clahe_per_image(images8: np.ndarray, clip_limit: float, tile_grid: int) -> np.ndarray:
    """The reference: uint8 RGB ``[B,H,W,3]`` -> Lab -> ``createCLAHE`` on L -> RGB, one image at a time."""
    out = []
    for img in images8:
        lab = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2LAB)
        lab[..., 0] = cv2.createCLAHE(clip_limit, (tile_grid, tile_grid)).apply(lab[..., 0])
        out.append(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))
    return np.stack(out)


def assert_matches_reference(ours: torch.Tensor, ref: np.ndarray, to_uint8, backend: str) -> None:
    """>= 99% of channel values within one level of OpenCV, none beyond three.

    The OpenCV backend *is* the reference, so it must match exactly. The torch backend reproduces OpenCV's
    8-bit Lab and CLAHE bit for bit and differs only in converting Lab back to RGB in float instead of
    OpenCV's fixed point: measured at most one level, on ~5% of values.
    """
    diff = np.abs(to_uint8(ours).astype(int) - ref.astype(int))
    assert diff.max() <= 3, f"max difference {diff.max()} levels"
    assert (diff <= 1).mean() >= 0.99, f"only {(diff <= 1).mean():.4f} within one level"
    if backend == "native":
        assert diff.max() == 0


@pytest.mark.parametrize("clip_limit, tile_grid", SETTINGS)
def test_matches_opencv_on_photo_batch(mod, to_uint8, device, photos, backend, clip_limit, tile_grid):
    ours = mod.clahe(photos.to(device), clip_limit, tile_grid, backend=backend)
    assert_matches_reference(ours, opencv_clahe_per_image(to_uint8(photos), clip_limit, tile_grid), to_uint8, backend)


@pytest.mark.parametrize("clip_limit, tile_grid", SETTINGS)
def test_matches_opencv_on_full_size_photos(mod, to_uint8, device, photo_arrays, backend, clip_limit, tile_grid):
    for name, array in photo_arrays.items():  # one size each (512x512, 300x451, 400x600, 427x640)
        image = torch.from_numpy(array).float().div(255).unsqueeze(0).to(device)
        ours = mod.clahe(image, clip_limit, tile_grid, backend=backend)
        ref = opencv_clahe_per_image(array[None], clip_limit, tile_grid)
        assert ours.shape == image.shape, name
        assert_matches_reference(ours, ref, to_uint8, backend)


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (1, 9), (64, 64), (33, 8)])
def test_matches_opencv_on_tiny_and_odd_sizes(mod, to_uint8, device, backend, size):
    # Images smaller than the grid, and one divisible on a single axis (OpenCV then pads both axes).
    image = torch.rand(2, *size, 3, generator=torch.Generator().manual_seed(1))
    ours = mod.clahe(image.to(device), 3.0, 8, backend=backend)
    assert_matches_reference(ours, opencv_clahe_per_image(to_uint8(image), 3.0, 8), to_uint8, backend)


def test_lab8_is_opencv_bit_exact(mod):
    # The histogram bins must be OpenCV's: its fixed-point 8-bit RGB -> Lab, not the float formulas.
    g = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.randint(0, 256, (1 << 18, 3), generator=g), torch.arange(256).repeat(3, 1).T])
    light, a, b = mod._rgb_to_lab8(codes)
    ref = cv2.cvtColor(codes.numpy().astype(np.uint8)[None], cv2.COLOR_RGB2LAB)[0]
    assert np.array_equal(torch.stack([light, a, b], -1).numpy(), ref)


@pytest.mark.parametrize("clip_limit, tile_grid", [*SETTINGS, (40.0, 8), (0.01, 5), (3.0, 64), (2.0, 1)])
def test_equalize_is_opencv_bit_exact(mod, photo_arrays, clip_limit, tile_grid):
    # Histogram clipping, redistribution, LUT rounding, padding and interpolation: all exact on 8-bit L.
    light = cv2.cvtColor(photo_arrays["coffee"], cv2.COLOR_RGB2LAB)[..., 0]
    for crop in (light, light[:301, :457], light[:7, :5]):
        crop = np.ascontiguousarray(crop)
        ours = mod._equalize(torch.from_numpy(crop).int()[None], clip_limit, tile_grid)[0]
        ref = cv2.createCLAHE(clip_limit, (tile_grid, tile_grid)).apply(crop)
        assert np.array_equal(ours.numpy().astype(np.uint8), ref)


def test_batch_equals_loop(mod, device, photos, backend):
    batch = photos.to(device)
    out = mod.clahe(batch, 2.0, 8, backend=backend)
    for i in range(batch.shape[0]):
        assert torch.equal(out[i:i + 1], mod.clahe(batch[i:i + 1], 2.0, 8, backend=backend)), f"image {i}"


def test_input_unchanged_and_over_range_clamped(mod, device, photos, synthetic, backend):
    for image in (photos.to(device) * 1.3 - 0.1, synthetic.to(device)):  # RGB beyond 0..1, and RGBA
        before = image.clone()
        out = mod.clahe(image, 2.0, 4, backend=backend)
        assert torch.equal(image, before)
        clamped = torch.cat([image[..., :3].clamp(0, 1), image[..., 3:]], dim=-1)
        assert torch.equal(out, mod.clahe(clamped, 2.0, 4, backend=backend))


def test_shape_dtype_device_order(mod, device, dtype, photos, backend):
    image = photos.to(device, dtype)
    out = mod.clahe(image, 2.0, 8, backend=backend)
    assert out.shape == image.shape and out.dtype == dtype and out.device == image.device
    assert 0 <= out.min() and out.max() <= 1
    # Order kept: each output is closest to its own input.
    err = (out.float().unsqueeze(1) - image.float().unsqueeze(0)).abs().mean(dim=(2, 3, 4))  # [B,B]
    assert torch.equal(err.argmin(dim=1).cpu(), torch.arange(image.shape[0]))


def test_alpha_passed_through(mod, device, synthetic, backend):
    image = synthetic.to(device)
    out = mod.clahe(image, 2.0, 4, backend=backend)
    assert out.shape == image.shape
    assert torch.equal(out[..., 3], image[..., 3])
    assert torch.equal(out[..., :3], mod.clahe(image[..., :3], 2.0, 4, backend=backend))


def test_raises_contrast_keeps_grey_and_hue(pack, mod, device, photos, backend):
    color = pack.utils.color
    dull = (0.4 + 0.2 * photos).to(device)  # low contrast: equalising must spread lightness
    lab_in, lab_out = color.rgb_to_lab(dull), color.rgb_to_lab(mod.clahe(dull, 2.0, 8, backend=backend))
    assert lab_out[..., 0].std() > 1.5 * lab_in[..., 0].std()  # measured 1.76x
    # Hue: only lightness changes, so the a/b angle of colourful pixels stays (gamut clipping aside).
    chroma_in, chroma_out = lab_in[..., 1:].norm(dim=-1), lab_out[..., 1:].norm(dim=-1)
    keep = (chroma_in > 10) & (chroma_out > 10)
    turn = torch.atan2(lab_in[..., 2], lab_in[..., 1]) - torch.atan2(lab_out[..., 2], lab_out[..., 1])
    turn = torch.rad2deg(torch.atan2(turn.sin(), turn.cos())).abs()[keep]
    assert keep.sum() > 10_000 and turn.median() < 2.0
    # Grey stays grey: within OpenCV's one-level fixed-point error, exactly in the float backend.
    grey = photos.to(device).mean(dim=-1, keepdim=True).expand(-1, -1, -1, 3)
    out = mod.clahe(grey, 4.0, 8, backend=backend)
    assert (out.amax(dim=-1) - out.amin(dim=-1)).max() <= 1.01 / 255


def test_auto_backend_and_environment_override(mod, photos, monkeypatch):
    monkeypatch.delenv("CLEANCUT_BACKEND", raising=False)
    assert torch.equal(mod.clahe(photos[:1]), mod.clahe(photos[:1], backend="native"))  # CPU picks OpenCV
    monkeypatch.setenv("CLEANCUT_BACKEND", "torch")
    assert torch.equal(mod.clahe(photos[:1]), mod.clahe(photos[:1], backend="torch"))


@pytest.mark.parametrize("value", [0, 0.001, -1.0, 100.5, float("nan"), float("inf"), "2", None, True])
def test_bad_clip_limit(mod, photos, value):
    with pytest.raises(ValueError, match="clip_limit"):
        mod.clahe(photos[:1], clip_limit=value)


@pytest.mark.parametrize("value", [0, -2, 65, 2.0, 8.5, "8", None, True])
def test_bad_tile_grid(mod, photos, value):
    with pytest.raises(ValueError, match="tile_grid"):
        mod.clahe(photos[:1], tile_grid=value)


@pytest.mark.parametrize("value", ["cuda", "numpy", "", None])
def test_bad_backend(mod, photos, value):
    with pytest.raises(ValueError, match="backend"):
        mod.clahe(photos[:1], backend=value)


@pytest.mark.parametrize("make", [
    lambda p: p[..., 0],                               # a MASK [B, H, W]
    lambda p: p[0],                                    # one image without the batch axis
    lambda p: p[..., :2],                              # two channels
    lambda p: p[:0],                                   # empty batch
    lambda p: (p * 255).to(torch.uint8),               # 8-bit, not float
    lambda p: torch.where(p > 0.5, float("nan"), p),   # NaN
    lambda p: p.numpy(),                               # not a tensor
])
def test_bad_image(mod, photos, make):
    with pytest.raises(ValueError, match="image:"):
        mod.clahe(make(photos))
