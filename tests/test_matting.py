"""utils.matting: rembg's trimap, the closed-form solve on the unknown band only, foreground, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PACK
from scipy.ndimage import binary_erosion, gaussian_filter

matting = PACK.utils.rembg.matting
pytest.importorskip("pymatting")


def soft_mask(h: int, w: int, centre=(0.5, 0.5), radius=0.3, edge=6.0, seed=0) -> np.ndarray:
    """An 8-bit mask: a disc with a soft edge of ``edge`` pixels and some noise, like a model's output."""
    y, x = np.mgrid[0:h, 0:w]
    d = np.hypot(y / h - centre[0], x / w - centre[1]) * min(h, w)
    m = np.clip(0.5 - (d - radius * min(h, w)) / edge, 0, 1) * 255
    m += np.random.default_rng(seed).normal(0, 2, m.shape)
    return np.clip(np.rint(m), 0, 255).astype(np.uint8)


def textured(h: int, w: int, seed=0) -> np.ndarray:
    """An RGB uint8 image with smooth colour variation (closed-form matting needs colour lines)."""
    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.random((h, w, 3)), sigma=(4, 4, 0))
    img = (img - img.min()) / (img.max() - img.min())
    return np.rint(img * 255).astype(np.uint8)


def rembg_trimap(mask: np.ndarray, fg: int, bg: int, erode: int) -> np.ndarray:
    """rembg's alpha_matting_cutout trimap, as 0 / 0.5 / 1."""
    structure = np.ones((erode, erode), dtype=np.uint8) if erode > 0 else None
    is_fg = binary_erosion(mask > fg, structure=structure)
    is_bg = binary_erosion(mask < bg, structure=structure, border_value=1)
    tri = np.full(mask.shape, 0.5)
    tri[is_fg], tri[is_bg] = 1.0, 0.0
    return tri


@pytest.mark.parametrize("fg, bg, erode", [(240, 10, 10), (240, 10, 0), (200, 30, 1), (250, 5, 7), (128, 128, 40)])
def test_trimap_equals_rembgs(fg, bg, erode):
    masks = np.stack([soft_mask(61, 80, seed=s, centre=(0.4 + 0.2 * s, 0.5)) for s in range(3)])
    masks[2, :, :5] = 255  # subject touching the border: eroded there (border_value=0)
    is_fg, is_bg = matting.trimap(torch.from_numpy(masks).float(), matting.Trimap(fg, bg, erode))
    for i, m in enumerate(masks):
        ref = rembg_trimap(m, fg, bg, erode)
        assert np.array_equal(is_fg[i].numpy(), ref == 1.0) and np.array_equal(is_bg[i].numpy(), ref == 0.0)


@pytest.mark.parametrize("shape", [(64, 80), (90, 70)])
def test_solve_alpha_equals_pymatting_on_the_whole_image(shape):
    from pymatting import estimate_alpha_cf

    image = textured(*shape).astype(np.float64) / 255
    tri = rembg_trimap(soft_mask(*shape), 240, 10, 3)
    ours = matting.solve_alpha(image, tri == 1.0, tri == 0.0)
    ref = estimate_alpha_cf(image, tri)
    assert np.abs(ours - ref).max() < 1e-3  # direct solve vs pymatting's CG (rtol 1e-7)
    assert np.array_equal(ours[tri != 0.5], tri[tri != 0.5])  # known pixels stay exactly 0 / 1


def test_separate_groups_are_solved_on_their_own_boxes():
    from pymatting import estimate_alpha_cf

    h, w = 80, 160
    image = textured(h, w, seed=3).astype(np.float64) / 255
    mask = np.maximum(soft_mask(h, w, centre=(0.5, 0.25), radius=0.15),
                      soft_mask(h, w, centre=(0.5, 0.75), radius=0.15, seed=1))
    mask[:, 150:] = 0  # a group bordered by background only: alpha 0 (pymatting's CG divides 0 by 0 here)
    mask[5:8, 152:156] = 60
    tri = rembg_trimap(mask, 240, 10, 3)
    assert len(matting._boxes(tri == 0.5)) >= 3
    ours = matting.solve_alpha(image, tri == 1.0, tri == 0.0)
    assert np.abs(ours - estimate_alpha_cf(image, tri)).max() < 1e-3


def test_no_sure_subject_or_background_falls_back_to_the_mask_like_rembg():
    image = textured(40, 50)
    mask = np.full((40, 50), 128, np.uint8)
    with pytest.raises(ValueError, match="foreground"):
        matting.solve_alpha(image / 255.0, np.zeros((40, 50), bool), np.ones((40, 50), bool))
    with pytest.raises(ValueError, match="background"):
        matting.solve_alpha(image / 255.0, np.ones((40, 50), bool), np.zeros((40, 50), bool))
    alpha, fg = matting.matte_one(image, mask, np.zeros((40, 50), bool), np.zeros((40, 50), bool))
    assert np.allclose(alpha, 128 / 255) and fg.shape == (40, 50, 3)


def test_foreground_equals_pymatting_where_it_shows():
    from pymatting import estimate_foreground_ml

    image = textured(120, 160, seed=2).astype(np.float64) / 255
    alpha = soft_mask(120, 160, radius=0.2, edge=10).astype(np.float64) / 255
    alpha[alpha < 10 / 255], alpha[alpha > 245 / 255] = 0, 1  # noise-free: the edge box is smaller than the image
    ours, ref = matting.estimate_foreground(image, alpha), estimate_foreground_ml(image, alpha)
    shown = alpha > 0.05
    assert np.abs(ours - ref)[shown].mean() < 1 / 255
    assert np.array_equal(ours[:8, :8], image[:8, :8])  # outside the box: the image itself


def test_batch_equals_one_by_one_and_workers_do_not_change_it():
    images = np.stack([textured(48, 64, seed=s) for s in range(3)])
    masks = np.stack([soft_mask(48, 64, seed=s, centre=(0.45 + 0.05 * s, 0.5)) for s in range(3)])
    rgb8, mask8 = torch.from_numpy(images).float(), torch.from_numpy(masks).float()
    alpha, fg = matting.alpha_matting(rgb8, mask8, matting.Trimap(240, 10, 3))
    serial = matting.alpha_matting(rgb8, mask8, matting.Trimap(240, 10, 3), workers=1)
    assert torch.equal(alpha, serial[0]) and torch.equal(fg, serial[1])
    assert alpha.shape == mask8.shape and fg.shape == rgb8.shape and alpha.dtype == torch.float32
    for i in range(3):
        one = matting.alpha_matting(rgb8[i:i + 1], mask8[i:i + 1], matting.Trimap(240, 10, 3))
        assert torch.equal(one[0][0], alpha[i]) and torch.equal(one[1][0], fg[i])
    assert torch.equal(rgb8, torch.from_numpy(images).float())  # inputs untouched


def test_thresholds_and_erosion_change_the_matte():
    rgb8 = torch.from_numpy(textured(60, 80)).float()[None]
    mask8 = torch.from_numpy(soft_mask(60, 80, edge=12)).float()[None]
    base = matting.alpha_matting(rgb8, mask8, matting.Trimap(240, 10, 3))[0]
    for settings in [(200, 10, 3), (240, 50, 3), (240, 10, 9)]:
        assert (matting.alpha_matting(rgb8, mask8, matting.Trimap(*settings))[0] - base).abs().max() > 0.01, settings


def test_progress_advances_once_per_image():
    progress = PACK.utils.runtime.Progress(2)
    rgb8 = torch.from_numpy(np.stack([textured(30, 30, seed=s) for s in range(2)])).float()
    mask8 = torch.from_numpy(np.stack([soft_mask(30, 30, seed=s) for s in range(2)])).float()
    matting.alpha_matting(rgb8, mask8, progress=progress)
    assert progress.done == 2
