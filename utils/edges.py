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
from .foreground import estimate_foreground
from .guided import box_mean, cv_box_mean, guided_filter
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


def guided_alpha(rgb: Tensor, mask: Tensor, band_width: int, backend: str = "auto") -> Tensor:
    """The guided-filter alpha ``[b, H, W]`` of a chunk: the filtered mask near the edge, the mask elsewhere.

    The band is where a ``(2 band_width + 1)²`` window holds pixels on both sides of the mask's 0.5 level
    (a square neighbourhood of the edge). Across its outer part the result fades from the filtered mask to
    the mask (:func:`band_weight`), so the band's border leaves no seam.
    """
    scale = max(1, band_width // FIT_RADIUS)
    filtered = guided_filter(rgb, mask, band_width, EPS, scale, backend).clamp_(0, 1)
    return torch.lerp(mask, filtered, band_weight(mask > 0.5, band_width, backend))


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
    return (torch.minimum(share, 1 - share) / RAMP).clamp_(0, 1)


def refine_core(rgb: Tensor, mask: Tensor, options: RefineOptions, progress: runtime.Progress | None = None,
                backend: str = "auto") -> tuple[Tensor, Tensor]:
    """``(alpha [b, H, W], foreground [b, H, W, 3])`` of a chunk, both in 0..1 on ``rgb.device``.

    ``rgb`` ``[b, H, W, 3]`` and ``mask`` ``[b, H, W]`` are checked, float32, in 0..1.
    """
    matted = None
    if options.method == "guided filter":
        alpha = guided_alpha(rgb, mask, options.band_width, backend)
    elif options.method == "closed-form":
        alpha, matted = alpha_matting(uint8_values(rgb), (mask * 255).round_(), options.trimap, progress)
    else:
        alpha = mask
    if not options.decontaminate:
        return alpha, rgb
    if matted is not None:  # rembg's matting estimates the colours already (around the unknown band)
        return alpha, matted
    return alpha, estimate_foreground(rgb, alpha, backend)[0]


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
        ``image.dtype``, ``N`` the larger batch: the RGBA cut-out (foreground colours, refined alpha).
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

    def run(part: Tensor, start: int, out: tuple[Tensor, Tensor, Tensor] | None = None):
        rgb = part[..., :3].to(torch.float32).clamp(0, 1)
        m = masks[start:start + part.shape[0]].to(part.device, torch.float32).clamp(0, 1)
        alpha, fg = refine_core(rgb, m, options, progress, backend)
        if out is None:  # a chunk off the outputs' device: its own tensors, moved by map_batches
            return torch.cat((fg, alpha.unsqueeze(-1)), -1), alpha, fg
        cutout, alpha_out, fg_out = out
        fg_out.copy_(fg)
        alpha_out.copy_(alpha)
        cutout[..., :3], cutout[..., 3] = fg, alpha
        return out

    return runtime.map_batches(images, run, outputs=[(h, w, 4), (h, w), (h, w, 3)], progress=progress,
                               pass_start=True)
