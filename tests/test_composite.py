"""Composite on Background: Pillow's alpha_composite, the "over" formula, linear light, fits, the blurred
original, batching, chunking and errors."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import PACK
from PIL import Image
from scipy.ndimage import gaussian_filter

comp = importlib.import_module(PACK.__name__ + ".utils.composite")
to_uint8 = PACK.utils.bridges.to_uint8
SettingError, InputError = PACK.utils.checks.SettingError, PACK.utils.checks.InputError
Options = comp.CompositeOptions


def rgba8(seed: int, h: int = 37, w: int = 53) -> np.ndarray:
    """Random 8-bit RGBA with every alpha level, fully transparent and opaque runs included."""
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    a[:5, :, 3], a[5:10, :, 3] = 0, 255
    return a


def as_image(a: np.ndarray, device="cpu") -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255)[None].to(device)


def reference_over(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray, bg_alpha: np.ndarray,
                   linear: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Porter-Duff over with straight alpha in float64; ``linear``: exact sRGB decode, blend, encode."""
    def decode(x):
        return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)

    def encode(x):
        return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055)

    fg, alpha, bg, bg_alpha = (np.asarray(x, np.float64) for x in (fg, alpha, bg, bg_alpha))
    if linear:
        fg, bg = decode(fg), decode(bg)
    a_o = alpha + bg_alpha * (1 - alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        c_o = np.where(a_o > 0, (fg * alpha + bg * bg_alpha * (1 - alpha)) / a_o, 0.0)
    return (encode(c_o) if linear else c_o), a_o


@pytest.mark.parametrize("fit", comp.FITS)  # same size, same aspect: every fit must leave the image as it is
def test_rgba_over_rgba_matches_pillow(device, fit):
    fg8, bg8 = rgba8(0), rgba8(1)
    ref = np.asarray(Image.alpha_composite(Image.fromarray(bg8, "RGBA"), Image.fromarray(fg8, "RGBA")))
    out = comp.composite(as_image(fg8, device), Options(background="image", fit=fit),
                         background_image=as_image(bg8, device))
    assert out.shape == (1, 37, 53, 4) and out.device.type == device.type
    diff = to_uint8(out[0]).astype(int) - ref.astype(int)
    visible = ref[..., 3] > 0  # where both alphas are 0 Pillow copies the background's hidden colour; we give 0
    assert np.abs(diff[visible]).max() <= 1 and np.abs(diff[..., 3]).max() <= 1  # Pillow's integer arithmetic
    assert (~visible).any() and to_uint8(out[0])[~visible].max() == 0


@pytest.mark.parametrize("color", ["#3366CC80", "#3366ccff", "e0a01007"])
def test_color_matches_pillow_onto_a_solid_colour(color):
    fg8 = rgba8(2)
    rgba = tuple(int(color.lstrip("#")[i:i + 2], 16) for i in range(0, 8, 2))
    ref = np.asarray(Image.alpha_composite(Image.new("RGBA", (53, 37), rgba), Image.fromarray(fg8, "RGBA")))
    out = comp.composite(as_image(fg8), Options(color=color))
    opaque = rgba[3] == 255
    assert out.shape[-1] == (3 if opaque else 4)
    diff = to_uint8(out[0]).astype(int) - ref[..., :out.shape[-1]].astype(int)
    assert np.abs(diff).max() <= 1


@pytest.mark.parametrize("linear", [False, True])
def test_equals_the_over_formula_in_float64(device, linear):
    g = torch.Generator().manual_seed(3)
    fg, bg = torch.rand(2, 24, 31, 4, generator=g), torch.rand(2, 24, 31, 4, generator=g)  # fg's alpha: replaced
    mask = torch.rand(2, 24, 31, generator=g)
    mask[:, :4], bg[:, :4, :, 3] = 0, 0  # a_o = 0: colour 0 by definition
    mask[:, 4:8] = 1
    options = Options(background="image", fit="stretch", linear_light=linear)
    out = comp.composite(fg.to(device), options, mask.to(device), bg.to(device)).cpu().double().numpy()
    c_o, a_o = reference_over(fg[..., :3].numpy(), mask[..., None].numpy(), bg[..., :3].numpy(), bg[..., 3:].numpy(),
                              linear)
    assert np.abs(out[..., :3] - c_o).max() <= 1e-5 and np.abs(out[..., 3:] - a_o).max() <= 1e-5
    assert (out[:, :4] == 0).all()


def test_linear_light_changes_a_soft_edge():
    fg = torch.ones(1, 8, 8, 3)  # white at 50 % over opaque black
    mask = torch.full((1, 8, 8), 0.5)
    plain = comp.composite(fg, Options(color="#000000"), mask)
    linear = comp.composite(fg, Options(color="#000000", linear_light=True), mask)
    expected = reference_over(np.ones(3), 0.5, np.zeros(3), 1.0, linear=True)[0]  # encode(0.5) = 0.735
    assert torch.allclose(plain, torch.full_like(plain, 0.5), atol=1e-6)
    assert torch.allclose(linear, torch.from_numpy(expected).float().expand_as(linear), atol=1e-5)
    assert (linear - plain).min() > 0.2
    opaque = comp.composite(fg, Options(color="#000000", linear_light=True), torch.ones(1, 8, 8))
    assert torch.allclose(opaque, fg, atol=1e-6)  # decode then encode: the round trip of the curve


def halves(h: int = 20, w: int = 40) -> torch.Tensor:
    """A background, left half red and right half blue, ``[1, h, w, 3]``."""
    bg = torch.zeros(1, h, w, 3)
    bg[:, :, :w // 2, 0], bg[:, :, w // 2:, 2] = 1, 1
    return bg


def background_only(h: int, w: int, options: Options, background_image: torch.Tensor) -> torch.Tensor:
    """The fitted background itself: a foreground transparent everywhere."""
    return comp.composite(torch.rand(1, h, w, 3), options, torch.zeros(1, h, w), background_image)


def test_cover_scales_to_cover_and_crops_the_centre():
    red, blue = torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0])
    out = background_only(16, 16, Options(background="image", fit="cover"), halves())[0]  # 40x20 -> 32x16, crop
    assert out.shape == (16, 16, 3)
    assert torch.allclose(out[:, :6], red.expand(16, 6, 3), atol=1e-6)
    assert torch.allclose(out[:, 10:], blue.expand(16, 6, 3), atol=1e-6)
    assert torch.allclose(out, out.flip(1)[..., [2, 1, 0]], atol=1e-6)  # centred: the boundary in the middle
    tall = background_only(16, 16, Options(background="image", fit="cover"), halves().transpose(1, 2))[0]
    assert torch.allclose(tall, out.transpose(0, 1), atol=1e-6)


def test_contain_centres_the_image_on_the_letterbox_colour():
    options = Options(background="image", fit="contain", color="#00ff00")
    out = background_only(24, 16, options, halves())[0]  # 40x20 fits as 16x8, rows 8..15
    green = torch.tensor([0, 1.0, 0]).expand(8, 16, 3)
    assert out.shape == (24, 16, 3)
    assert torch.equal(out[:8], green) and torch.equal(out[16:], green)
    assert torch.allclose(out[8:16], F.interpolate(halves().permute(0, 3, 1, 2), size=(8, 16), mode="bilinear",
                                                   antialias=True, align_corners=False)[0].permute(1, 2, 0))
    translucent = background_only(24, 16, Options(background="image", fit="contain", color="#00ff0080"), halves())
    assert translucent.shape[-1] == 4
    assert torch.allclose(translucent[0, :8, :, 3], torch.full((8, 16), 128 / 255))
    assert torch.equal(translucent[0, 8:16, :, 3], torch.ones(8, 16)) and torch.equal(translucent[0, 8:16, :, :3],
                                                                                      out[8:16])


def test_stretch_is_bilinear_antialiased_interpolate(device):
    bg = torch.rand(2, 50, 23, 3)
    out = background_only(31, 64, Options(background="image", fit="stretch"), bg.to(device))
    ref = F.interpolate(bg.permute(0, 3, 1, 2), size=(31, 64), mode="bilinear", antialias=True, align_corners=False)
    assert out.shape == (2, 31, 64, 3)
    assert torch.allclose(out.cpu(), ref.permute(0, 2, 3, 1).clamp(0, 1), atol=1e-5)


def test_rgba_background_resizes_premultiplied():
    bg = torch.zeros(1, 4, 4, 4)
    bg[:, :, :2] = torch.tensor([1.0, 0, 0, 1])  # left: opaque red; right: transparent with a green colour
    bg[:, :, 2:] = torch.tensor([0, 1.0, 0, 0])
    out = background_only(2, 2, Options(background="image", fit="stretch"), bg)[0]
    assert (out[..., 3] > 0).all() and (out[..., 3] < 1).all() and (out[:, 0, 3] > out[:, 1, 3]).all()
    assert torch.allclose(out[..., :3], torch.tensor([1.0, 0, 0]).expand(2, 2, 3), atol=1e-6)  # no green fringe


@pytest.fixture(scope="module")
def scene(photos):
    """Three photos ``[3, 120, 160, 3]`` with masks holding a transparent band (rows < 40) and soft values."""
    rgb = photos[:3, 100:220, 150:310].contiguous()
    mask = torch.rand(3, 120, 160, generator=torch.Generator().manual_seed(5))
    mask[:, :40] = 0
    return rgb, mask


@pytest.mark.parametrize("sigma", [3.0, 20.0])
def test_blurred_original_is_scipys_gaussian_on_both_backends(scene, sigma):
    rgb, mask = scene
    options = Options(background="blurred original", blur=sigma)
    outs = {b: comp.composite(rgb, options, mask, backend=b) for b in ("native", "torch")}
    assert (outs["native"] - outs["torch"]).abs().max() <= 2 / 255
    hidden = comp.composite(rgb, options, torch.zeros_like(mask), backend="native")
    for i in range(3):
        ref = np.stack([gaussian_filter(rgb[i, ..., c].double().numpy(), sigma, mode="reflect") for c in range(3)], -1)
        err = np.abs(hidden[i].double().numpy() - ref)
        # sigma 20 is blurred on a copy scaled down 5 times: within a level of the exact blur
        assert err.max() <= (1e-5 if sigma < comp.DOWNSCALE_ABOVE else 1 / 255)


def test_no_blur_shows_the_photo_where_alpha_is_zero(scene, backend):
    rgb, mask = scene
    out = comp.composite(rgb, Options(background="blurred original", blur=0), mask, backend=backend)
    assert out.shape == rgb.shape and torch.equal(out[:, :40], rgb[:, :40])
    assert not torch.equal(comp.composite(rgb, Options(background="blurred original", blur=2), mask)[:, :40],
                           rgb[:, :40])


@pytest.mark.parametrize("mode", comp.MODES)
def test_batch_equals_loop_and_inputs_are_untouched(scene, device, dtype, mode):
    rgb, mask = scene
    fg = torch.cat([rgb, mask[..., None]], -1).to(device, dtype)  # RGBA, its alpha replaced by the mask
    masks = mask.flip(2).to(device, dtype)
    bgs = [torch.rand(n, 41, 97, 4, generator=torch.Generator().manual_seed(n)).to(device, dtype) for n in (1, 3)]
    before = [t.clone() for t in (fg, masks, *bgs)]
    options = Options(background=mode, color="#10203040", blur=6.0)
    for bg in bgs:
        out = comp.composite(fg, options, masks, bg)
        channels = 3 if mode == "blurred original" else 4  # the others: a translucent colour or RGBA image
        assert out.shape == (3, 120, 160, channels) and out.dtype == dtype and out.device == fg.device
        for i in range(3):
            one = comp.composite(fg[i:i + 1], options, masks[i:i + 1], bg[i % bg.shape[0]:][:1])
            assert torch.allclose(out[i:i + 1], one, atol=1e-6)
    assert all(torch.equal(t, b) for t, b in zip((fg, masks, *bgs), before, strict=True))


def test_one_foreground_pairs_with_every_mask(scene):
    rgb, mask = scene
    out = comp.composite(rgb[:1], Options(background="transparent"), mask)
    assert out.shape == (3, 120, 160, 4)
    for i in range(3):
        assert torch.equal(out[i], comp.composite(rgb[:1], Options(background="transparent"), mask[i:i + 1])[0])
        assert torch.allclose(out[i, ..., 3], mask[i])
    assert out[:, :40, :, :3].max() == 0  # transparent pixels carry colour 0


@pytest.mark.parametrize("options, bg_channels, channels", [
    (Options(), 3, 3), (Options(color="#FFFFFF80"), 3, 4), (Options(background="transparent"), 3, 4),
    (Options(background="blurred original", color="#00000000"), 3, 3),
    (Options(background="image"), 3, 3), (Options(background="image"), 4, 4),
    (Options(background="image", fit="contain", color="#ffffff00"), 3, 4),
    (Options(background="image", fit="stretch", color="#ffffff00"), 3, 3),
])
def test_rgb_exactly_when_the_background_is_opaque(options, bg_channels, channels):
    out = comp.composite(torch.rand(2, 9, 12, 4), options, background_image=torch.rand(1, 5, 20, bg_channels))
    assert out.shape == (2, 9, 12, channels)
    if channels == 4 and options.background == "image":
        assert out[..., 3].min() < 1


def test_float64_and_tiny_images():
    out = comp.composite(torch.rand(2, 9, 12, 4, dtype=torch.float64), Options())
    assert out.dtype == torch.float64
    for h, w in ((1, 1), (1, 7), (3, 2)):
        for b in ("native", "torch"):
            got = comp.composite(torch.rand(2, h, w, 4), Options(background="blurred original", blur=30), backend=b)
            assert got.shape == (2, h, w, 3) and torch.isfinite(got).all()


@pytest.mark.parametrize("mode", comp.MODES)
def test_chunks_give_the_one_chunk_result(scene, monkeypatch, mode):
    rgb, mask = scene
    bg = torch.rand(3, 50, 70, 3)
    options = Options(background=mode, blur=12.0)
    whole = comp.composite(rgb, options, mask, bg)
    chunks = []
    monkeypatch.setattr(PACK.utils.runtime, "raise_if_cancelled", lambda: chunks.append(1))
    monkeypatch.setattr(PACK.utils.runtime, "PIXELS_PER_CHUNK", 2 * 120 * 160)  # two images a chunk
    split = comp.composite(rgb, options, mask, bg)
    assert len(chunks) == 2 and torch.equal(split, whole)


@pytest.mark.parametrize("text, rgba", [("#FFFFFF", (1, 1, 1, 1)), ("00000080", (0, 0, 0, 128 / 255)),
                                        (" #ff8000 ", (1, 128 / 255, 0, 1)), ("#0000FFff", (0, 0, 1, 1))])
def test_parse_color_accepts_the_hex_forms(text, rgba):
    assert comp.parse_color(text) == pytest.approx(rgba)


@pytest.mark.parametrize("text", ["#12345", "red", "#GG0000", "#1234567", "", None, 0xFFFFFF])
def test_bad_colours_name_the_setting_and_the_forms(text):
    with pytest.raises(SettingError, match="color:") as err:
        comp.composite(torch.rand(1, 4, 4, 4), Options(color=text))
    assert "'#FFFFFF'" in str(err.value) and "'#00000080'" in str(err.value)


@pytest.mark.parametrize("field, value", [("background", "blur"), ("fit", "fill"), ("blur", -1.0),
                                          ("blur", 300.0), ("linear_light", "yes")])
def test_bad_settings_name_the_setting(field, value):
    with pytest.raises(SettingError, match=f"{field}:"):
        comp.composite(torch.rand(1, 4, 4, 4), Options(**{field: value}))


@pytest.mark.parametrize("fg, mask, bg, mode, name, words", [
    (torch.rand(1, 8, 8, 3), None, None, "color", "mask", "RGBA image"),
    (torch.rand(1, 8, 8, 4), None, None, "image", "background_image", "connect one"),
    (torch.rand(1, 8, 8, 4), torch.rand(1, 8, 9), None, "color", "mask", "does not match"),
    (torch.rand(2, 8, 8, 4), torch.rand(3, 8, 8), None, "color", "mask", "2 images but mask has 3"),
    (torch.rand(1, 8, 8, 4), torch.rand(2, 8, 8), torch.rand(3, 5, 5, 3), "image", "background_image",
     "mask has 2 images but background_image has 3"),
    (torch.rand(1, 8, 8, 4), None, torch.rand(1, 5, 5, 2), "image", "background_image", "channels"),
    (torch.rand(8, 8, 4), None, None, "color", "foreground", "IMAGE batch"),
])
def test_bad_inputs_are_clear_errors(fg, mask, bg, mode, name, words):
    with pytest.raises(InputError, match=f"{name}:") as err:
        comp.composite(fg, Options(background=mode), mask, bg)
    assert err.value.name == name and words in str(err.value)


def test_background_image_is_ignored_by_other_modes():
    fg = torch.rand(2, 8, 8, 4)
    assert torch.equal(comp.composite(fg, Options(), background_image=torch.rand(3, 5, 5, 2)), comp.composite(fg))


@pytest.mark.gpu
def test_cuda_matches_cpu(scene):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    rgb, mask = scene
    for options in (Options(background="blurred original", blur=20.0), Options(background="image", fit="cover")):
        bg = torch.rand(1, 77, 50, 4)
        on_gpu = comp.composite(rgb.cuda(), options, mask.cuda(), bg.cuda())
        assert on_gpu.device.type == "cuda"
        assert (on_gpu.cpu() - comp.composite(rgb, options, mask, bg)).abs().max() <= 2 / 255


def test_node_equals_utils_and_checks_its_widgets(pack):
    node = pack.NODE_CLASS_MAPPINGS["CleanCutComposite"]()
    g = torch.Generator().manual_seed(5)
    fg, bg = torch.rand(2, 12, 16, 3, generator=g), torch.rand(1, 20, 10, 3, generator=g)
    mask = torch.rand(2, 12, 16, generator=g)
    opts = comp.CompositeOptions(background="image", fit="contain", color="#10203080", linear_light=True)
    got = node.run(fg, **vars(opts), mask=mask, background_image=bg)[0]
    assert torch.equal(got, comp.composite(fg, opts, mask, bg)) and got.shape == (2, 12, 16, 4)
    with pytest.raises(ValueError, match="blur:"):
        node.run(fg, background="blurred original", blur=-1.0, mask=mask)


def cover_whole_then_crop(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The cover fit before issue #22, for reference: the WHOLE background resized (antialiased bilinear,
    RGBA premultiplied), then its centre cropped."""
    (height, width), (h, w) = size, image.shape[1:3]
    scale = max(height / h, width / w)
    scaled = (max(height, round(h * scale)), max(width, round(w * scale)))
    top, left = (scaled[0] - height) // 2, (scaled[1] - width) // 2
    if scaled == (h, w):  # resize returned its input: the colours under alpha 0 stay as they are
        return image[:, top:top + height, left:left + width]
    x = image if image.shape[-1] == 3 else torch.cat((image[..., :3] * image[..., 3:], image[..., 3:]), -1)
    out = F.interpolate(x.permute(0, 3, 1, 2), size=scaled, mode="bilinear", antialias=True, align_corners=False)
    out = out.permute(0, 2, 3, 1).clamp(0, 1)
    if image.shape[-1] == 4:
        out = torch.cat((out[..., :3] / out[..., 3:].clamp_min(torch.finfo(torch.float32).tiny), out[..., 3:]), -1)
    return out[:, top:top + height, left:left + width].clamp(0, 1)


@pytest.mark.parametrize("bg_size, size", [
    ((300, 451), (200, 200)), ((37, 53), (100, 60)), ((480, 640), (1024, 512)), ((1000, 300), (90, 400)),
    ((50, 80), (50, 200)), ((2000, 1500), (333, 777)), ((7, 900), (512, 64)), ((123, 457), (123, 300)),
    ((64, 64), (64, 64)),
])
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("window_above", [comp.WINDOW_ABOVE, 0.0])  # as shipped; the kept window always
def test_cover_resamples_only_the_kept_part_as_the_whole_resize_did(monkeypatch, bg_size, size, channels,
                                                                   window_above):
    """Shrinking, enlarging, one axis unscaled, wide onto tall and tall onto wide, RGBA with transparent parts."""
    monkeypatch.setattr(comp, "WINDOW_ABOVE", window_above)
    bg = torch.rand(2, *bg_size, channels, generator=torch.Generator().manual_seed(sum(bg_size)))
    if channels == 4:
        bg[..., 3] = (bg[..., 3] * 1.5 - 0.3).clamp(0, 1)  # fully transparent and opaque pixels too
    ours = comp.fit_background(bg, size, "cover", (1.0, 1.0, 1.0, 1.0))
    ref = cover_whole_then_crop(bg, size)
    assert ours.shape == ref.shape == (2, *size, channels)
    # measured 0 on the CPU (the taps are interpolate's own float32 steps); 1e-6 allows another summation order
    assert (ours - ref).abs().max() <= 1e-6


def _peak_rss_growth(fn) -> int:
    """Bytes the process's resident memory grew by, at most, while ``fn()`` ran (sampled every 2 ms, as
    benchmarks/common.py's PeakMemory does: torch's CPU allocations are invisible to tracemalloc)."""
    import threading
    import time

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    base, peak, stop = rss(), [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss() - base)
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        stop.set()
        thread.join()
    return max(peak[0], rss() - base)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc to read the memory use")
@pytest.mark.parametrize("fg_size, bg_size, limit_mb", [
    ((2, 2000), (3000, 1), 100),  # the whole cover resize: 6,000,000 x 2000 px, 144 GB; measured +10 MB
    ((4096, 512), (300, 4000), 400),  # the whole cover resize: 4096 x 54613 px, 3.0 GB peak RSS; measured +67 MB
])
def test_cover_memory_follows_the_output_not_the_scaled_background(fg_size, bg_size, limit_mb):
    fg, bg = torch.rand(1, *fg_size, 4), torch.rand(1, *bg_size, 3)
    out = []
    grown = _peak_rss_growth(lambda: out.append(comp.composite(fg, Options(background="image", fit="cover"),
                                                               background_image=bg)))
    assert out[0].shape == (1, *fg_size, 3) and torch.isfinite(out[0]).all()
    assert grown < limit_mb * 1e6, f"memory grew by {grown / 1e6:.0f} MB for a {out[0].numel() * 4e-6:.0f} MB output"
