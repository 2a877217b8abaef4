"""Colour helpers shared by the filters: alpha pass-through, luma, the sRGB curve, sRGB <-> CIELAB (torch)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# ITU-R 601 luma, the weights PIL's convert("L") and OpenCV's RGB2GRAY use.
LUMA = (0.299, 0.587, 0.114)
# sRGB (D65) -> XYZ, and the D65 white point, as OpenCV's cvtColor uses them.
_RGB2XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE = (0.950456, 1.0, 1.088754)


def on_rgb(image: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Run ``fn`` on the RGB channels of a ``[B, H, W, 3|4]`` batch; alpha is passed through, clamped to 0..1
    like every value the pack outputs (an alpha of 2.0 from a buggy node comes out as 1.0)."""
    if image.shape[-1] == 3:
        return fn(image)
    return torch.cat([fn(image[..., :3]), image[..., 3:].clamp(0, 1)], dim=-1)


def luma(rgb: Tensor) -> Tensor:
    """``[..., 3]`` -> ``[..., 1]`` ITU-R 601 luma."""
    w = torch.tensor(LUMA, device=rgb.device, dtype=rgb.dtype)
    return (rgb * w).sum(-1, keepdim=True)


def srgb_to_linear(x: Tensor) -> Tensor:
    """The sRGB curve decoded: values in 0..1 to linear light (IEC 61966-2-1)."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).pow(2.4))


def linear_to_srgb(x: Tensor) -> Tensor:
    """Linear light in 0..1 encoded with the sRGB curve (inverse of :func:`srgb_to_linear`)."""
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(0.0031308).pow(1 / 2.4) - 0.055)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB ``[..., 3]`` in 0..1 -> CIELAB ``[..., 3]`` (L in 0..100, a/b about -128..127), as OpenCV."""
    m = torch.tensor(_RGB2XYZ, device=rgb.device, dtype=torch.float32)
    xyz = srgb_to_linear(rgb.float()) @ m.T / torch.tensor(_WHITE, device=rgb.device)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12).pow(1 / 3), 7.787 * xyz + 16 / 116)
    lum = torch.where(xyz[..., 1] > 0.008856, 116 * f[..., 1] - 16, 903.3 * xyz[..., 1])
    return torch.stack([lum, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], dim=-1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIELAB ``[..., 3]`` -> sRGB ``[..., 3]`` float32 clamped to 0..1 (inverse of :func:`rgb_to_lab`)."""
    lum, a, b = lab.unbind(-1)
    fy = (lum + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=-1)
    xyz = torch.where(f > 0.206893, f.pow(3), (f - 16 / 116) / 7.787)
    xyz = xyz * torch.tensor(_WHITE, device=lab.device)
    m_inv = torch.linalg.inv(torch.tensor(_RGB2XYZ, dtype=torch.float64)).to(lab.device, torch.float32)
    return linear_to_srgb((xyz @ m_inv.T).clamp(0, 1)).clamp(0, 1)
