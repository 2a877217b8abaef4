"""Remove Background (rembg): parity with rembg.remove, batching, progress, sessions."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import PACK
from rembg_cases import DEFAULTS, models, rb, run, sessions

WHITE, BLACK = (255, 255, 255, 255), (0, 0, 0, 255)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return ((a > 0.5) & (b > 0.5)).sum() / max(1, ((a > 0.5) | (b > 0.5)).sum())


_REFS: dict = {}


def rembg_reference(images: torch.Tensor, **options) -> list[np.ndarray]:
    """``rembg.remove`` per image (uint8 arrays, as rembg receives them), float 0..1; cached per call."""
    import rembg

    key = (hashlib.sha1(images.numpy().tobytes()).hexdigest(), tuple(images.shape), json.dumps(options, sort_keys=True))
    if key not in _REFS:
        session = rembg.new_session("u2netp", providers=["CPUExecutionProvider"])
        arrays = PACK.utils.bridges.tensor2np(images)
        _REFS[key] = [rembg.remove(a, session=session, **options).astype(np.float64) / 255.0 for a in arrays]
    return _REFS[key]


@pytest.fixture(scope="module")
def matting_photos(photos):
    """Smaller crops for alpha matting (the solve dominates): 256 x 320."""
    return photos[:, :256, :320].contiguous()


# ---- parity with rembg.remove (the real u2netp model) ----

@pytest.mark.model
@pytest.mark.parametrize("post", [False, True])
def test_cutout_matches_rembg(u2netp, photos, post):
    cutout, mask, extracted = run(photos, post_process_mask=post)
    refs = rembg_reference(photos, post_process_mask=post)
    assert cutout.shape == (*photos.shape[:3], 4) and mask.shape == photos.shape[:3]
    for i, ref in enumerate(refs):
        ours = cutout[i].double().numpy()
        alpha = ours[..., 3]
        assert np.abs(alpha - ref[..., 3]).mean() <= 1 / 255 and iou(alpha, ref[..., 3]) >= 0.995
        assert np.array_equal(mask[i].numpy(), cutout[i, ..., 3].numpy())
        # edges="rembg": rembg's naive cut-out, colour x mask, rounded to 8 bits there
        assert np.abs(ours[..., :3] - ref[..., :3]).max() <= 1 / 255 + 1e-6
        assert np.abs(ours - ref).mean() <= 0.5 / 255
    if post:
        assert set(np.unique(mask.numpy())) <= {0.0, 1.0}


@pytest.mark.model
def test_straight_edges_keep_the_photos_colours(u2netp, photos):
    cutout, mask, _ = run(photos, edges="straight")
    rembg_like, rembg_mask, _ = run(photos)
    assert torch.equal(mask, rembg_mask) and torch.equal(cutout[..., 3], mask)
    assert torch.equal(cutout[..., :3], photos)
    # the same pixels once premultiplied: only the storage of soft edges differs
    assert (cutout[..., :3] * mask.unsqueeze(-1) - rembg_like[..., :3]).abs().max() <= 1e-6
    soft = (mask > 0.02) & (mask < 0.98)
    assert soft.any() and (cutout[..., :3] - rembg_like[..., :3]).abs()[soft].mean() > 2 / 255


@pytest.mark.model
def test_masks_are_rembgs_bit_for_bit(u2netp, photos):
    _, mask, extracted = run(photos)
    for i, ref in enumerate(rembg_reference(photos)):
        assert np.array_equal(np.rint(mask[i].numpy() * 255), np.rint(ref[..., 3] * 255))
    for i, ref in enumerate(rembg_reference(photos, post_process_mask=True)):
        assert np.array_equal(extracted[i, ..., 3].numpy(), ref[..., 3].astype(np.float32))  # binary: exact


@pytest.mark.model
def test_only_mask_matches_rembg(u2netp, photos):
    image, mask, _ = run(photos, only_mask=True, alpha_matting=True)  # rembg ignores matting here too
    assert image.shape == (*photos.shape[:3], 3)
    for i, ref in enumerate(rembg_reference(photos, only_mask=True)):
        assert np.abs(image[i, ..., 0].double().numpy() - ref).mean() <= 1 / 255
        assert iou(image[i, ..., 0].numpy(), ref) >= 0.995
        assert torch.equal(image[i, ..., 0], image[i, ..., 2]) and torch.equal(image[i, ..., 0], mask[i])


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("background, bgcolor", [("white", WHITE), ("black", BLACK)])
def test_background_colour_matches_rembg(u2netp, photos, background, bgcolor):
    image, mask, _ = run(photos, background=background)
    straight, straight_mask, _ = run(photos, background=background, edges="straight")
    assert image.shape == straight.shape == (*photos.shape[:3], 3) and torch.equal(mask, straight_mask)
    colour = bgcolor[0] / 255
    for i, ref in enumerate(rembg_reference(photos, bgcolor=bgcolor)):
        assert (ref[..., 3] == 1).all()
        ours = image[i].double().numpy()
        # edges="rembg" (default): rembg's pixels, the colour x mask cut-out composited with the mask again
        assert np.abs(ours - ref[..., :3]).mean() <= 1 / 255 and np.abs(ours - ref[..., :3]).max() <= 2 / 255
        # edges="straight": photo x mask + colour x (1 - mask), composited once
        a = mask[i].double().numpy()[..., None]
        expected = photos[i].double().numpy() * a + colour * (1 - a)
        assert np.abs(straight[i].double().numpy() - expected).max() < 1e-5
        # the two agree where the mask is 0 or 1 and differ by colour x a x (1 - a) <= 1/4 on soft edges
        hard = (a[..., 0] < 0.5 / 255) | (a[..., 0] > 254.5 / 255)
        gap = np.abs(straight[i].double().numpy() - ours)
        assert gap[hard].max() <= 1e-6 and gap.max() <= 0.25 + 1e-6


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("fg, bg, erode", [(240, 10, 10), (200, 40, 3)])
def test_alpha_matting_matches_rembg(u2netp, matting_photos, fg, bg, erode):
    settings = dict(alpha_matting_foreground_threshold=fg, alpha_matting_background_threshold=bg,
                    alpha_matting_erode_size=erode)
    cutout, mask, _ = run(matting_photos, alpha_matting=True, **settings)
    for i, ref in enumerate(rembg_reference(matting_photos, alpha_matting=True, **settings)):
        alpha = mask[i].double().numpy()
        assert np.abs(alpha - ref[..., 3]).mean() <= 3 / 255 and iou(alpha, ref[..., 3]) >= 0.99
        assert np.abs(alpha - ref[..., 3]).max() <= 2 / 255  # rembg truncates to 8 bits; solver tolerance
        colour = cutout[i, ..., :3].double().numpy()
        assert np.abs(colour - ref[..., :3])[alpha > 0.5].mean() <= 3 / 255  # estimated foreground colour
        visible = np.abs(colour * alpha[..., None] - ref[..., :3] * ref[..., 3:])  # what a composite shows
        assert visible.mean() <= 1 / 255


@pytest.mark.slow
@pytest.mark.model
def test_alpha_matting_of_the_post_processed_mask_matches_rembg(u2netp, matting_photos):
    _, mask, _ = run(matting_photos, alpha_matting=True, post_process_mask=True)
    _, plain, _ = run(matting_photos, alpha_matting=True)
    assert not torch.equal(mask, plain)  # the trimap comes from the post-processed mask, as in rembg
    for i, ref in enumerate(rembg_reference(matting_photos, alpha_matting=True, post_process_mask=True)):
        alpha = mask[i].double().numpy()
        assert np.abs(alpha - ref[..., 3]).mean() <= 3 / 255 and iou(alpha, ref[..., 3]) >= 0.99


@pytest.mark.slow
@pytest.mark.model
def test_matting_settings_change_the_result(u2netp, matting_photos):
    """The unraphael app's sliders did nothing (wrong keyword names): here each one changes the matte, as in rembg."""
    x = matting_photos[:2]
    base = run(x, alpha_matting=True)[1]
    for name, value in [("alpha_matting_foreground_threshold", 180), ("alpha_matting_background_threshold", 60),
                        ("alpha_matting_erode_size", 25)]:
        changed = run(x, alpha_matting=True, **{name: value})[1]
        assert ((changed - base).abs() > 2 / 255).float().mean() > 1e-3, f"{name} has no effect"
        ref = rembg_reference(x[:1], alpha_matting=True, **{name: value})[0][..., 3]
        assert np.abs(changed[0].double().numpy() - ref).mean() <= 3 / 255 and iou(changed[0].numpy(), ref) >= 0.99
    assert not torch.equal(base, run(x)[1])  # matting itself changes the edge


@pytest.mark.model
def test_batch_equals_one_by_one_in_order_and_input_untouched(u2netp, photos):
    x = photos.flip(0).contiguous()
    before = x.clone()
    cutout, mask, extracted = run(x, post_process_mask=False)
    assert torch.equal(x, before)
    assert cutout.dtype == x.dtype and cutout.device == x.device and cutout.shape[0] == x.shape[0]
    for i in range(x.shape[0]):
        alone = run(x[i:i + 1])
        assert torch.equal(alone[0][0], cutout[i]) and torch.equal(alone[1][0], mask[i])
        assert torch.equal(alone[2][0], extracted[i])


@pytest.mark.model
def test_extracted_takes_the_original_pixels(u2netp, photos):
    processed = (photos * 0.8).clamp(0, 1)
    _, _, extracted = run(processed, original=photos)
    _, _, ref = run(processed, post_process_mask=True)
    assert torch.equal(extracted[..., :3], photos)
    assert torch.equal(extracted[..., 3], ref[..., 3])  # the post-processed binary mask of `images`
    _, _, one = run(processed, original=photos[:1])  # one original pairs with every image
    assert torch.equal(one[..., :3], photos[:1].expand_as(photos))


@pytest.mark.model
def test_rgba_input_keeps_its_transparency(u2netp, photos):
    alpha_in = torch.zeros(photos.shape[:3])
    alpha_in[:, :, : photos.shape[2] // 2] = 1.0  # left half opaque
    rgba = torch.cat([photos, alpha_in.unsqueeze(-1)], dim=-1)
    cutout, mask, extracted = run(rgba)
    _, plain, plain_extracted = run(photos)
    assert torch.equal(mask, plain * alpha_in) and torch.equal(cutout[..., 3], mask)
    # extracted keeps the transparent half transparent too (it used to take the model's mask alone)
    assert extracted[..., 3][alpha_in == 0].max() == 0 and plain_extracted[..., 3][alpha_in == 0].max() == 1
    assert torch.equal(extracted[..., 3], plain_extracted[..., 3] * alpha_in)
    # only_mask: MASK keeps its meaning (1 = subject kept), so the transparent half is 0 there as well
    grey, only, _ = run(rgba, only_mask=True)
    assert torch.equal(only, mask) and torch.equal(grey[..., 0], only)


@pytest.mark.model
def test_inputs_that_require_grad_are_processed_like_plain_ones(u2netp, photos):
    rb.resample._weights_on.cache_clear()
    with torch.inference_mode():  # as in ComfyUI: the resize weights get cached as inference tensors
        run(photos[:1])
    outputs = run(photos.clone().requires_grad_(True))  # a direct call outside ComfyUI
    assert all(torch.equal(a, b) for a, b in zip(outputs, run(photos), strict=True))


@pytest.mark.model
def test_alpha_matting_of_a_one_pixel_image(u2netp):
    image, mask, _ = run(torch.full((1, 1, 1, 3), 0.5), alpha_matting=True)
    assert image.shape == (1, 1, 1, 4) and mask.shape == (1, 1, 1) and bool(torch.isfinite(image).all())


@pytest.mark.model
def test_progress_and_cancel_per_image(u2netp, photos, monkeypatch):
    updates, checks = [], []

    class Recording(PACK.utils.runtime.Progress):
        def update(self, n=1):
            super().update(n)
            updates.append(self.done)

    def cancel_on_third():
        checks.append(1)
        if len(checks) == 3:
            raise InterruptedError("cancelled")
    monkeypatch.setattr(PACK.utils.runtime, "Progress", Recording)
    run(photos)
    assert updates[-1] == photos.shape[0] and updates == sorted(updates) and len(updates) == photos.shape[0]
    monkeypatch.setattr(PACK.utils.runtime, "raise_if_cancelled", cancel_on_third)
    updates.clear()
    with pytest.raises(InterruptedError):
        run(torch.cat([photos, photos]))  # 8 images: checked before each image's result
    assert len(checks) == 3 and updates[-1] < 8  # stopped early; queued runs were dropped


@pytest.mark.model
@pytest.mark.gpu
def test_cuda_matches_cpu(u2netp, photos, monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    on_gpu = run(photos.cuda(), post_process_mask=True)
    monkeypatch.setattr(PACK.utils.runtime, "compute_device", lambda: torch.device("cpu"))
    on_cpu = run(photos, post_process_mask=True)
    for g, c in zip(on_gpu, on_cpu, strict=True):
        assert g.device.type == "cuda" and (g.cpu() - c).abs().mean() <= 1 / 255


@pytest.mark.model
def test_node_equals_utils(u2netp, photos):
    out = run(photos, background="black", post_process_mask=True)
    ref = rb.remove_background(photos, rb.RembgOptions(background="black", post_process_mask=True))
    assert all(torch.equal(a, b) for a, b in zip(out, ref, strict=True))


@pytest.mark.model
def test_prompts_saved_before_edges_existed_still_run(u2netp, photos):
    from executor import run_prompt, tensor_source

    def prompt(**extra):
        return {"1": {"class_type": "TestSource", "inputs": {"key": "photos"}},
                "2": {"class_type": "CleanCutRembg", "inputs": {"images": ["1", 0], **DEFAULTS, "background": "white",
                                                                **extra}}}

    classes = {**PACK.NODE_CLASS_MAPPINGS, "TestSource": tensor_source({"photos": photos[:2]})}
    old = run_prompt(prompt(), classes).outputs["2"]  # no 'edges': an optional input, so its default applies
    explicit = run_prompt(prompt(edges="rembg"), classes).outputs["2"]
    straight = run_prompt(prompt(edges="straight"), classes).outputs["2"]
    assert all(torch.equal(a, b) for a, b in zip(old, explicit, strict=True))
    assert not torch.equal(old[0], straight[0]) and torch.equal(old[1], straight[1])


@pytest.mark.slow
@pytest.mark.model
def test_sessions_are_created_once_per_model_and_providers(u2netp, photos, monkeypatch):
    ort = sessions.onnxruntime()
    made = []
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: made.append(a) or real(*a, **k))
    sessions.get_session.cache_clear()
    run(photos[:2])
    run(photos[:2], only_mask=True)
    run(photos[:2], background="white")
    run(photos[:1])  # another batch size used to plan another thread count, hence a second session
    run(photos[:4])
    assert len(made) == 1
    model = models.resolve("u2netp")
    first = sessions.get_session(model, ("CPUExecutionProvider",), 1)
    assert sessions.get_session(model, ("CPUExecutionProvider",), 1) is first
    sessions.get_session.cache_clear()  # frees them
    assert sessions.get_session(model, ("CPUExecutionProvider",), 1) is not first
