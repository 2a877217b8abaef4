"""utils.foreground: pymatting's estimate_foreground_ml, batched (torch) and native, parity and batching."""

import numpy as np
import pytest
import torch


def soft_alpha(h, w, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx, r = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6), min(h, w) * rng.uniform(0.2, 0.3)
    return np.clip((r - np.hypot(yy - cy, xx - cx)) / 6 + 0.5, 0, 1).astype(np.float32)  # a 6 px soft rim


@pytest.fixture(scope="module")
def batch(photos):
    rgb = photos[:3, 40:136, 60:188].contiguous()  # real photos, 96 x 128
    alpha = torch.from_numpy(np.stack([soft_alpha(96, 128, s) for s in range(3)]))
    return rgb, alpha


@pytest.mark.parametrize("backend", ["torch", "native"])
def test_matches_pymatting_on_real_photos(pack, batch, backend):
    from pymatting import estimate_foreground_ml

    rgb, alpha = batch
    fg, bg = pack.utils.foreground.estimate_foreground(rgb, alpha, backend=backend)
    for i in range(rgb.shape[0]):
        ref_f, ref_b = estimate_foreground_ml(rgb[i].double().numpy(), alpha[i].double().numpy(),
                                              return_background=True)
        for ours, ref in ((fg[i], ref_f), (bg[i], ref_b)):
            d = np.abs(ours.numpy() - ref)
            # the tolerance: mean <= 1/255, >= 99 % within 2/255; the diagonal sweep is exact to
            # float32 rounding (pymatting computes in float32 too), measured max ~1e-3/255
            assert d.mean() <= 1 / 255 and (d <= 2 / 255).mean() >= 0.99 and d.max() <= 0.01 / 255


def test_batch_equals_one_by_one_and_inputs_untouched(pack, batch):
    rgb, alpha = batch
    before = (rgb.clone(), alpha.clone())
    fg, bg = pack.utils.foreground.estimate_foreground(rgb, alpha, backend="torch")
    assert torch.equal(rgb, before[0]) and torch.equal(alpha, before[1])
    assert fg.shape == rgb.shape and bg.shape == rgb.shape and fg.dtype == torch.float32
    for i in range(rgb.shape[0]):
        one, _ = pack.utils.foreground.estimate_foreground(rgb[i:i + 1], alpha[i:i + 1], backend="torch")
        assert torch.allclose(one[0], fg[i], atol=1e-6)


def test_decontaminates_a_known_composite(pack):
    """On I = aF + (1 - a)B with flat F and B, the estimate recovers F where the alpha is soft."""
    alpha = torch.from_numpy(soft_alpha(64, 64, 0))[None]
    f, b = torch.tensor([0.9, 0.2, 0.1]), torch.tensor([0.1, 0.3, 0.9])
    image = alpha[..., None] * f + (1 - alpha[..., None]) * b
    fg, _ = pack.utils.foreground.estimate_foreground(image, alpha, backend="torch")
    soft = (alpha[0] > 0.05) & (alpha[0] < 0.95)
    assert (fg[0][soft] - f).abs().max() < 0.05 and (image[0][soft] - f).abs().max() > 0.3


def test_errors_name_the_input(pack, batch):
    rgb, alpha = batch
    with pytest.raises(ValueError, match="alpha: mask size"):
        pack.utils.foreground.estimate_foreground(rgb, alpha[:, :10])
    with pytest.raises(ValueError, match="image:"):
        pack.utils.foreground.estimate_foreground(alpha, alpha)
