"""Refine Edges: fit a mask's soft edge to the image, then estimate the subject's own colours there.

A segmentation model's mask is soft but blurry: it is computed at 320-1024 px and scaled up, so its edge
ignores the strands and the outline the photo shows, and the plain cut-out keeps the old background's
colour in every partly transparent pixel. Two steps fix that, for a whole batch:

1. the alpha (``method``):
   * ``guided filter``: the mask filtered with the image as guide (:mod:`.guided`, fast variant), only in
     the band within ``band_width`` px of the mask's edge (where a window of that radius sees both
     subject and background); elsewhere the mask is kept. Milliseconds per image, on any device.
   * ``closed-form``: rembg's alpha matting (:mod:`.rembg.matting`, pymatting's closed-form solve on the
     trimap's unknown band): seconds per image, CPU only.
   * ``none``: the mask as it is.
2. the colours (``decontaminate``): :func:`.foreground.estimate_foreground` for the refined alpha (what
   pymatting's ``estimate_foreground_ml`` and rembg's ``decontaminate=True`` compute), so a strand keeps
   the subject's colour on a new background instead of the old one's.

The defaults were chosen on the ground-truth edge set (``benchmarks/bench_edges.py``, README): from a
model's mask, decontamination raised the composite error slightly (the colours are estimated for an
alpha that is itself off), so it is off unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import runtime
from .checks import InputError, as_mask, check_choice, check_flag, check_image, check_number, fail
from .foreground import foreground_into, unit_float32
from .guided import box_mean, cv_box_mean, guided_filter, native_strips
from .rembg.inference import uint8_values
from .rembg.matting import Trimap, alpha_matting

METHODS = ("guided filter", "closed-form", "none")
EPS = 1e-4  # guided filter ridge: a window follows colour differences of about sqrt(EPS) = 1 % or more
FIT_RADIUS = 4  # the fast guided filter fits its models at this radius on a copy downscaled to match
MAX_BAND = 256


@dataclass(frozen=True)
class RefineOptions:
    """Refine Edges' settings, named as the node's inputs; passed by keyword.

    Attributes:
        method: one of :data:`METHODS`.
        band_width: guided filter: pixels on either side of the mask's edge that may change, and the
            filter's window radius. Larger follows longer strands, but can give alpha to background of a
            similar colour near the subject.
        decontaminate: estimate the foreground colours for the refined alpha (else the image's own).
        foreground_threshold, background_threshold, erode_size: closed-form: rembg's trimap (mask values
            0..255 above / below which a pixel is sure subject / background, each region eroded by a square
            of ``erode_size`` px).
    """

    method: str = "guided filter"
    band_width: int = 32
    decontaminate: bool = False
    foreground_threshold: int = 240
    background_threshold: int = 10
    erode_size: int = 10

    @property
    def trimap(self) -> Trimap:
        return Trimap(self.foreground_threshold, self.background_threshold, self.erode_size)

    def check(self) -> None:
        check_choice(self.method, "method", METHODS)
        check_number(self.band_width, "band_width", 1, MAX_BAND, integer=True)
        check_flag(self.decontaminate, "decontaminate")
        self.trimap.check(prefix="")


def guided_alpha(rgb: Tensor, mask: Tensor, band_width: int, backend: str = "auto",
                 out: Tensor | None = None) -> Tensor:
    """The guided-filter alpha ``[b, H, W]`` of a chunk: the filtered mask near the edge, the mask elsewhere.

    The band is where a ``(2 band_width + 1)²`` window holds pixels on both sides of the mask's 0.5 level
    (a square neighbourhood of the edge). Across its outer part the result fades from the filtered mask to
    the mask (:func:`band_weight`), so the band's border leaves no seam. Written into ``out`` (float32,
    ``rgb``'s device) when given. On the CPU the full-size steps run in column strips (:func:`.native_strips`,
    the band weight with a halo of ``band_width`` columns): the same result, without full-size temporaries.
    """
    scale = max(1, band_width // FIT_RADIUS)
    if out is None:
        out = torch.empty(mask.shape, dtype=torch.float32, device=mask.device)
    if runtime.pick_backend(mask.device, backend) == "native" and mask.device.type == "cpu":
        for i in range(mask.shape[0]):
            _native_alpha(rgb[i], mask[i], band_width, scale, out[i])
        return out
    filtered = guided_filter(rgb, mask, band_width, EPS, scale, backend).clamp_(0, 1)
    return torch.lerp(mask, filtered, band_weight(mask > 0.5, band_width, backend), out=out)


def _native_alpha(rgb: Tensor, mask: Tensor, band_width: int, scale: int, out: Tensor) -> None:
    """:func:`guided_alpha` of one CPU image ``[H, W, 3]``, ``[H, W]`` into ``out``, strip by strip."""
    w, mask = mask.shape[1], mask.float()
    for cols, q in native_strips(rgb.float().numpy(), mask.numpy(), band_width, EPS, scale):
        # the band weight of the strip's columns needs the mask band_width columns either side (exact sums)
        halo = slice(max(0, cols.start - band_width), min(w, cols.stop + band_width))
        share = torch.from_numpy(cv_box_mean((mask[:, halo] > 0.5).to(torch.uint8).numpy(), band_width))
        weight = _ramp(share[:, cols.start - halo.start:cols.stop - halo.start])
        torch.lerp(mask[:, cols], torch.from_numpy(q).clamp_(0, 1), weight, out=out[:, cols])


RAMP = 0.25  # band_weight reaches 1 where a quarter of the window lies on the other side of the edge


def band_weight(side: Tensor, radius: int, backend: str = "auto") -> Tensor:
    """How much the filtered mask counts at each pixel, ``[b, H, W]`` in 0..1: ``min(s, 1 - s) / RAMP``
    clipped, ``s`` the share of the pixel's ``(2 radius + 1)²`` window on the subject's side. 0 outside the
    edge band, 1 from about half the band's width inwards (for a straight edge)."""
    if runtime.pick_backend(side.device, backend) == "native":
        # one mask per call (OpenCV takes one), a thread per core, straight from the 0/1 bytes
        share = runtime.per_image(lambda s: cv_box_mean(s, radius), side.to(torch.uint8))
    else:
        share = box_mean(side.to(torch.float32).unsqueeze(1), radius).squeeze(1)
    return _ramp(share)


def _ramp(share: Tensor) -> Tensor:
    """:func:`band_weight` from the window shares: ``min(s, 1 - s) / RAMP`` clipped to 0..1 (a new tensor)."""
    return (torch.minimum(share, 1 - share) / RAMP).clamp_(0, 1)


def refine_core(rgb: Tensor, mask: Tensor, options: RefineOptions, progress: runtime.Progress | None = None,
                backend: str = "auto", out: Tensor | None = None) -> Tensor:
    """The RGBA cut-out ``[b, H, W, 4]`` of a chunk (foreground colours, refined alpha), float32 in 0..1 on
    ``rgb.device``; written into ``out`` (float32) when given. The alpha goes straight into its channel and the
    colours into the other three: no alpha or foreground image of their own.

    ``rgb`` ``[b, H, W, 3]`` and ``mask`` ``[b, H, W]`` are checked, float32, in 0..1 (read only).
    """
    cutout = torch.empty((*mask.shape, 4), device=rgb.device) if out is None else out
    alpha, fg = cutout[..., 3], cutout[..., :3]
    matted = None
    if options.method == "guided filter":
        guided_alpha(rgb, mask, options.band_width, backend, out=alpha)
    elif options.method == "closed-form":
        a, matted = alpha_matting(uint8_values(rgb), (mask * 255).round_(), options.trimap, progress)
        alpha.copy_(a)
    else:
        alpha.copy_(mask)
    if not options.decontaminate:
        fg.copy_(rgb)
    elif matted is not None:  # rembg's matting estimates the colours already (around the unknown band)
        fg.copy_(matted)
    else:
        foreground_into(rgb, alpha, fg, backend)
    return cutout


def refine_edges(image: Tensor, mask: Tensor, options: RefineOptions = RefineOptions(),
                 backend: str = "auto") -> tuple[Tensor, Tensor, Tensor]:
    """Refine the edge of every image's mask; chunk by chunk, with progress and Cancel between chunks.

    Args:
        image: IMAGE ``[B, H, W, 3|4]`` in 0..1 (an alpha channel is ignored: the mask decides).
        mask: MASK ``[B, H, W]`` (or one ``[H, W]``; bool is 0/1), 1 = subject. Either may hold one item,
            used for every item of the other.
        options: :class:`RefineOptions`. backend: "auto", "torch" or "native" (CPU libraries).
    Returns:
        ``(cutout [N, H, W, 4], alpha [N, H, W], foreground [N, H, W, 3])`` on ``image.device`` in
        ``image.dtype``, ``N`` the larger batch: the RGBA cut-out (foreground colours, refined alpha). The
        alpha and the foreground are views of the cut-out (``cutout[..., 3]``, ``cutout[..., :3]``): at 48 MP
        one 768 MB image instead of three (1.5 GB).
    """
    check_image(image, "image")
    image = image.detach()  # a tensor that requires grad (a script) reaches no op, and no output requires grad
    mask = as_mask(mask, "mask")  # detached too
    options.check()
    if tuple(mask.shape[1:]) != tuple(image.shape[1:3]):
        fail("mask", f"{mask.shape[2]}x{mask.shape[1]} does not match the image's {image.shape[2]}x"
             f"{image.shape[1]}; scale the mask to the image first (e.g. ComfyUI's Upscale Image on the mask).",
             InputError)
    n = max(image.shape[0], mask.shape[0])
    if {image.shape[0], mask.shape[0]} - {1, n}:
        fail("mask", f"{mask.shape[0]} masks for {image.shape[0]} images; connect one mask per image, or one "
             "mask (or image) for all.", InputError)
    h, w = mask.shape[1:]
    images = image.expand(n, -1, -1, -1)
    masks = mask.expand(n, -1, -1)
    progress = runtime.Progress(n)

    def run(part: Tensor, start: int, out: tuple[Tensor] | None = None) -> Tensor:
        rgb = unit_float32(part[..., :3])  # no copy of an image already in range
        m = unit_float32(masks[start:start + part.shape[0]].to(part.device))
        if out is None:  # a chunk off the outputs' device: its own tensor, moved by map_batches
            return refine_core(rgb, m, options, progress, backend)
        if out[0].dtype != torch.float32:  # computed in float32, then stored
            return out[0].copy_(refine_core(rgb, m, options, progress, backend))
        return refine_core(rgb, m, options, progress, backend, out[0])

    cutout = runtime.map_batches(images, run, outputs=[(h, w, 4)], progress=progress, pass_start=True)
    return cutout, cutout[..., 3], cutout[..., :3]  # views, as core's ImageToMask: one image in memory, not three
