"""Preprocess (all-in-one): neutral settings are the identity, no control is ignored, order, node == utils."""

import dataclasses

import pytest
import torch

ACTIVE = dict(bilateral_strength=30.0, saturation=1.4, clip_limit=2.0, tile_grid=8, sharpness=0.8, gamma=1.3,
              gain=0.9, sharpen_radius=2.0)
NUDGED = dict(bilateral_strength=60.0, saturation=0.7, clip_limit=4.0, tile_grid=3, sharpness=1.6, gamma=0.8,
              gain=1.1, sharpen_radius=5.0)


@pytest.fixture
def crops(photos):
    return photos[:2, :120, :160]


def test_neutral_settings_return_the_input(pack, crops):
    Settings = pack.utils.pipeline.Settings
    out = pack.utils.pipeline.preprocess(crops, Settings())
    assert torch.equal(out, crops) and out is not crops


@pytest.mark.parametrize("control", sorted(ACTIVE))
def test_every_control_changes_the_output(pack, crops, control):
    # The unraphael app silently ignored some of its sliders: here each one must move the result.
    Settings = pack.utils.pipeline.Settings
    base = pack.utils.pipeline.preprocess(crops, Settings(**ACTIVE))
    nudged = pack.utils.pipeline.preprocess(crops, Settings(**{**ACTIVE, control: NUDGED[control]}))
    assert (base - nudged).abs().mean() > 1e-3, f"{control} has no visible effect"


@pytest.mark.parametrize("control", ["bilateral_strength", "saturation", "clip_limit", "sharpness", "gamma", "gain"])
def test_each_step_alone_turns_on_from_neutral(pack, crops, control):
    Settings = pack.utils.pipeline.Settings
    out = pack.utils.pipeline.preprocess(crops, Settings(**{control: ACTIVE[control]}))
    assert (out - crops).abs().mean() > 1e-3


def test_order_is_bilateral_clahe_saturation_sharpen_gamma(pack, crops):
    u = pack.utils
    s = u.pipeline.Settings(**ACTIVE)
    by_hand = u.filters.bilateral(crops, 9, s.bilateral_strength, s.bilateral_strength)
    by_hand = u.clahe.clahe(by_hand, s.clip_limit, s.tile_grid)
    by_hand = u.adjust.saturation(by_hand, s.saturation)
    by_hand = u.filters.unsharp(by_hand, s.sharpen_radius, s.sharpness)
    by_hand = u.adjust.gamma_gain(by_hand, s.gamma, s.gain)
    assert torch.allclose(u.pipeline.preprocess(crops, s), by_hand, atol=1e-6)


def test_node_matches_utils_and_returns_comparison(pack, crops):
    node = pack.NODE_CLASS_MAPPINGS["CleanCutPreprocess"]()
    image, comparison = node.run(crops, **ACTIVE)
    ref = pack.utils.pipeline.preprocess(crops, pack.utils.pipeline.Settings(**ACTIVE))
    assert torch.allclose(image, ref, atol=1e-6)
    assert comparison.shape[0] == 2 and comparison.shape[2] == 2 * crops.shape[2]
    top = comparison.shape[1] - crops.shape[1]  # caption strip above
    assert torch.equal(comparison[:, top:, :160], crops) and torch.allclose(comparison[:, top:, 160:], image)


def test_settings_are_validated(pack, crops):
    Settings = pack.utils.pipeline.Settings
    for field in dataclasses.fields(Settings):
        with pytest.raises(ValueError, match=field.name):
            pack.utils.pipeline.preprocess(crops, Settings(**{field.name: -5 if field.type == "int" else -5.0}))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_is_chained_in_float32_and_cast_once(pack, crops, dtype, monkeypatch):
    """On the torch path each step used to round to the input dtype; CLAHE's 8-bit binning then drifted."""
    monkeypatch.setenv("CLEANCUT_BACKEND", "torch")
    settings = pack.utils.pipeline.Settings(**ACTIVE)
    half = pack.utils.pipeline.preprocess(crops.to(dtype), settings)
    full = pack.utils.pipeline.preprocess(crops.to(dtype).float(), settings)
    assert half.dtype == dtype
    assert torch.equal(half, full.to(dtype)), "the chain must see the same float32 values"


def test_neutral_settings_still_clamp_out_of_range_values(pack, crops):
    out = pack.utils.pipeline.preprocess(crops * 65535.0, pack.utils.pipeline.Settings())
    assert out.max() <= 1 and torch.equal(out, (crops * 65535.0).clamp(0, 1))
