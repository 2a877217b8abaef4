"""Point operations on whole batches: gamma/gain and colour saturation (torch on any device)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from .checks import check_image, check_number
from .color import luma, on_rgb
from .runtime import pick_backend


def gamma_gain(image: Tensor, gamma: float = 1.0, gain: float = 1.0) -> Tensor:
    """Gamma curve, then gain: ``gain * image ** (1 / gamma)``, clamped to 0..1.

    Args:
        image: IMAGE batch ``[B, H, W, C]``, values in 0..1 (values above 1 are clamped first).
        gamma: > 0. Above 1 brightens mid-tones, below 1 darkens them (the unraphael app's meaning).
        gain: >= 0. Multiplier applied after the curve.
    Returns:
        New tensor with the shape, dtype and device of ``image``; alpha passed through.
    """
    check_image(image, "image")
    check_number(gamma, "gamma", low=1e-3, high=100.0)
    check_number(gain, "gain", low=0.0, high=100.0)
    return gamma_gain_core(image, gamma, gain)


def gamma_gain_core(image: Tensor, gamma: float = 1.0, gain: float = 1.0) -> Tensor:
    """:func:`gamma_gain` without the checks, for callers that checked the batch and settings once."""

    def curve(rgb: Tensor) -> Tensor:
        out = rgb.clamp(0, 1)  # new tensor: the in-place ops below never touch the input
        if gamma != 1.0:
            out.pow_(1.0 / gamma)
        if gain != 1.0:
            out.mul_(gain).clamp_(0, 1)
        return out

    return on_rgb(image, curve)


def saturation(image: Tensor, saturation: float = 1.0, backend: str = "auto") -> Tensor:
    """Scale colourfulness around each pixel's grey value, as PIL's ``ImageEnhance.Color``.

    ``out = grey + saturation * (rgb - grey)`` with ITU-R 601 grey, clamped to 0..1.

    Args:
        image: IMAGE batch ``[B, H, W, C]``, values in 0..1.
        saturation: >= 0. 0 gives grey, 1 the input, above 1 more vivid colours.
        backend: ``"auto"`` (OpenCV on the CPU, torch elsewhere), ``"torch"`` or ``"native"`` (OpenCV).
    Returns:
        New tensor with the shape, dtype and device of ``image``; alpha passed through.
    """
    check_image(image, "image")
    check_number(saturation, "saturation", low=0.0, high=10.0)
    return saturation_core(image, saturation, backend)


def saturation_core(image: Tensor, saturation: float = 1.0, backend: str = "auto") -> Tensor:
    """:func:`saturation` without the checks, for callers that checked the batch and settings once."""

    def blend(rgb: Tensor) -> Tensor:
        rgb = rgb.clamp(0, 1)
        grey = luma(rgb)  # [B,H,W,1]
        return rgb.sub_(grey).mul_(saturation).add_(grey).clamp_(0, 1)

    def blend_opencv(rgb: Tensor) -> Tensor:
        # A per-pixel op, so the whole batch is one tall [B*H, W, 3] image for cv2: one call, no loop.
        src = np.ascontiguousarray(rgb.reshape(-1, rgb.shape[2], 3).float().numpy().clip(0, 1))
        grey = cv2.cvtColor(cv2.cvtColor(src, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)  # same 601 weights
        out = cv2.addWeighted(src, saturation, grey, 1.0 - saturation, 0.0, dst=src)  # src is our own copy
        return torch.from_numpy(np.clip(out, 0, 1, out=out)).view(rgb.shape).to(rgb.dtype)

    return on_rgb(image, blend_opencv if pick_backend(image.device, backend) == "native" else blend)
