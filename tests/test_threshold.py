"""Remove Background (Alpha Threshold): parity with WAS's PIL code, its batch bug, batching, errors, node."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from conftest import BACKENDS
from PIL import Image, ImageFilter
from was_reference import was_loop

MODES = ("background", "foreground")
THRESHOLDS = (0, 1, 64, 127, 200, 254, 255)
TOLERANCES = (1, 2, 7, 24)

# WAS_Remove_Background.INPUT_TYPES, restated from WAS Node Suite's source.
WAS_INPUT_TYPES = {
    "required": {
        "images": ("IMAGE",),
        "mode": (["background", "foreground"],),
        "threshold": ("INT", {"default": 127, "min": 0, "max": 255, "step": 1}),
        "threshold_tolerance": ("INT", {"default": 2, "min": 1, "max": 24, "step": 1}),
    },
}


@pytest.fixture(scope="module")
def mod(pack):
    return importlib.import_module(f"{pack.__name__}.utils.threshold")


@pytest.fixture(scope="module")
def node_cls(pack):
    return pack.NODE_CLASS_MAPPINGS["CleanCutAlphaThreshold"]





def was_per_image(image, mode, threshold, tolerance):
    """WAS's algorithm run on every image alone: what the node promises for each image of a batch."""
    return torch.cat([was_loop(image[i:i + 1], mode, threshold, tolerance) for i in range(image.shape[0])])


def agreement(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return (ours.cpu() == ref).double().mean().item()


def crops(photos, h, w):
    return photos[:, 40:40 + h, 60:60 + w].contiguous()


# --- Parity ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tolerance", TOLERANCES)
def test_alpha_matches_was_on_photos_and_synthetic(mod, photos, synthetic, backend, mode, tolerance):
    """Every threshold: alpha equals WAS's on >= 99.5% of pixels (measured: 100%, both backends).

    Both backends replay Pillow's integer arithmetic (convert('L'), three extended box passes per axis in
    24-bit fixed point), so anything short of exact is a regression, reported with the measured figure.
    """
    size = (150, 226) if backend == "native" else (64, 96)  # the torch path is slow on the CPU only
    for images in (crops(photos, *size), synthetic):
        for threshold in THRESHOLDS:
            rgba, mask = mod.alpha_threshold(images, mod.ThresholdOptions(mode, threshold, tolerance), backend=backend)
            ref = was_per_image(images, mode, threshold, tolerance)[..., 3]
            score = agreement(mask, ref)
            assert score >= 0.995, f"threshold {threshold}: alpha agrees on {score:.4%} only"
            assert score == 1.0, f"threshold {threshold}: {score:.6%}, no longer bit-exact"


@pytest.mark.parametrize("mode, threshold, tolerance", [("background", 127, 2), ("foreground", 200, 7),
                                                         ("background", 64, 24)])
def test_alpha_matches_was_on_full_size_photos(mod, photo_arrays, backend, mode, threshold, tolerance):
    for name, array in photo_arrays.items():
        image = torch.from_numpy(array).float().div(255.0).unsqueeze(0)
        rgba, _ = mod.alpha_threshold(image, mod.ThresholdOptions(mode, threshold, tolerance), backend=backend)
        ref = was_loop(image, mode, threshold, tolerance)
        assert agreement(rgba[..., 3], ref[..., 3]) == 1.0, name
        assert torch.equal(rgba[..., :3], ref[..., :3]), f"{name}: 8-bit photos keep WAS's RGB exactly"


@pytest.mark.parametrize("radius", range(1, 25))
def test_blur_torch_equals_pillow_bit_for_bit(mod, radius):
    """The torch box passes equal Pillow's GaussianBlur for every radius, incl. images smaller than the box."""
    g = torch.Generator().manual_seed(radius)
    for h, w in ((37, 61), (1, 1), (1, 9), (5, 3), (2, 50)):
        grey = torch.randint(0, 256, (2, h, w), generator=g, dtype=torch.uint8)
        grey[1] = 0
        grey[1, h // 2, w // 2] = 255  # an impulse: the blur's weights, one by one
        pillow = torch.from_numpy(np.stack([np.asarray(Image.fromarray(p.numpy(), "L").filter(
            ImageFilter.GaussianBlur(radius))) for p in grey]))
        assert torch.equal(mod.pil_gaussian_blur(grey, radius, "torch"), pillow), (h, w)
        assert torch.equal(mod.pil_gaussian_blur(grey, radius, "native"), pillow), (h, w)


def test_known_mask_on_synthetic_disc(mod):
    """A white disc on black: background mode keeps the disc, foreground mode keeps the rest."""
    y, x = torch.meshgrid(torch.arange(90.0), torch.arange(120.0), indexing="ij")
    radius = ((y - 45) ** 2 + (x - 60) ** 2).sqrt()
    disc = (radius < 30).float()
    image = (disc[None, ..., None] * torch.tensor([0.9, 0.8, 0.7])).contiguous()
    for backend in BACKENDS:
        keep = mod.alpha_threshold(image, mod.ThresholdOptions("background", 127, 2), backend=backend)[1][0]
        wrong = keep != disc
        assert wrong.any() and (radius[wrong] - 30).abs().max() < 2, f"{backend}: errors beyond the rim"
        rest = mod.alpha_threshold(image, mod.ThresholdOptions("foreground", 127, 2), backend=backend)[1][0]
        assert torch.equal(rest, 1 - keep)


# --- The batch bug and legacy_alternating ------------------------------------------------------------------

@pytest.fixture(scope="module")
def batch(photos, synthetic):
    """Five distinct RGBA images (an odd count), one size."""
    p = torch.cat([crops(photos, 97, 130), torch.ones(4, 97, 130, 1)], dim=-1)
    return torch.cat([p, synthetic[:1]]).contiguous()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("threshold", [64, 127, 200])
def test_legacy_alternating_reproduces_was_loop_byte_for_byte(mod, batch, backend, mode, threshold):
    ref = was_loop(batch, mode, threshold, 2)
    legacy = mod.ThresholdOptions(mode, threshold, 2, legacy_alternating=True)
    rgba, mask = mod.alpha_threshold(batch, legacy, backend=backend)
    assert torch.equal(rgba, ref)
    chunked, mask2, _ = mod.alpha_threshold_batches(batch, legacy, backend, chunk=2)
    assert torch.equal(chunked, ref), "the flip must follow the index in the whole batch, not in a chunk"


def test_batch_bug_is_gone(mod, batch, backend):
    """Image k of a batch == the same image alone == WAS on that image alone, for every k."""
    was_batch = was_loop(batch, "background", 64, 2)
    assert not torch.equal(was_batch[1], was_loop(batch[1:2], "background", 64, 2)[0]), "WAS's bug (sanity)"
    options = mod.ThresholdOptions("background", 64, 2)
    rgba, mask, _ = mod.alpha_threshold_batches(batch, options, backend=backend, chunk=2)
    for k in range(batch.shape[0]):
        alone = mod.alpha_threshold(batch[k:k + 1], mod.ThresholdOptions("background", 64, 2), backend=backend)
        assert torch.equal(rgba[k], alone[0][0]) and torch.equal(mask[k], alone[1][0]), k
        assert torch.equal(mask[k], was_loop(batch[k:k + 1], "background", 64, 2)[0, ..., 3]), k


# --- Outputs, inputs, devices ------------------------------------------------------------------------------

def test_outputs_shape_dtype_device_and_polarity(mod, batch, device, dtype, backend):
    x = batch.to(device, dtype)
    before = x.clone()
    rgba, mask, inverted = mod.alpha_threshold_batches(x, mod.ThresholdOptions("foreground", 127, 2), backend=backend)
    assert torch.equal(x, before), "input modified"
    b, h, w, _ = x.shape
    assert rgba.shape == (b, h, w, 4) and mask.shape == inverted.shape == (b, h, w)
    for t in (rgba, mask, inverted):
        assert t.dtype == dtype and t.device == x.device
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(rgba[..., 3], mask) and torch.equal(inverted, 1 - mask)
    assert torch.equal(rgba[..., :3], x[..., :3]), "the RGB is passed through (alpha replaced)"
    options = mod.ThresholdOptions("foreground", 127, 2, legacy_alternating=True)
    legacy = mod.alpha_threshold(x, options, backend=backend)[0]
    q = torch.floor(torch.clamp(255.0 * x[..., :3].float(), 0, 255)) / 255.0
    assert torch.equal(legacy[..., :3], q.to(dtype)), "legacy RGB is WAS's truncated 8-bit RGB"


def test_out_of_range_rgb_is_clamped_and_cut_like_was(mod, backend):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 33, 47, 3, generator=g) * 1.6 - 0.3
    before = x.clone()
    rgba, mask = mod.alpha_threshold(x, mod.ThresholdOptions("background", 100, 3), backend=backend)
    assert torch.equal(x, before)
    assert torch.equal(rgba[..., :3], x.clamp(0, 1))
    assert torch.equal(mask, was_per_image(x, "background", 100, 3)[..., 3])


def test_backends_agree_and_any_size_works(mod):
    g = torch.Generator().manual_seed(5)
    for h, w in ((1, 1), (1, 7), (7, 1), (2, 3), (5, 200)):
        x = torch.rand(2, h, w, 3, generator=g)
        cpu = mod.alpha_threshold(x, mod.ThresholdOptions("foreground", 127, 24), backend="native")
        tch = mod.alpha_threshold(x, mod.ThresholdOptions("foreground", 127, 24), backend="torch")
        assert torch.equal(cpu[0], tch[0]) and torch.equal(cpu[1], tch[1]), (h, w)


def test_backend_env_var_and_auto(mod, batch, monkeypatch):
    ref = mod.alpha_threshold(batch, backend="native")
    monkeypatch.setenv("CLEANCUT_BACKEND", "torch")
    assert torch.equal(mod.alpha_threshold(batch)[1], ref[1])
    monkeypatch.setenv("CLEANCUT_BACKEND", "bogus")
    with pytest.raises(ValueError, match="backend"):
        mod.alpha_threshold(batch)


def test_progress_and_cancel_between_chunks(pack, mod, batch, monkeypatch):
    runtime, seen = pack.utils.runtime, []

    class Recorder(runtime.Progress):
        def update(self, n=1):
            super().update(n)
            seen.append(n)

    monkeypatch.setattr(runtime, "Progress", Recorder)
    mod.alpha_threshold_batches(batch, chunk=2, backend="native")
    assert seen == [2, 2, 1]

    calls = []

    def cancel():
        calls.append(1)
        if len(calls) == 2:
            raise InterruptedError("cancelled")

    monkeypatch.setattr(runtime, "raise_if_cancelled", cancel)
    with pytest.raises(InterruptedError):
        mod.alpha_threshold_batches(batch, chunk=2, backend="torch")


# --- Errors ------------------------------------------------------------------------------------------------

NAN_LAST = torch.rand(3, 8, 8, 3).index_put_((torch.tensor([2]),), torch.tensor(float("nan")))


@pytest.mark.parametrize("kwargs, match", [
    ({"image": [1, 2]}, "images: expected an IMAGE"),
    ({"image": torch.rand(8, 8)}, "images: expected an IMAGE"),
    ({"image": torch.rand(2, 8, 8)}, "images: .*MASK"),
    ({"image": torch.rand(0, 8, 8, 3)}, "images: the batch is empty"),
    ({"image": torch.rand(1, 0, 8, 3)}, "images: the images have no pixels"),
    ({"image": torch.rand(1, 8, 8, 2)}, "images: expected 3 or 4 channels"),
    ({"image": torch.zeros(1, 8, 8, 3, dtype=torch.uint8)}, "images: expected a float"),
    ({"image": NAN_LAST}, "images: contains NaN"),
    ({"mode": "Background"}, "mode:"),
    ({"threshold": 256}, "threshold: 256 is above"),
    ({"threshold": -1}, "threshold: -1 is below"),
    ({"threshold": 127.5}, "threshold: expected an integer"),
    ({"threshold_tolerance": 0}, "threshold_tolerance: 0 is below"),
    ({"threshold_tolerance": 25}, "threshold_tolerance: 25 is above"),
    ({"legacy_alternating": "yes"}, "legacy_alternating:"),
    ({"backend": "cuda"}, "backend:"),
])
def test_errors_name_the_input(mod, backend, kwargs, match):
    options = {k: v for k, v in kwargs.items() if k not in ("image", "backend")}
    image = kwargs.get("image", torch.rand(2, 8, 8, 3))
    for fn in (mod.alpha_threshold, mod.alpha_threshold_batches):
        with pytest.raises(ValueError, match=match):
            fn(image, mod.ThresholdOptions(**options), backend=kwargs.get("backend", backend))


# --- The node ----------------------------------------------------------------------------------------------

def test_node_equals_utils(mod, node_cls, batch):
    out = node_cls().run(images=batch, mode="background", threshold=100, threshold_tolerance=3)
    assert len(out) == len(node_cls.RETURN_TYPES) == 3
    ref = mod.alpha_threshold_batches(batch, mod.ThresholdOptions("background", 100, 3))
    assert all(torch.equal(a, b) for a, b in zip(out, ref, strict=True))
    legacy = node_cls().run(batch, "background", 100, 3, True)[0]
    assert torch.equal(legacy, was_loop(batch, "background", 100, 3))


def test_node_tooltips_say_what_the_masks_mean(node_cls):
    assert "1 = kept" in node_cls.OUTPUT_TOOLTIPS[1] and "1 - mask" in node_cls.OUTPUT_TOOLTIPS[2]
    spec = node_cls.INPUT_TYPES()
    for section in spec.values():
        for name, (_, *opts) in section.items():
            assert opts and len(opts[0].get("tooltip", "")) > 20, f"{name} has no tooltip"


def test_widgets_match_was(node_cls):
    """Same inputs, order, choices, defaults, ranges and steps as WAS; new inputs only after them."""
    ours, was = node_cls.INPUT_TYPES(), WAS_INPUT_TYPES["required"]
    names = [n for section in ("required", "optional") for n in ours.get(section, {})]
    assert names[:len(was)] == list(was) and names[len(was):] == ["legacy_alternating"]
    req = ours["required"]
    assert req["images"][0] == "IMAGE"
    assert list(req["mode"][0]) == was["mode"][0] and req["mode"][1]["default"] == was["mode"][0][0]
    for name in ("threshold", "threshold_tolerance"):
        assert req[name][0] == was[name][0]
        assert {k: req[name][1][k] for k in was[name][1]} == was[name][1]
    assert ours["optional"]["legacy_alternating"][0] == "BOOLEAN"
    assert ours["optional"]["legacy_alternating"][1]["default"] is False
    assert node_cls.RETURN_TYPES[0] == "IMAGE", "WAS's only output stays first"
