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


@pytest.mark.parametrize("h, w", [(2, 2), (1, 9), (7, 1), (31, 33), (96, 128), (300, 60)])
def test_native_equals_pymatting_bit_for_bit(pack, photos, h, w):
    """The CPU kernel restates pymatting's: on pymatting's own float32 computation the results are identical."""
    from pymatting import estimate_foreground_ml

    rgb = photos[:1, :h, :w].contiguous()
    alpha = torch.from_numpy(soft_alpha(h, w, 1) if min(h, w) > 4 else np.random.default_rng(0).random((h, w),
                                                                                                      np.float32))
    fg, bg = pack.utils.foreground.estimate_foreground(rgb, alpha[None], backend="native")
    ref_f, ref_b = estimate_foreground_ml(rgb[0].numpy(), alpha.numpy(), return_background=True)
    assert np.array_equal(fg[0].numpy(), ref_f) and np.array_equal(bg[0].numpy(), ref_b)


@pytest.mark.parametrize("backend", ["native", "torch"])
def test_foreground_into_a_cutout_equals_the_whole_estimate(pack, photos, backend):
    """Into a cut-out's RGB (strided), from an RGBA image's RGB and the cut-out's alpha (strided): on the CPU
    the background is a ring of 4 rows and the level before the last one runs in rings too. The same foreground
    as the whole estimate, which keeps every level's background."""
    fu = pack.utils.foreground
    h, w = 300, 90  # taller than the ring by far; the last two levels of 10 run side by side
    rgb = photos[:2, :h, :w].contiguous()
    alpha = torch.from_numpy(np.stack([soft_alpha(h, w, s) for s in range(2)]))
    rgba = torch.cat([rgb, torch.rand(2, h, w, 1)], -1)
    cutout = torch.zeros(2, h, w, 4)
    cutout[..., 3] = alpha
    assert fu.ml_background_rows(h, w) == 4 and fu.ml_background_rows(20, 30) == 12  # 10 sweeps at <= 32 px
    fu.foreground_into(rgba[..., :3], cutout[..., 3], cutout[..., :3], backend)
    whole, _ = fu.estimate_foreground(rgb, alpha, backend)
    assert torch.equal(cutout[..., :3], whole) and torch.equal(cutout[..., 3], alpha)


def test_inputs_in_range_are_used_without_a_copy(pack):
    unit = pack.utils.foreground.unit_float32
    x = torch.rand(2, 5, 6)
    assert unit(x) is x
    for y in (x * 2, x - 0.5, x.double()):
        got = unit(y)
        assert got is not y and got.dtype == torch.float32 and torch.equal(got, y.float().clamp(0, 1))
    nan = torch.full((2, 2), float("nan"))
    assert unit(nan) is not nan and torch.isnan(unit(nan)).all()  # clamped as before: NaN stays NaN


def test_the_cpu_kernel_loads_its_cache_in_a_process_that_names_the_pack_differently():
    """ComfyUI imports the pack under a new module name in every process; numba's on-disk cache of the CPU
    kernel must still load there (it recorded the module's name: the second process failed)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys, torch; sys.path.insert(0, 'tests'); from conftest import load_pack; p = load_pack(); "
            "f = p.utils.foreground; rgb = torch.rand(1, 24, 20, 3); a = torch.rand(1, 24, 20); "
            "out = f.estimate_foreground(rgb, a, backend='native')[0]; print(bool(out.isfinite().all()))")
    for _ in range(2):  # the first may compile and write the cache, the second loads it
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})
        assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-1500:]
