"""Refine Edges: the guided filter against its definition, the edge band, the node's batching and errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import PACK

ed, guided = PACK.utils.edges, PACK.utils.guided
NODE = PACK.NODE_CLASS_MAPPINGS["CleanCutRefineEdges"]


def reference_guided_filter(image: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s colour guided filter (Algorithm 2 of the paper) in float64, per pixel 3x3 solves,
    windows clipped at the border (OpenCV box sums divided by the pixel counts)."""
    image, p = image.astype(np.float64), p.astype(np.float64)
    k = (2 * r + 1, 2 * r + 1)
    count = cv2.boxFilter(np.ones_like(p), -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)

    def box(x):
        return cv2.boxFilter(x, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT) / count

    mean_i = np.stack([box(image[..., c]) for c in range(3)], -1)
    mean_p = box(p)
    cov_ip = np.stack([box(image[..., c] * p) - mean_i[..., c] * mean_p for c in range(3)], -1)
    sigma = np.empty(p.shape + (3, 3))
    for i in range(3):
        for j in range(3):
            sigma[..., i, j] = box(image[..., i] * image[..., j]) - mean_i[..., i] * mean_i[..., j]
    a = np.linalg.solve(sigma + eps * np.eye(3), cov_ip[..., None])[..., 0]
    b = mean_p - (a * mean_i).sum(-1)
    return (np.stack([box(a[..., c]) for c in range(3)], -1) * image).sum(-1) + box(b)


@pytest.fixture(scope="module")
def scene(photos):
    """A real photo's crop with a soft disc mask: the image and mask batches ``[3, 96, 128]``."""
    rgb = photos[:3, 60:156, 100:228].contiguous()
    yy, xx = np.mgrid[0:96, 0:128]
    masks = [np.clip((30 + 4 * s - np.hypot(yy - 48, xx - 60 - 3 * s)) / 5 + 0.5, 0, 1) for s in range(3)]
    return rgb, torch.from_numpy(np.stack(masks)).float()


@pytest.mark.parametrize("r, eps", [(2, 1e-3), (8, 1e-4), (40, 1e-2)])
def test_guided_filter_equals_the_papers_definition(backend, scene, r, eps):
    rgb, mask = scene
    ours = guided.guided_filter(rgb, mask, r, eps, backend=backend)
    for i in range(rgb.shape[0]):
        ref = reference_guided_filter(rgb[i].numpy(), mask[i].numpy(), r, eps)
        assert np.abs(ours[i].numpy() - ref).max() <= 1e-4


def test_fast_variant_backends_agree_and_stay_close_to_the_exact_filter(scene):
    rgb, mask = scene
    fast = {b: guided.guided_filter(rgb, mask, 16, 1e-4, scale=4, backend=b) for b in ("torch", "native")}
    assert (fast["torch"] - fast["native"]).abs().max() <= 1e-4
    exact = guided.guided_filter(rgb, mask, 16, 1e-4)
    assert (fast["torch"] - exact).abs().mean() <= 0.02 and not torch.allclose(fast["torch"], exact, atol=1e-3)


def test_box_mean_is_a_clipped_window_mean():
    x = torch.rand(2, 3, 17, 23, dtype=torch.float64)
    got = guided.box_mean(x, 4)
    for y, xx in ((0, 0), (8, 11), (16, 22), (3, 20)):
        window = x[..., max(0, y - 4):y + 5, max(0, xx - 4):xx + 5]
        assert torch.allclose(got[..., y, xx], window.mean((-2, -1)))


def test_edge_band_is_where_a_window_sees_both_sides():
    side = torch.zeros(3, 60, 90, dtype=torch.bool)
    side[0, 20:40, 30:70] = True
    side[1, :, :3] = True  # touches the border
    side[2] = True  # no edge at all
    for r in (1, 6):
        native, torch_band = (ed.band_weight(side, r, b) > 0 for b in ("native", "torch"))
        assert torch.equal(native, torch_band)
        ys, xs = torch.nonzero(native[0], as_tuple=True)
        assert (ys.min(), ys.max(), xs.min(), xs.max()) == (20 - r, 39 + r, 30 - r, 69 + r)
        assert not native[0, 30, 50] and not native[2].any()


def step_scene(size=64):
    """A two-colour photo with a sharp vertical edge at x = 30 and a model-like mask: blurry and 3 px off."""
    truth = np.zeros((size, size), np.float32)
    truth[:, :30] = 1
    image = np.where(truth[..., None] > 0, [0.85, 0.55, 0.35], [0.15, 0.35, 0.6]).astype(np.float32)
    image += np.random.default_rng(0).normal(0, 0.01, image.shape).astype(np.float32)
    blurry = cv2.GaussianBlur(np.roll(truth, 3, axis=1), (0, 0), 4)
    return torch.from_numpy(image)[None], torch.from_numpy(blurry)[None], truth


def steepest(alpha: np.ndarray) -> np.ndarray:
    """Per row, the column x where alpha changes most between x and x + 1."""
    return np.abs(np.diff(alpha, axis=1)).argmax(1)


def test_guided_filter_moves_a_blurry_mask_onto_the_photos_edge(backend):
    image, mask, truth = step_scene()
    alpha = ed.guided_alpha(image, mask, 8, backend)[0].numpy()
    assert (steepest(mask[0].numpy()) == 32).all() and (steepest(alpha) == 29).all()  # the photo's step: 29 | 30
    assert np.abs(alpha - truth).sum() < 0.9 * np.abs(mask[0].numpy() - truth).sum()
    assert alpha.min() >= 0 and alpha.max() <= 1


def test_node_refines_and_decontaminates():
    image, mask, truth = step_scene()
    cutout, alpha, fg = NODE().run(image, mask, decontaminate=True)
    assert cutout.shape == (1, 64, 64, 4) and alpha.shape == (1, 64, 64) and fg.shape == (1, 64, 64, 3)
    assert torch.equal(cutout[..., 3], alpha) and torch.equal(cutout[..., :3], fg)
    assert (steepest(alpha[0].numpy()) == 29).all()
    soft = (alpha[0] > 0.1) & (alpha[0] < 0.9)
    if soft.any():  # decontaminated: soft pixels carry the subject's colour, not the photo's mix
        subject = torch.tensor([0.85, 0.55, 0.35])
        assert (fg[0][soft] - subject).abs().mean() < (image[0][soft] - subject).abs().mean()


def test_none_without_decontamination_returns_the_inputs(scene):
    rgb, mask = scene
    cutout, alpha, fg = ed.refine_edges(rgb, mask, ed.RefineOptions(method="none", decontaminate=False))
    assert torch.equal(alpha, mask) and torch.equal(fg, rgb)


def test_decontaminate_equals_pymatting_for_the_refined_alpha(scene):
    from pymatting import estimate_foreground_ml

    rgb, mask = scene
    _, alpha, fg = ed.refine_edges(rgb, mask, ed.RefineOptions(decontaminate=True))
    plain = ed.refine_edges(rgb, mask)
    assert torch.equal(plain[1], alpha) and torch.equal(plain[2], rgb)  # off by default: the photo's colours
    for i in range(rgb.shape[0]):
        ref = estimate_foreground_ml(rgb[i].double().numpy(), alpha[i].double().numpy())
        d = np.abs(fg[i].numpy() - ref)
        assert d.mean() <= 1 / 255 and (d <= 2 / 255).mean() >= 0.99


def test_closed_form_is_rembgs_alpha_matting(photos):
    """Against rembg's own ``alpha_matting_cutout`` (pymatting on rembg's trimap), on 8-bit data."""
    from PIL import Image
    from rembg.bg import alpha_matting_cutout

    rgb = (photos[:1, :80, :100] * 255).round() / 255
    yy, xx = np.mgrid[0:80, 0:100]
    mask8 = np.clip((28 - np.hypot(yy - 40, xx - 50)) * 20 + 128, 0, 255).round().astype(np.uint8)
    ref = np.asarray(alpha_matting_cutout(Image.fromarray((rgb[0].numpy() * 255).round().astype(np.uint8)),
                                          Image.fromarray(mask8), 240, 10, 5)).astype(np.float64) / 255
    options = ed.RefineOptions(method="closed-form", erode_size=5, decontaminate=True)
    cutout, alpha, _ = ed.refine_edges(rgb, torch.from_numpy(mask8 / 255.0).float()[None], options)
    assert np.abs(alpha[0].numpy() - ref[..., 3]).max() <= 2 / 255  # rembg truncates to 8 bits
    visible = np.abs(cutout[0, ..., :3].numpy() * alpha[0, ..., None].numpy() - ref[..., :3] * ref[..., 3:])
    assert visible.mean() <= 1 / 255


def test_one_image_or_one_mask_is_used_for_the_whole_batch(scene):
    rgb, mask = scene
    one_image = ed.refine_edges(rgb[:1], mask)
    one_mask = ed.refine_edges(rgb, mask[:1])
    for i in range(3):
        single = ed.refine_edges(rgb[:1], mask[i:i + 1])
        assert all(torch.allclose(a[i], s[0], atol=1e-6) for a, s in zip(one_image, single, strict=True))
        single = ed.refine_edges(rgb[i:i + 1], mask[:1])
        assert all(torch.allclose(a[i], s[0], atol=1e-6) for a, s in zip(one_mask, single, strict=True))


def test_inputs_untouched_and_rgba_alpha_ignored(scene):
    rgb, mask = scene
    rgba = torch.cat([rgb, torch.rand(*rgb.shape[:3], 1)], -1)
    before = (rgba.clone(), mask.clone())
    got = ed.refine_edges(rgba, mask)
    assert torch.equal(rgba, before[0]) and torch.equal(mask, before[1])
    assert all(torch.equal(a, b) for a, b in zip(got, ed.refine_edges(rgb, mask), strict=True))


def test_progress_and_cancel_between_chunks(scene, monkeypatch):
    rgb, mask = scene
    checks = []

    def cancel_on_second():
        checks.append(1)
        if len(checks) == 2:
            raise InterruptedError("cancelled")
    monkeypatch.setattr(PACK.utils.runtime, "raise_if_cancelled", cancel_on_second)
    monkeypatch.setattr(PACK.utils.runtime, "PIXELS_PER_CHUNK", rgb.shape[1] * rgb.shape[2])  # one image a chunk
    with pytest.raises(InterruptedError):
        ed.refine_edges(rgb, mask)
    assert len(checks) == 2


@pytest.mark.parametrize("image, mask, name, words", [
    (torch.rand(2, 32, 32, 3), torch.rand(2, 32, 40), "mask", "does not match"),
    (torch.rand(2, 32, 32, 3), torch.rand(3, 32, 32), "mask", "one mask per image"),
    (torch.rand(2, 32, 32, 3), torch.rand(2, 32, 32, 1), "mask", ""),
    (torch.rand(32, 32, 3), torch.rand(1, 32, 32), "image", ""),
])
def test_bad_inputs_are_clear_errors(image, mask, name, words):
    with pytest.raises(PACK.utils.checks.InputError) as err:
        NODE().run(image, mask)
    assert err.value.name == name and words in str(err.value)


@pytest.mark.parametrize("widget, value", [("band_width", 0), ("method", "matting"), ("erode_size", 41),
                                           ("decontaminate", "yes")])
def test_bad_settings_name_the_widget(widget, value):
    with pytest.raises(PACK.utils.checks.SettingError) as err:
        NODE().run(torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16), **{widget: value})
    assert err.value.name == widget


def test_tiny_images():
    for h, w in ((1, 1), (1, 7), (3, 2)):
        out = ed.refine_edges(torch.rand(2, h, w, 3), torch.rand(2, h, w))
        assert all(o.shape[1:3] == (h, w) and torch.isfinite(o).all() for o in out)


@pytest.mark.gpu
def test_cuda_matches_cpu(scene):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    rgb, mask = scene
    on_gpu = ed.refine_edges(rgb.cuda(), mask.cuda())
    on_cpu = ed.refine_edges(rgb, mask)
    for g, c in zip(on_gpu, on_cpu, strict=True):
        assert g.device.type == "cuda" and (g.cpu() - c).abs().mean() <= 1 / 255


def test_band_weight_fades_to_zero_at_the_band_border(backend):
    side = torch.zeros(1, 40, 80, dtype=torch.bool)
    side[:, :, :40] = True  # a straight edge between x = 39 and 40
    weight = ed.band_weight(side, 8, backend)[0]
    band = (ed.band_weight(side, 8, "native") > 0)[0]
    assert torch.equal(weight > 0, band) and band[:, 32:48].all() and not band[:, :32].any()  # the band
    row = weight[20]
    assert row[39] == 1 and row[40] == 1 and 0 < row[33] < 1 and row[31] == 0  # 1 at the edge, fading out
    assert (row[32:40].diff() >= 0).all()
    assert torch.allclose(weight, ed.band_weight(side, 8, "torch" if backend == "native" else "native"), atol=1e-6)


def one_pass_guided_alpha(rgb: torch.Tensor, mask: torch.Tensor, band_width: int) -> torch.Tensor:
    """The CPU guided alpha of one image as it ran before the strips: the models upsampled in one OpenCV call,
    the product with the guide and the band weight over the whole image."""
    scale = max(1, band_width // ed.FIT_RADIUS)
    guide, src = rgb.numpy(), mask.numpy()
    models, fast = guided._native_models(guide, src, band_width, ed.EPS, scale)
    if fast:
        models = cv2.resize(models, src.shape[::-1], interpolation=cv2.INTER_LINEAR)
    q = torch.from_numpy(np.einsum("hwc,hwc->hw", models[..., :3], guide) + models[..., 3]).clamp_(0, 1)
    return torch.lerp(mask, q, ed.band_weight((mask > 0.5)[None], band_width, "native")[0])


@pytest.mark.parametrize("shape", [(96, 451), (300, 90)])
@pytest.mark.parametrize("band_width", [32, 9, 5])  # fit scale 8 and 2 (strips); 1 (the exact filter: whole)
def test_native_strips_equal_one_pass(photos, monkeypatch, shape, band_width):
    """16 columns a strip, so many strips and a narrower last one: bit-identical to one pass over the image."""
    h, w = shape
    rgb = photos[:2, :h, :w].contiguous()
    yy, xx = np.mgrid[0:h, 0:w]
    mask = torch.from_numpy(np.stack([np.clip((min(h, w) * 0.35 - np.hypot(yy - h / 2, xx - w / 2 - 9 * s)) / 6
                                              + 0.5, 0, 1) for s in range(2)])).float()
    whole = guided.guided_filter(rgb, mask, band_width, ed.EPS, max(1, band_width // 4), "native")
    monkeypatch.setattr(guided, "STRIP_PIXELS", 16 * h)
    assert guided.strip_width(h, w) == 16
    ours = ed.guided_alpha(rgb, mask, band_width, "native")
    for i in range(2):
        assert torch.equal(ours[i], one_pass_guided_alpha(rgb[i], mask[i], band_width))
    assert torch.equal(guided.guided_filter(rgb, mask, band_width, ed.EPS, max(1, band_width // 4), "native"), whole)


def test_outputs_are_views_of_one_cutout(scene):
    """The mask and the foreground are the cut-out's channels (as core's ImageToMask): one image in memory."""
    rgb, mask = scene
    cutout, alpha, fg = ed.refine_edges(rgb, mask, ed.RefineOptions(decontaminate=True))
    assert alpha.data_ptr() == cutout[..., 3].data_ptr() and fg.data_ptr() == cutout.data_ptr()
    assert alpha.stride() == cutout[..., 3].stride() and fg.shape == (3, 96, 128, 3)
    assert torch.equal(alpha, ed.guided_alpha(rgb, mask, 32))
