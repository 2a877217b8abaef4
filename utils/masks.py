"""Refine Mask: the fixes a mask needs after a cut-out, for a whole batch, in one fixed order.

1. ``fill_holes`` / ``remove_islands``: on the mask thresholded at 0.5 (:mod:`.morphology`): holes filled
   with 1, pieces under ``remove_islands`` px set to 0 (and, with filling off, holes under that size filled).
2. ``grow``: dilate (> 0) or erode (< 0) by OpenCV's round element of that many pixels; grey for soft masks.
3. ``smooth``: Gaussian blur of that sigma in pixels (scipy's ``gaussian_filter``, border mirrored).
4. ``feather``: a linear ramp of that many pixels across the thresholded mask's edge (not the image's border):
   ``inside`` fades to 0 at the edge, ``outside`` fades from 1 at the edge, ``both`` centres the ramp on it.
5. ``black_point`` / ``white_point``: levels, ``(m - black) / (white - black)`` clipped to 0..1.
6. ``temporal``: for a batch of video frames, exponential smoothing across the frames, forwards then backwards
   (zero lag: an edge that stays put is not dragged), weight ``temporal`` on the neighbour's value. Looks no
   further than the batch.
7. ``invert``: ``1 - m``.

Each step is off at its neutral value (0, False, 0..1). Thresholding steps come first, on the mask as it came;
levels come after the blur so that ``smooth`` then levels rounds a jagged outline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import morphology as mo
from . import runtime
from .checks import as_mask, check_choice, check_flag, check_number, fail
from .kernels import cv_gaussian_blur, gaussian_blur

FEATHER_MODES = ("both", "inside", "outside")
MAX_GROW, MAX_FEATHER, MAX_SMOOTH, MAX_ISLAND, MAX_TEMPORAL = 256, 256, 64.0, 1 << 24, 0.95


@dataclass(frozen=True)
class MaskOptions:
    """Refine Mask's settings, named as the node's inputs (see the module docstring for each step)."""

    grow: int = 0
    fill_holes: bool = False
    remove_islands: int = 0
    smooth: float = 0.0
    feather: int = 0
    feather_mode: str = "both"
    black_point: float = 0.0
    white_point: float = 1.0
    invert: bool = False
    temporal: float = 0.0

    def check(self) -> None:
        check_number(self.grow, "grow", -MAX_GROW, MAX_GROW, integer=True)
        check_flag(self.fill_holes, "fill_holes")
        check_number(self.remove_islands, "remove_islands", 0, MAX_ISLAND, integer=True)
        check_number(self.smooth, "smooth", 0.0, MAX_SMOOTH)
        check_number(self.feather, "feather", 0, MAX_FEATHER, integer=True)
        check_choice(self.feather_mode, "feather_mode", FEATHER_MODES)
        check_number(self.black_point, "black_point", 0.0, 1.0)
        check_number(self.white_point, "white_point", 0.0, 1.0)
        if self.white_point <= self.black_point and (self.black_point, self.white_point) != (0.0, 1.0):
            fail("white_point", f"{self.white_point} is not above black_point {self.black_point}; raise white_point "
                 "or lower black_point (0 and 1 leave the mask as it is).")
        check_flag(self.invert, "invert")
        check_number(self.temporal, "temporal", 0.0, MAX_TEMPORAL)


def refine_mask(mask: Tensor, options: MaskOptions = MaskOptions(), backend: str = "auto") -> Tensor:
    """Apply :class:`MaskOptions`' steps to every mask; chunk by chunk, with progress and Cancel between chunks.

    Args:
        mask: MASK ``[B, H, W]`` (or one ``[H, W]``; bool is 0/1), 1 = subject; values outside 0..1 are
            clipped first.
        options: the steps. backend: "auto", "torch" or "native" (OpenCV / NumPy on the CPU).
    Returns:
        A new MASK ``[B, H, W]`` in 0..1: same count, order, dtype and device (float32 for a bool mask).
    """
    mask = as_mask(mask, "mask")
    options.check()
    out = runtime.map_batches(mask, _spatial, options=options, backend=backend)
    if options.temporal > 0:
        smooth_frames(out, options.temporal)
    # once, at the end of the chain: a step's float rounding (a blur's 1.0000001, then invert's -1.2e-7)
    # must not break the 0..1 promise; out is our own tensor
    return out.clamp_(0, 1)


def _spatial(part: Tensor, options: MaskOptions, backend: str) -> Tensor:
    """Steps 1-5 and 7 of a chunk (invert commutes with the temporal step: both are affine)."""
    m = part.float().clamp(0, 1)  # a new tensor: the steps below may work in place
    if options.fill_holes or options.remove_islands:
        m = mo.fill_and_clean(m, options.fill_holes, options.remove_islands)
    if options.grow:
        m = mo.grow(m, options.grow, backend)
    if options.smooth > 0:
        m = blur(m, options.smooth, backend)
    if options.feather:
        m = feather(m, options.feather, options.feather_mode, backend)
    if (options.black_point, options.white_point) != (0.0, 1.0):
        m = m.sub_(options.black_point).div_(options.white_point - options.black_point).clamp_(0, 1)
    if options.invert:
        m = torch.sub(1, m, out=m)
    return m


def blur(mask: Tensor, sigma: float, backend: str = "auto") -> Tensor:
    """scipy's ``gaussian_filter`` (mode reflect, truncate 4) of every mask ``[b, H, W]``."""
    if runtime.pick_backend(mask.device, backend) == "native":
        return runtime.per_image(lambda m: cv_gaussian_blur(m, sigma), mask)
    return gaussian_blur(mask, sigma)


def feather(mask: Tensor, width: int, mode: str = "both", backend: str = "auto") -> Tensor:
    """A linear ramp ``width`` px wide across the edge of the thresholded mask.

    The edge lies half-way between the last subject pixel and the first background pixel; ``s`` is the signed
    distance to it (positive inside). ``inside``: ``min(mask, s / width)``, ``outside``: ``max(mask, 1 + s /
    width)``, ``both``: ``0.5 + s / width``, each clipped to 0..1 (a binary mask becomes the ramp itself).
    """
    on = mask > mo.LEVEL
    d = mo.edge_distance(on, width + 1, backend)
    signed = torch.where(on, d - 0.5, 0.5 - d).div_(width)
    if mode == "inside":
        return torch.minimum(mask, signed.clamp_(0, 1))
    if mode == "outside":
        return torch.maximum(mask, signed.add_(1).clamp_(0, 1))
    return signed.add_(0.5).clamp_(0, 1)


def smooth_frames(frames: Tensor, weight: float) -> Tensor:
    """Exponential smoothing of ``frames`` ``[B, H, W]`` along the batch, in place, forwards then backwards:
    ``y[t] = (1 - weight) x[t] + weight y[t-1]``, then the same from the last frame (the two passes together
    are a symmetric, zero-lag filter). Frame by frame: each depends on the one before."""
    for t in range(1, frames.shape[0]):
        frames[t].lerp_(frames[t - 1], weight)
    for t in range(frames.shape[0] - 2, -1, -1):
        frames[t].lerp_(frames[t + 1], weight)
    return frames


def flicker(frames: Tensor) -> float:
    """Mean ``|m[t] - m[t-1]|`` over a batch of frames: how much a mask of a still scene jitters."""
    if frames.shape[0] < 2:
        return 0.0
    return float((frames[1:] - frames[:-1]).abs().mean())

