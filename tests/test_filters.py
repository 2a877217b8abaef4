"""utils.filters: bilateral filter and unsharp mask, both backends against OpenCV / scikit-image."""

from __future__ import annotations

import importlib

import cv2
import numpy as np
import pytest
import torch
from skimage.filters import gaussian, unsharp_mask

BILATERAL_PARAMS = [(9, 75.0, 75.0), (5, 30.0, 10.0), (15, 150.0, 7.0), (0, 40.0, 3.0)]
UNSHARP_PARAMS = [(2.0, 1.0), (0.7, 2.5), (5.0, 0.5)]


@pytest.fixture(scope="module")
def filters(pack):
    return importlib.import_module(f"{pack.__name__}.utils.filters")


@pytest.fixture(scope="module")
def crops(photos):
    """Four photo crops of 141x213 (odd, divisible by nothing useful): real content, fast tests."""
    return photos[:, 37:178, 50:263].clone()


def to_uint8(x):
    """Round to nearest, as bridges.to_uint8; written out so the reference does not depend on the pack."""
    return np.clip(np.rint(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)


def opencv_bilateral(images, diameter, sigma_color, sigma_space):
    """The reference: cv2.bilateralFilter on each 8-bit RGB image (default border REFLECT_101), back to 0..1."""
    return np.stack([cv2.bilateralFilter(a, diameter, sigma_color, sigma_space) for a in to_uint8(images)]) / 255.0


def skimage_unsharp(images, radius, amount):
    # channel_axis=2, not -1: scikit-image 0.26 mis-slices negative channel axes in unsharp_mask and
    # returns uninitialised memory below row 3 (scikit-image issue #7264, fix in PR #8085).
    return np.stack([unsharp_mask(a, radius=radius, amount=amount, channel_axis=2) for a in images.numpy()])


@pytest.mark.parametrize("diameter, sigma_color, sigma_space", BILATERAL_PARAMS)
def test_bilateral_matches_opencv(filters, crops, backend, diameter, sigma_color, sigma_space):
    ours = filters.bilateral(crops, diameter, sigma_color, sigma_space, backend=backend).double().numpy()
    err = np.abs(ours - opencv_bilateral(crops, diameter, sigma_color, sigma_space)) * 255
    if backend == "native":
        assert err.max() < 1e-3  # it is the reference: same 8-bit input, same call
    # torch keeps float output: unrounded, so ~0.25 levels mean and at most 0.5 (measured 0.24-0.25 / 0.50)
    assert err.mean() <= 0.5 and (err <= 2).mean() >= 0.99


@pytest.mark.parametrize("radius, amount", UNSHARP_PARAMS)
def test_unsharp_matches_skimage(filters, crops, backend, radius, amount):
    ours = filters.unsharp(crops, radius, amount, backend=backend).double().numpy()
    err = np.abs(ours - skimage_unsharp(crops, radius, amount)) * 255
    # Same taps and borders; only float32 summation order differs (measured max 2e-4 levels).
    assert (err <= 1).mean() >= 0.999 and err.max() < 0.01


def test_kernels_wider_than_the_image(filters, backend):
    x = torch.rand(2, 5, 7, 3, generator=torch.Generator().manual_seed(3))
    x8 = torch.from_numpy(to_uint8(x)).float() / 255  # 8-bit values: the bilateral reference's own input
    bil = filters.bilateral(x8, 15, 80.0, 5.0, backend=backend).double().numpy()
    assert np.abs(bil - opencv_bilateral(x8, 15, 80.0, 5.0)).max() * 255 <= 0.5 + 1e-3
    sharp = filters.unsharp(x, 5.0, 1.0, backend=backend).double().numpy()  # 41 taps over 5 rows
    assert np.abs(sharp - skimage_unsharp(x, 5.0, 1.0)).max() * 255 < 0.01


def test_unsharp_threshold_spares_flat_areas(filters, crops, backend):
    radius, amount, threshold = 2.0, 1.5, 12
    x = crops[:2]
    ours = filters.unsharp(x, radius, amount, threshold, backend=backend)
    everywhere = filters.unsharp(x, radius, amount, 0, backend=backend)
    blurred = torch.from_numpy(np.stack([gaussian(a, sigma=radius, mode="reflect", channel_axis=2)
                                         for a in x.numpy()]))
    levels = (x - blurred).abs() * 255
    flat, detail = levels < threshold - 0.01, levels > threshold + 0.01  # skip float ties at the threshold
    assert 0.05 < detail.float().mean() < 0.95  # the crops have both kinds of pixels
    assert torch.equal(ours[flat], x[flat])
    assert torch.allclose(ours[detail], everywhere[detail], atol=1e-6)
    assert not torch.allclose(ours[detail], x[detail], atol=1 / 255)


def test_batch_equals_loop(filters, crops, backend):
    x = crops[:3, :60, :75]
    for fn in (lambda t: filters.bilateral(t, 7, 50.0, 5.0, backend=backend),
               lambda t: filters.unsharp(t, 1.5, 1.0, 4, backend=backend)):
        batch = fn(x)
        for i in range(x.shape[0]):
            assert torch.allclose(batch[i:i + 1], fn(x[i:i + 1]), atol=1e-6, rtol=0)


def test_torch_bilateral_bands_match_whole_images(filters, crops, monkeypatch):
    x = crops[:2, :50, :61]
    whole = filters.bilateral(x, 9, 60.0, 4.0, backend="torch")
    monkeypatch.setitem(filters._BAND_PIXELS, "cpu", 61 * 7)  # one image at a time, 7 rows per band
    assert torch.allclose(filters.bilateral(x, 9, 60.0, 4.0, backend="torch"), whole, atol=1e-6, rtol=0)


def test_input_unchanged_and_alpha_passed_through(filters, synthetic, backend):
    x = synthetic * 1.2  # values above 1 are clamped inside, never in the caller's tensor
    before = x.clone()
    for out in (filters.bilateral(x, 5, 40.0, 3.0, backend=backend),
                filters.unsharp(x, 1.0, 2.0, 3, backend=backend)):
        assert torch.equal(x, before)
        assert torch.equal(out[..., 3], x[..., 3].clamp(0, 1))  # alpha passed through, clamped like all output
        assert 0 <= out[..., :3].min() and out[..., :3].max() <= 1


def test_values_above_one_are_clamped_first(filters, crops, backend):
    x = crops[:1, :40, :50] * 1.3
    for fn in (lambda t: filters.bilateral(t, 5, 40.0, 3.0, backend=backend),
               lambda t: filters.unsharp(t, 1.0, 1.0, backend=backend)):
        assert torch.equal(fn(x), fn(x.clamp(0, 1)))


def test_shape_dtype_device(filters, synthetic, device, dtype):
    x = synthetic.to(device, dtype)
    for out in (filters.bilateral(x, 5, 40.0, 3.0), filters.unsharp(x, 1.0, 1.0, 2)):
        assert out.shape == x.shape and out.dtype == dtype and out.device.type == device.type
        assert torch.equal(out[..., 3], x[..., 3])


def test_auto_backend_and_env_override(filters, crops, monkeypatch):
    x = crops[:1, :40, :50]
    monkeypatch.delenv("CLEANCUT_BACKEND", raising=False)
    assert torch.equal(filters.bilateral(x), filters.bilateral(x, backend="native"))  # CPU tensor -> OpenCV
    monkeypatch.setenv("CLEANCUT_BACKEND", "torch")
    assert torch.equal(filters.unsharp(x), filters.unsharp(x, backend="torch"))


def test_identity_settings_return_the_clamped_image(filters, synthetic, backend):
    x = synthetic[..., :3] * 1.1
    for out in (filters.bilateral(x, 9, 0.0, 10.0, backend=backend),
                filters.bilateral(x, 9, 30.0, 0.0, backend=backend),
                filters.unsharp(x, 0.0, 1.0, backend=backend),
                filters.unsharp(x, 0.1, 1.0, backend=backend),  # a 1-tap Gaussian (scipy cuts at 4 sigma)
                filters.unsharp(x, 2.0, 0.0, backend=backend)):
        assert torch.equal(out, x.clamp(0, 1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_cuda_matches_cpu_reference(filters, crops):
    device = torch.device("cuda")  # auto picks the torch backend here; the references stay on the CPU
    bil = filters.bilateral(crops.to(device), 9, 75.0, 75.0).cpu().double().numpy()
    err = np.abs(bil - opencv_bilateral(crops, 9, 75.0, 75.0)) * 255
    assert err.mean() <= 0.5 and (err <= 2).mean() >= 0.99
    sharp = filters.unsharp(crops.to(device), 2.0, 1.0).cpu().double().numpy()
    assert (np.abs(sharp - skimage_unsharp(crops, 2.0, 1.0)) * 255 <= 1).mean() >= 0.999


@pytest.mark.parametrize("call, match", [
    (lambda f, x: f.bilateral(x, diameter=-1), "diameter"),
    (lambda f, x: f.bilateral(x, diameter=100), "diameter"),
    (lambda f, x: f.bilateral(x, diameter=9.0), "diameter"),
    (lambda f, x: f.bilateral(x, sigma_color=-1.0), "sigma_color"),
    (lambda f, x: f.bilateral(x, sigma_color=float("nan")), "sigma_color"),
    (lambda f, x: f.bilateral(x, sigma_space=1e4), "sigma_space"),
    (lambda f, x: f.bilateral(x, diameter=0, sigma_space=40.0), "sigma_space"),  # radius 60 > 49
    (lambda f, x: f.bilateral(x, backend="cuda"), "backend"),
    (lambda f, x: f.bilateral(x[..., 0]), "image:"),
    (lambda f, x: f.unsharp(x, radius=-0.5), "radius"),
    (lambda f, x: f.unsharp(x, radius=65.0), "radius"),
    (lambda f, x: f.unsharp(x, amount=-1.0), "amount"),
    (lambda f, x: f.unsharp(x, threshold=256), "threshold"),
    (lambda f, x: f.unsharp(x, threshold=2.5), "threshold"),
    (lambda f, x: f.unsharp(x, backend="gpu"), "backend"),
    (lambda f, x: f.unsharp(x[..., :2]), "image:"),
])
def test_errors_name_the_input(filters, synthetic, call, match):
    with pytest.raises(ValueError, match=match):
        call(filters, synthetic)
