"""Composite on Background: lay a cut-out over a colour, an image, its own blurred photo, or nothing.

One Porter-Duff "over" with straight alpha, per pixel (``a`` and ``c_f`` the foreground's alpha and colour,
``a_b`` and ``c_b`` the background's)::

    a_o = a + a_b (1 - a)
    c_o = (c_f a + c_b a_b (1 - a)) / a_o    where a_o > 0, else 0

That is Pillow's ``Image.alpha_composite`` in float, except that a fully transparent result has colour 0
(Pillow keeps the background's hidden colour there). With ``linear_light`` the colours are sRGB-decoded
before the blend and the result encoded after (alpha is never transformed), so a soft edge mixes light as
a camera would instead of darkening between two bright colours.

The backgrounds (``background``):

* ``color``: one ``#RRGGBB`` or ``#RRGGBBAA`` colour.
* ``image``: ``background_image`` fitted to each foreground's size (``fit``): ``cover`` scales it to cover
  and crops the centre (only the centre is resampled when the scaled image would be much larger than the
  output: memory follows the output), ``contain`` scales it to fit inside and centres it on ``color``,
  ``stretch`` resizes to exactly the size. Antialiased bilinear; an RGBA background is resized
  premultiplied, so the colours of its transparent pixels do not bleed into the visible ones.
* ``blurred original``: the foreground's own RGB (in sRGB, whatever ``linear_light``) blurred by a
  Gaussian of sigma ``blur`` px, with scipy's kernel (cut at 4 sigma, mirrored border): OpenCV on the CPU
  (``native``), :func:`.kernels.gaussian_blur` on the ``torch`` backend. Above sigma ``DOWNSCALE_ABOVE``
  both blur a copy scaled down ``s = sigma // 4`` times (antialiased bilinear) with sigma
  ``sqrt(sigma² - s²/3) / s`` (the two resamplings' triangles add ``s²/6`` of variance each), then scale
  it back up: a few dozen taps instead of hundreds, within 1/255 of the exact blur on photos up to sigma
  40, 2/255 at 100 (an area average, aliasing at ratios that are not whole, was off by 5/255). The
  resampling is the same torch code on both backends, so they differ only by the blur's rounding.
* ``transparent``: nothing; the result is the cut-out itself (colour 0 where alpha is 0).

The result is RGB when the background is opaque everywhere (an opaque colour, an RGB image fitted by
cover or stretch or on an opaque ``color``, the blurred original), else RGBA with straight alpha ``a_o``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import runtime
from .checks import (
    InputError,
    as_mask,
    check_choice,
    check_flag,
    check_image,
    check_number,
    check_same_batch,
    fail,
)
from .color import linear_to_srgb, srgb_to_linear
from .kernels import cv_gaussian_blur, gaussian_blur

MODES = ("color", "image", "blurred original", "transparent")
FITS = ("cover", "contain", "stretch")
MAX_BLUR = 256.0
DOWNSCALE_ABOVE = 8.0  # blur sigmas above this are applied on a copy scaled down by sigma // 4
# cover resamples only the kept window (same values) once the whole scaled background would exceed this many
# outputs; below, interpolate's fused kernel on the whole is faster (6x at 4000x3000 -> 1024x1024)
WINDOW_ABOVE = 4.0
_HEX = re.compile(r"#?([0-9a-f]{6}|[0-9a-f]{8})", re.IGNORECASE)
_TINY = torch.finfo(torch.float32).tiny  # a_o below it is 0: its numerator is exactly 0 there

Background = Callable[[Tensor, int], tuple[Tensor, Tensor]]  # (chunk rgb, start) -> (rgb, alpha), broadcastable


@dataclass(frozen=True)
class CompositeOptions:
    """Composite on Background's settings, named as the node's inputs; passed by keyword.

    Attributes:
        background: one of :data:`MODES`.
        color: ``"#RRGGBB"`` or ``"#RRGGBBAA"`` (the ``#`` optional, any case): the background of mode
            ``color``, and the letterbox of ``fit="contain"``.
        fit: one of :data:`FITS`: how ``background_image`` is fitted to the foreground's size.
        blur: ``blurred original``: Gaussian sigma in px, 0..256 (0 = the photo itself).
        linear_light: blend in linear light (sRGB decode, blend, encode).
    """

    background: str = "color"
    color: str = "#FFFFFF"
    fit: str = "cover"
    blur: float = 20.0
    linear_light: bool = False

    def check(self) -> None:
        check_choice(self.background, "background", MODES)
        parse_color(self.color, "color")
        check_choice(self.fit, "fit", FITS)
        check_number(self.blur, "blur", 0.0, MAX_BLUR)
        check_flag(self.linear_light, "linear_light")


def parse_color(text: str, name: str = "color") -> tuple[float, float, float, float]:
    """``"#RRGGBB"`` / ``"#RRGGBBAA"`` (``#`` optional, any case) -> RGBA in 0..1; else :class:`SettingError`."""
    match = _HEX.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        fail(name, f"{text!r} is not a hex colour; use '#RRGGBB' or '#RRGGBBAA', e.g. '#FFFFFF' (white) or "
             "'#00000080' (black at 50 % opacity).")
    digits = match.group(1)
    rgba = [int(digits[i:i + 2], 16) / 255 for i in range(0, len(digits), 2)]
    return (rgba[0], rgba[1], rgba[2], rgba[3] if len(rgba) == 4 else 1.0)


class _Taps(NamedTuple):
    """One axis of an antialiased bilinear resize, for a run of output pixels: output pixel ``i`` is
    ``sum_t weight[i, t] * source[lo + index[i, t]]``; ``lo .. hi - 1`` are the source pixels read."""

    index: Tensor  # [count, T] int64, from lo; a pixel's unused taps repeat a used index with weight 0
    weight: Tensor  # [count, T] float32
    lo: int
    hi: int


def _taps(in_size: int, out_size: int, start: int, count: int) -> _Taps:
    """The taps of output pixels ``start .. start + count - 1`` of a resize ``in_size -> out_size``, computed
    as ``F.interpolate(..., mode="bilinear", antialias=True)`` computes them on the CPU (PIL's triangle filter,
    widened by the scale when shrinking), with the same float32 and float64 steps, so that a window of the
    resize equals the same window of the whole resize (measured: bit-identical on the CPU)."""
    scale = torch.tensor(in_size, dtype=torch.float32) / out_size
    support = scale.clamp(min=1.0)  # the triangle's half-width in source pixels
    inv = (1.0 / support.double()).float()
    center = (scale.double() * (torch.arange(start, start + count, dtype=torch.float64) + 0.5)).float()
    lo = ((center - support).double() + 0.5).long().clamp_(min=0)  # .long() truncates, as C++'s cast
    hi = ((center + support).double() + 0.5).long().clamp_(max=in_size)
    index = lo[:, None] + torch.arange(int((hi - lo).max()))  # [count, T]
    x = (((index.float() - center[:, None]).double() + 0.5) * inv.double()).float()
    weight = (1 - x.abs()).clamp_(min=0).masked_fill_(index >= hi[:, None], 0)
    total = weight[:, 0].clone()
    for t in range(1, weight.shape[1]):  # summed in order, as the kernel does (a vectorised sum rounds apart)
        total += weight[:, t]
    weight /= total.clamp_(min=_TINY)[:, None]
    first, last = int(lo.min()), int(hi.max())
    return _Taps(torch.minimum(index, hi[:, None] - 1) - first, weight, first, last)


def _resample(x: Tensor, dim: int, taps: _Taps) -> Tensor:
    """``x`` (already cut to ``taps.lo .. taps.hi - 1`` along ``dim``) resampled along ``dim``: a new tensor."""
    shape = [1] * x.ndim
    shape[dim] = -1
    index, weight = taps.index.to(x.device), taps.weight.to(x.device, x.dtype)
    out = x.index_select(dim, index[:, 0]) * weight[:, 0].view(shape)
    for t in range(1, index.shape[1]):  # tap by tap: one temporary of the output's size, not T of them
        out.addcmul_(x.index_select(dim, index[:, t]), weight[:, t].view(shape))
    return out


def resize(image: Tensor, size: tuple[int, int], window: tuple[int, int, int, int] | None = None) -> Tensor:
    """``[b, h, w, 3|4]`` float32 -> ``[b, *size, 3|4]``, antialiased bilinear; the input itself if the size
    matches. RGBA is resized premultiplied, then divided back (colour 0 where the alpha is 0).

    ``window = (top, left, height, width)``: only that part of the resized image, ``[b, height, width, 3|4]``,
    resampled from the source pixels it reads alone (:func:`_taps`), so memory and time follow the window
    whatever ``size`` is (a cover fit of a wide background to a tall foreground scales it 14 times).
    """
    if tuple(image.shape[1:3]) == tuple(size):
        return image if window is None else image[:, window[0]:window[0] + window[2], window[1]:window[1] + window[3]]
    rows = cols = None
    if window is not None:
        top, left, height, width = window
        rows, cols = _taps(image.shape[1], size[0], top, height), _taps(image.shape[2], size[1], left, width)
        image = image[:, rows.lo:rows.hi, cols.lo:cols.hi]  # the source pixels the window reads
    x = image
    if image.shape[-1] == 4:
        x = torch.cat((image[..., :3] * image[..., 3:], image[..., 3:]), -1)
    if window is None:
        nchw = x.permute(0, 3, 1, 2)  # [b, C, h, w] for interpolate
        out = F.interpolate(nchw, size=size, mode="bilinear", antialias=True, align_corners=False)
        out = out.permute(0, 2, 3, 1)
    else:  # columns first, then rows: interpolate's order, so the two round alike
        out = _resample(_resample(x, 2, cols), 1, rows)
    out.clamp_(0, 1)
    if image.shape[-1] == 4:
        out[..., :3] /= out[..., 3:].clamp_min(_TINY)
        out.clamp_(0, 1)
    return out


def fit_background(image: Tensor, size: tuple[int, int], fit: str, color: tuple[float, ...]) -> Tensor:
    """``[b, h, w, C]`` float32 in 0..1 -> ``[b, *size, C']`` fitted by ``fit`` (see the module's docstring).

    ``C'`` is ``C``, but 4 for ``contain`` with a translucent ``color`` (its letterbox is translucent).
    """
    height, width = size
    h, w = image.shape[1:3]
    if fit == "stretch":
        return resize(image, size)
    scale = (max if fit == "cover" else min)(height / h, width / w)
    scaled = (max(1, round(h * scale)), max(1, round(w * scale)))
    if fit == "cover":
        scaled = (max(height, scaled[0]), max(width, scaled[1]))  # rounding must not leave a gap
        top, left = (scaled[0] - height) // 2, (scaled[1] - width) // 2
        if scaled[0] * scaled[1] > WINDOW_ABOVE * height * width:
            return resize(image, scaled, window=(top, left, height, width))  # the kept centre only
        return resize(image, scaled)[:, top:top + height, left:left + width]
    scaled = (min(height, scaled[0]), min(width, scaled[1]))
    channels = 4 if image.shape[-1] == 4 or color[3] < 1 else 3
    canvas = torch.tensor(color[:channels], dtype=torch.float32, device=image.device)
    canvas = canvas.expand(image.shape[0], height, width, channels).clone()
    top, left = (height - scaled[0]) // 2, (width - scaled[1]) // 2
    inner = canvas[:, top:top + scaled[0], left:left + scaled[1]]
    inner[..., :image.shape[-1]] = resize(image, scaled)
    if image.shape[-1] < channels:
        inner[..., 3] = 1.0  # the RGB image itself is opaque
    return canvas


def blur_rgb(rgb: Tensor, sigma: float, backend: str) -> Tensor:
    """``[b, H, W, 3]`` float32 -> its Gaussian blur (a new tensor), downscaled for large sigmas (module docs).

    ``backend`` is ``"native"`` (OpenCV) or ``"torch"``; ``sigma`` 0 returns ``rgb`` itself.
    """
    if sigma <= 0:
        return rgb
    h, w = rgb.shape[1:3]
    s = int(sigma // 4) if sigma > DOWNSCALE_ABOVE else 1
    if s < 2 or min(h, w) < 2 * s:  # small images are cheap to blur exactly
        return _blur(rgb, sigma, backend)
    small = resize(rgb, (max(1, round(h / s)), max(1, round(w / s))))
    return resize(_blur(small, math.sqrt(sigma * sigma - s * s / 3) / s, backend), (h, w))


def _blur(rgb: Tensor, sigma: float, backend: str) -> Tensor:
    if backend != "native":
        return gaussian_blur(rgb, sigma)  # [b, H, W, 3], scipy's mode="reflect"
    return runtime.per_image(lambda im: cv_gaussian_blur(np.ascontiguousarray(im), sigma), rgb)


def over(rgb: Tensor, alpha: Tensor, bg_rgb: Tensor, bg_alpha: Tensor, linear_light: bool) -> tuple[Tensor, Tensor]:
    """Porter-Duff "over", straight alpha: ``(c_o [b, H, W, 3], a_o [b, H, W, 1])`` in 0..1.

    Colours ``[.., 3]`` and alphas ``[.., 1]`` broadcast against each other; all float32 in 0..1.
    """
    if linear_light:
        rgb, bg_rgb = srgb_to_linear(rgb), srgb_to_linear(bg_rgb)
    weight = bg_alpha * (1 - alpha)  # the background's share of the result's coverage
    a_o = alpha + weight
    # where a_o is 0, both shares are 0: 0 / tiny = 0, the colour of a fully transparent pixel
    c_o = (rgb * alpha).add_(bg_rgb * weight).div_(a_o.clamp_min(_TINY))
    if linear_light:
        c_o = linear_to_srgb(c_o.clamp_(0, 1))
    return c_o.clamp_(0, 1), a_o.clamp_(0, 1)


def _blend_onto_opaque(part: Tensor, alpha: Tensor, bg_rgb: Tensor, out: tuple[Tensor] | None) -> Tensor:
    """"over" onto an opaque background, ``a c_f + (1 - a) c_b``, for ``alpha`` ``[b, H, W]``: the clamped
    foreground written into the result, then blended towards the background in place. The general path's
    full-size temporaries (each a fresh allocation: page faults) cost more than this cheap formula itself,
    so the one temporary here, the background's weight, comes from :func:`runtime.empty` too."""
    dst = out[0] if out is not None else runtime.empty((*part.shape[:3], 3), bg_rgb)
    weight = runtime.empty(alpha.shape, dst)
    torch.sub(1, alpha, out=weight).clamp_(0, 1)
    torch.clamp(part[..., :3], 0, 1, out=dst)
    dst.lerp_(bg_rgb.to(dst.dtype), weight.unsqueeze(-1))
    return out if out is not None else dst


def opaque(options: CompositeOptions, background_image: Tensor | None) -> bool:
    """Whether the background covers every pixel fully (then the result is RGB)."""
    color_opaque = parse_color(options.color)[3] >= 1
    if options.background == "color":
        return color_opaque
    if options.background == "image":
        return background_image.shape[-1] == 3 and (options.fit != "contain" or color_opaque)
    return options.background == "blurred original"


def background_source(options: CompositeOptions, background_image: Tensor | None, size: tuple[int, int],
                      device: torch.device, backend: str) -> Background:
    """The chunk's background as a function of ``(chunk rgb [b, H, W, 3], start)``, float32 on ``device``."""
    one = torch.ones(1, 1, 1, 1, device=device)
    color = parse_color(options.color)
    if options.background in ("color", "transparent"):
        rgba = torch.tensor(color if options.background == "color" else (0.0,) * 4, device=device)
        rgba = rgba.view(1, 1, 1, 4)
        return lambda rgb, start: (rgba[..., :3], rgba[..., 3:])
    if options.background == "blurred original":
        return lambda rgb, start: (blur_rgb(rgb, options.blur, backend), one)

    def fitted(part: Tensor) -> tuple[Tensor, Tensor]:
        out = fit_background(part.to(device, torch.float32).clamp(0, 1), size, options.fit, color)
        return out[..., :3], (out[..., 3:] if out.shape[-1] == 4 else one)

    if background_image.shape[0] == 1:  # fitted once, used for every chunk
        single = fitted(background_image)
        return lambda rgb, start: single
    return lambda rgb, start: fitted(background_image[start:start + rgb.shape[0]])


def _check_inputs(foreground: Tensor, options: CompositeOptions, mask: Tensor | None,
                  background_image: Tensor | None) -> tuple[int, Tensor, Tensor | None, Tensor | None]:
    """Check every input once: the output's batch size, and the inputs detached (a tensor that requires grad,
    from a script, reaches no op and no output requires grad), the mask as ``[B, H, W]`` float."""
    check_image(foreground, "foreground")
    foreground = foreground.detach()
    options.check()
    if mask is not None:
        mask = as_mask(mask, "mask", like=foreground)
    elif foreground.shape[-1] == 3:
        fail("mask", "the foreground is RGB, so it has no alpha to composite with; connect a mask, or use an "
             "RGBA image (a cut-out) as the foreground.", InputError)
    if options.background != "image":
        background_image = None  # only mode "image" uses it: anything connected is ignored
    elif background_image is None:
        fail("background_image", "background 'image' needs a background image; connect one, or choose another "
             "background.", InputError)
    else:
        check_image(background_image, "background_image")
        background_image = background_image.detach()
    sized, named = foreground, "foreground"
    for other, name in ((mask, "mask"), (background_image, "background_image")):
        if other is not None:
            check_same_batch(sized, other, named, name)
            sized, named = (other, name) if other.shape[0] > sized.shape[0] else (sized, named)
    return sized.shape[0], foreground, mask, background_image


def composite(foreground: Tensor, options: CompositeOptions = CompositeOptions(), mask: Tensor | None = None,
              background_image: Tensor | None = None, backend: str = "auto") -> Tensor:
    """Composite every foreground over its background; chunk by chunk, with progress and Cancel between.

    Args:
        foreground: IMAGE ``[B, H, W, 3|4]`` in 0..1, straight alpha in channel 4 (if any).
        options: :class:`CompositeOptions`.
        mask: MASK ``[B', H, W]`` (or one ``[H, W]``; bool is 0/1), 1 = subject: the alpha (it replaces an
            RGBA foreground's own). Needed for an RGB foreground.
        background_image: IMAGE ``[B'', h, w, 3|4]`` of any size: the background of mode ``image``
            (ignored by the other modes).
        backend: "auto", "torch" or "native" (OpenCV's blur, CPU).
    Each batch may hold one item, used for every item of the others.
    Returns:
        ``[N, H, W, 3|4]`` on ``foreground.device`` in ``foreground.dtype``, ``N`` the largest batch: RGB
        when the background is opaque everywhere, else RGBA with straight alpha (module docstring).
    """
    n, foreground, mask, background_image = _check_inputs(foreground, options, mask, background_image)
    h, w = foreground.shape[1:3]
    device = runtime.compute_device()
    backend = runtime.pick_backend(device, backend)
    channels = 3 if opaque(options, background_image) else 4
    background = background_source(options, background_image, (h, w), device, backend)
    masks = None if mask is None else mask.expand(n, -1, -1)

    def run(part: Tensor, start: int, out: tuple[Tensor] | None = None):
        coverage = part[..., 3] if masks is None else masks[start:start + part.shape[0]].to(part.device)
        if channels == 3 and not options.linear_light and options.background != "blurred original":
            return _blend_onto_opaque(part, coverage, background(part, start)[0], out)
        alpha = coverage.to(torch.float32).clamp(0, 1).unsqueeze(-1)
        rgb = part[..., :3].to(torch.float32).clamp(0, 1)  # our own copy: blurs and blends never touch the input
        c_o, a_o = over(rgb, alpha, *background(rgb, start), options.linear_light)
        if out is None:  # a chunk off the output's device: its own tensor, moved by map_batches
            return c_o if channels == 3 else torch.cat((c_o, a_o), -1)
        out[0][..., :3] = c_o
        if channels == 4:
            out[0][..., 3:] = a_o
        return out

    return runtime.map_batches(foreground.expand(n, -1, -1, -1), run, device=device, outputs=[(h, w, channels)],
                               pass_start=True)
