"""The unraphael app's preprocessing controls as one chain, in a fixed, documented order.

Order (each step skipped at its neutral value, so neutral settings return the input):
1. bilateral filter (denoise first, so later steps do not amplify noise)
2. CLAHE on lightness (local contrast)
3. colour saturation
4. unsharp-mask sharpening (after denoising and contrast, on the final detail)
5. gamma, then gain (global tone last)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from . import adjust, clahe, filters
from .checks import check_image, check_number
from .color import on_rgb

BILATERAL_DIAMETER = 9  # OpenCV's documented example diameter; strength sets both sigmas


@dataclass(frozen=True)
class Settings:
    """The all-in-one node's controls; the defaults are neutral (the chain returns its input).

    :meth:`check` enforces the library's ranges, which are wider than the node's sliders (the node keeps
    the useful part in reach; a script may go further, up to what the filters themselves accept).
    """

    bilateral_strength: float = 0.0  # sigma_color = sigma_space = strength, diameter 9; 0 = off
    saturation: float = 1.0  # PIL ImageEnhance.Color factor; 1 = off
    clip_limit: float = 0.0  # OpenCV CLAHE clip limit; 0 = CLAHE off
    tile_grid: int = 8  # CLAHE tiles per side
    sharpness: float = 0.0  # the unraphael app's "Sharpness Sigma": unsharp-mask amount; 0 = off
    gamma: float = 1.0  # out = in^(1/gamma): above 1 brightens; 1 = off
    gain: float = 1.0  # multiplier after gamma; 1 = off
    sharpen_radius: float = 2.0  # the unraphael app's "Sharpening Radius": unsharp-mask Gaussian sigma, pixels

    def check(self) -> None:
        check_number(self.bilateral_strength, "bilateral_strength", 0.0, 255.0)
        check_number(self.saturation, "saturation", 0.0, 10.0)
        check_number(self.clip_limit, "clip_limit", 0.0, 100.0)
        check_number(self.tile_grid, "tile_grid", 1, 64, integer=True)
        check_number(self.sharpness, "sharpness", 0.0, 10.0)
        check_number(self.gamma, "gamma", 1e-3, 100.0)
        check_number(self.gain, "gain", 0.0, 100.0)
        check_number(self.sharpen_radius, "sharpen_radius", 0.1, 50.0)


def preprocess(image: Tensor, settings: Settings, backend: str = "auto") -> Tensor:
    """Run the chain on an IMAGE batch ``[B,H,W,C]``; returns a new batch of the same shape and device."""
    check_image(image, "image")
    settings.check()
    return preprocess_core(image, settings, backend)


def preprocess_core(image: Tensor, settings: Settings, backend: str = "auto") -> Tensor:
    """:func:`preprocess` without the checks: the image is scanned once, by the caller, not per step.

    The chain runs in float32 and casts back once: float16 steps would each round (up to 20/255 of drift
    by the time CLAHE bins to 8 bits).
    """
    s, dtype = settings, image.dtype
    image = image.float()

    def chain(rgb: Tensor) -> Tensor:
        # Alpha is split off once here, so the steps below see RGB and never re-split or re-join it.
        out = rgb
        if s.bilateral_strength > 0:
            out = filters.bilateral_core(out, BILATERAL_DIAMETER, s.bilateral_strength, s.bilateral_strength,
                                         backend=backend)
        if s.clip_limit > 0:
            out = clahe.clahe_core(out, s.clip_limit, s.tile_grid, backend=backend)
        if s.saturation != 1.0:
            out = adjust.saturation_core(out, s.saturation, backend=backend)
        if s.sharpness > 0:
            out = filters.unsharp_core(out, s.sharpen_radius, s.sharpness, backend=backend)
        if s.gamma != 1.0 or s.gain != 1.0:
            out = adjust.gamma_gain_core(out, s.gamma, s.gain)
        return out.clamp(0, 1) if out is rgb else out  # a new tensor, clamped like every step's output

    return on_rgb(image, chain).to(dtype)
