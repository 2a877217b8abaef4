"""Remove Background (rembg): the batched pre/post-processing (LANCZOS, normalisation, mask, post-process)
against Pillow and rembg's own functions, without the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PACK
from PIL import Image

lanczos, models = PACK.utils.rembg.resample, PACK.utils.rembg.models
inference, cutout = PACK.utils.rembg.inference, PACK.utils.rembg.cutout

SIZES = [(1024, 1024, 320, 320), (300, 451, 320, 320), (451, 300, 320, 320), (320, 320, 300, 451),
         (320, 320, 451, 300), (7, 5, 320, 320), (320, 320, 2, 3), (200, 100, 100, 80), (100, 100, 110, 120)]


@pytest.mark.parametrize("h, w, out_h, out_w", SIZES + [tuple(int(v) for v in np.random.default_rng(s).integers(
    1, 400, 4)) for s in range(12)])
def test_lanczos_equals_pillow(photo_arrays, h, w, out_h, out_w):
    rgb = np.asarray(Image.fromarray(photo_arrays["astronaut"]).resize((w, h), Image.BILINEAR))
    ref = np.asarray(Image.fromarray(rgb).resize((out_w, out_h), Image.LANCZOS))
    ours = lanczos.resize_uint8(torch.from_numpy(rgb.copy()).float()[None], out_h, out_w)[0]
    assert np.array_equal(ours.numpy(), ref.astype(np.float32))
    grey = np.asarray(Image.fromarray(rgb[..., 0].copy()).resize((out_w, out_h), Image.LANCZOS))
    assert np.array_equal(lanczos.resize_uint8(torch.from_numpy(rgb[..., 0].copy()).float()[None], out_h, out_w)[0]
                          .numpy(), grey.astype(np.float32))


def test_lanczos_float64_path_equals_the_float32_halves(photos, monkeypatch):
    down = lanczos.resize_uint8(photos, 320, 320, unit=True)
    up = lanczos.resize_uint8(down[..., 0], 300, 451)
    monkeypatch.setattr(lanczos, "_use_float32", lambda device: False)  # the GPU path, on the CPU
    lanczos._weights_on.cache_clear()
    try:
        assert torch.equal(lanczos.resize_uint8(photos, 320, 320, unit=True), down)
        assert torch.equal(lanczos.resize_uint8(down[..., 0], 300, 451), up)
    finally:
        lanczos._weights_on.cache_clear()


def test_lanczos_rounds_unit_images_like_to_uint8(photos):
    u8 = torch.from_numpy(np.stack(PACK.utils.bridges.tensor2np(photos))).float()
    assert torch.equal(lanczos.resize_uint8(photos, 320, 320, unit=True), lanczos.resize_uint8(u8, 320, 320))
    assert torch.equal(lanczos.resize_uint8(photos, 300, 451, unit=True), u8)  # same size: just rounded


def test_model_input_equals_rembg_normalize(photos):
    pytest.importorskip("rembg")
    from rembg.sessions.base import BaseSession

    class Stub(BaseSession):  # normalize() only reads the input name from the inner session
        def __init__(self):
            self.inner_session = type("S", (), {"get_inputs": lambda s: [type("I", (), {"name": "x"})()]})()

    for name in ("u2netp", "isnet-general-use", "isnet-anime", "birefnet-general"):
        spec = models.MODELS[name]
        ours = inference.model_input(photos[:2], spec).numpy()
        for i, arr in enumerate(PACK.utils.bridges.tensor2np(photos[:2])):
            ref = Stub().normalize(Image.fromarray(arr), spec.mean, spec.std, (spec.size, spec.size))["x"]
            assert np.array_equal(ours[i:i + 1], ref), name


@pytest.mark.parametrize("sigmoid", [False, True])
def test_mask_from_output_equals_rembg_predict(sigmoid):
    spec = models.MODELS["birefnet-general" if sigmoid else "u2netp"]
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(2, 320, 320, generator=g).cumsum(1).cumsum(2) / 40  # smooth, like a real output
    ours = inference.mask_from_output(pred, spec, 300, 451)
    for i in range(2):
        p = pred[i].numpy()
        p = 1 / (1 + np.exp(-p)) if sigmoid else p
        p = (p - p.min()) / (p.max() - p.min())
        ref = Image.fromarray((p * 255).astype("uint8"), mode="L").resize((451, 300), Image.LANCZOS)
        diff = np.abs(ours[i].numpy() - np.asarray(ref))
        # NumPy's and torch's float32 exp may differ in the last bit, rarely moving a level: sigmoid only
        assert diff.max() <= (1 if sigmoid else 0) and (diff > 0).mean() < 1e-3
    assert inference.mask_from_output(torch.zeros(1, 8, 8), spec, 4, 4).eq(0).all()  # constant output: empty mask


def test_post_process_equals_rembg(photo_arrays, monkeypatch, backend):
    pytest.importorskip("rembg")
    from rembg.bg import post_process

    monkeypatch.setenv("CLEANCUT_BACKEND", backend)
    rng = np.random.default_rng(0)
    masks = [np.asarray(Image.fromarray(a[..., 1]).resize((97, 64))) for a in photo_arrays.values()]
    masks += [rng.integers(0, 256, (37, 50)).astype(np.uint8), (rng.random((60, 61)) > 0.5).astype(np.uint8) * 255]
    for m in masks:
        ours = cutout.post_process(torch.from_numpy(m.copy()).float()[None])[0]
        assert np.array_equal(ours.numpy(), post_process(m).astype(np.float32))




def test_lanczos_in_slices_equals_one_pass(photos, monkeypatch):
    """Each pass in slices of a few columns (exact integer sums per column): the same result as one pass."""
    down = lanczos.resize_uint8(photos[:1], 320, 320, unit=True)
    up = lanczos.resize_uint8(down[..., 0], 300, 451)
    monkeypatch.setattr(lanczos, "CHUNK_BYTES", 1 << 16)
    assert torch.equal(lanczos.resize_uint8(photos[:1], 320, 320, unit=True), down)
    assert torch.equal(lanczos.resize_uint8(down[..., 0], 300, 451), up)
