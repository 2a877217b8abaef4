"""Edge-preserving smoothing and sharpening: bilateral filter and unsharp mask.

Each filter has two backends with one meaning, chosen by :func:`runtime.pick_backend`: ``"native"``
(OpenCV on the CPU, the library users already trust) and ``"torch"`` (batched, for the GPU; it also runs on the CPU,
which is how CI checks both against the same reference). References: ``cv2.bilateralFilter`` on 8-bit
RGB, and ``skimage.filters.unsharp_mask`` on the float image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import Tensor

from .bridges import to_uint8
from .checks import check_image, check_number, fail
from .color import on_rgb
from .kernels import gaussian_blur, gaussian_half_width, mirror_index
from .runtime import PIXELS_PER_CHUNK, pick_backend

MAX_BILATERAL_RADIUS = 49  # diameter 99: cost grows with radius**2, and beyond this the filter is a blur
_SIGMA_EPS = 1e-6  # OpenCV copies the input when either sigma is at or below this
# Pixels (images x rows x width) per bilateral band in the torch path: the working set is ~11 float32
# planes of this size whatever the batch or image size (~350 MB on the GPU, where bigger bands mean fewer
# kernel launches; ~11 MB on the CPU, where cache-sized bands measured ~2x faster than whole images).
_BAND_PIXELS = {"cpu": 1 << 18}


def bilateral(image: Tensor, diameter: int = 9, sigma_color: float = 75.0, sigma_space: float = 75.0,
              backend: str = "auto") -> Tensor:
    """Smooth while keeping edges: OpenCV's bilateral filter, applied to every image of the batch.

    Each output pixel is the average of the pixels in a disc around it, weighted by
    ``exp(-r**2 / (2 sigma_space**2)) * exp(-d**2 / (2 sigma_color**2))`` where ``r`` is the distance
    in pixels and ``d`` the sum over R, G, B of the absolute differences on the 0..255 scale (as
    ``cv2.bilateralFilter``). Borders are mirrored without repeating the edge (``BORDER_REFLECT_101``).

    Args:
        image: IMAGE batch ``[B, H, W, C]``, C = 3 or 4, values in 0..1 (values above 1 are clamped).
        diameter: 0..99. Width of the neighbourhood, in pixels; the radius is ``diameter // 2`` (at
            least 1). 0 derives the radius from ``sigma_space`` as ``round(1.5 * sigma_space)``.
        sigma_color: 0..1000, on the 0..255 scale. How different colours may be and still mix; larger
            values flatten more (above ~150 gives a cartoon look). 0 returns the image unchanged.
        sigma_space: 0..1000, in pixels. How fast the weight falls off with distance. 0 returns the
            image unchanged.
        backend: ``"auto"`` (OpenCV on the CPU, torch elsewhere), ``"native"`` (OpenCV) or ``"torch"``.
    Returns:
        New tensor with the shape, dtype and device of ``image``; alpha passed through. The opencv
        backend works on 8-bit values as ``cv2.bilateralFilter`` does, so its output is in 1/255 steps.
    """
    check_image(image, "image")
    check_number(diameter, "diameter", low=0, high=2 * MAX_BILATERAL_RADIUS + 1, integer=True)
    check_number(sigma_color, "sigma_color", low=0.0, high=1000.0)
    check_number(sigma_space, "sigma_space", low=0.0, high=1000.0)
    if diameter == 0 and _radius(0, sigma_space) > MAX_BILATERAL_RADIUS:
        fail("sigma_space", f"{sigma_space} with diameter 0 gives a radius of {_radius(0, sigma_space)} pixels, "
             f"above the maximum {MAX_BILATERAL_RADIUS}; set a diameter, or a sigma_space of at most "
             f"{MAX_BILATERAL_RADIUS / 1.5:.1f}.")
    return bilateral_core(image, diameter, sigma_color, sigma_space, backend)


def _radius(diameter: int, sigma_space: float) -> int:
    if diameter > 0:
        return max(diameter // 2, 1)  # OpenCV widens diameters 1 and 2 to 3
    return max(round(1.5 * sigma_space), 1)  # round half to even, as cvRound


def bilateral_core(image: Tensor, diameter: int = 9, sigma_color: float = 75.0, sigma_space: float = 75.0,
                   backend: str = "auto") -> Tensor:
    """:func:`bilateral` without the checks, for callers that checked the batch and settings once."""
    if sigma_color <= _SIGMA_EPS or sigma_space <= _SIGMA_EPS:
        return on_rgb(image, lambda rgb: rgb.clamp(0, 1))
    fn = _bilateral_opencv if pick_backend(image.device, backend) == "native" else _bilateral_torch
    radius = _radius(diameter, sigma_space)
    return on_rgb(image, lambda rgb: fn(rgb, radius, float(sigma_color), float(sigma_space)))


def unsharp(image: Tensor, radius: float = 2.0, amount: float = 1.0, threshold: int = 0,
            backend: str = "auto") -> Tensor:
    """Sharpen: add back ``amount`` times the detail that a Gaussian blur removes (classic unsharp mask).

    ``out = clip(image + amount * (image - blurred), 0, 1)``, only where
    ``|image - blurred| * 255 > threshold`` (per channel); elsewhere the input is kept. With
    ``threshold`` 0 this is ``skimage.filters.unsharp_mask(image, radius, amount, channel_axis=2)`` (not -1:
    scikit-image up to at least 0.26 mis-slices negative channel axes there): the blur is cut at 4 sigma
    and mirrors borders including the edge pixel (scipy's ``"reflect"``).

    Args:
        image: IMAGE batch ``[B, H, W, C]``, C = 3 or 4, values in 0..1 (values above 1 are clamped).
        radius: 0..64. Gaussian sigma in pixels: the size of the details sharpened. 0 returns the image.
        amount: 0..10. Strength; 1.0 adds 100% of the detail.
        threshold: integer 0..255. Only differences above this many 8-bit levels are sharpened, so
            skin and sky stay smooth; 0 sharpens everywhere.
        backend: ``"auto"`` (OpenCV on the CPU, torch elsewhere), ``"native"`` (OpenCV) or ``"torch"``.
    Returns:
        New tensor with the shape, dtype and device of ``image``; alpha passed through.
    """
    check_image(image, "image")
    check_number(radius, "radius", low=0.0, high=64.0)
    check_number(amount, "amount", low=0.0, high=10.0)
    check_number(threshold, "threshold", low=0, high=255, integer=True)
    return unsharp_core(image, radius, amount, threshold, backend)


def unsharp_core(image: Tensor, radius: float = 2.0, amount: float = 1.0, threshold: int = 0,
                 backend: str = "auto") -> Tensor:
    """:func:`unsharp` without the checks, for callers that checked the batch and settings once."""
    half = gaussian_half_width(radius)
    if half == 0 or amount == 0:
        return on_rgb(image, lambda rgb: rgb.clamp(0, 1))  # a one-tap blur changes nothing
    fn = _unsharp_opencv if pick_backend(image.device, backend) == "native" else _unsharp_torch
    return on_rgb(image, lambda rgb: fn(rgb, float(radius), half, float(amount), threshold))


def _space_offsets(radius: int, sigma_space: float) -> list[tuple[int, int, float]]:
    """``(dy, dx, weight)`` for each offset of OpenCV's disc, with its float32 spatial weights."""
    coeff = float(np.float32(-0.5 / (sigma_space * sigma_space)))
    return [(dy, dx, float(np.float32(math.exp((dy * dy + dx * dx) * coeff))))
            for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if math.sqrt(dy * dy + dx * dx) <= radius]  # OpenCV skips the corners: a disc, not a square


def _bilateral_opencv(rgb: Tensor, radius: int, sigma_color: float, sigma_space: float) -> Tensor:
    """``[B,H,W,3]`` -> ``[B,H,W,3]`` through ``cv2.bilateralFilter`` on 8-bit images."""
    # 8-bit, not float32: it is the reference itself (exact parity) and the fastest path; cv2's float32
    # filter uses an interpolated colour table over the image's range and is up to ~2x slower.
    b, h, w, _ = rgb.shape
    src = rgb.to("cpu", torch.float32)  # a no-op for float32 CPU batches, the usual case
    out = torch.from_numpy(np.empty(src.shape, np.float32))  # NumPy madvises huge pages: fewer page faults
    out_np = out.numpy()  # shares memory: cv2 and numpy write straight into the result
    dst8 = np.empty((h, w, 3), np.uint8)
    # cv2 filters one image per call, which forces this per-image loop. Arithmetic stays in numpy on
    # the views: single-threaded and allocation-light, it does not fight cv2's threads for the cores.
    for i in range(b):
        src8 = to_uint8(src[i])  # rounds and clamps, like every 8-bit bridge of the pack
        cv2.bilateralFilter(src8, 2 * radius + 1, sigma_color, sigma_space, dst=dst8,
                            borderType=cv2.BORDER_REFLECT_101)
        np.divide(dst8, np.float32(255.0), out=out_np[i])
    return out.to(rgb.device, rgb.dtype)


def _bilateral_torch(rgb: Tensor, radius: int, sigma_color: float, sigma_space: float) -> Tensor:
    """``[B,H,W,3]`` -> ``[B,H,W,3]``, batched, one pass per kernel offset over bounded bands of rows."""
    b, h, w, _ = rgb.shape
    # Colour distance is measured on the 0..255 scale: fold the 255 into the coefficient instead of
    # scaling the pixels. float32 as in OpenCV (its tables are float32).
    coeff = float(np.float32(-0.5 / (sigma_color * sigma_color))) * 255.0 * 255.0
    offsets = _space_offsets(radius, sigma_space)
    rows = mirror_index(h, radius, radius, False, rgb.device)
    cols = mirror_index(w, radius, radius, False, rgb.device)
    # Bound the working set: whole images per chunk when several fit the budget, else bands of rows.
    budget = _BAND_PIXELS.get(rgb.device.type, PIXELS_PER_CHUNK)
    per_chunk = max(1, min(b, budget // (h * w)))
    band = h if per_chunk > 1 else max(1, min(h, budget // w))
    out = torch.empty_like(rgb)
    for i0 in range(0, b, per_chunk):
        chunk = rgb[i0:i0 + per_chunk]
        n = chunk.shape[0]
        for y0 in range(0, h, band):
            bh = min(band, h - y0)
            # Padded band [n,3,bh+2r,w+2r]: our own float32 copy, so clamp_ never touches the input.
            pad = chunk.index_select(1, rows[y0:y0 + bh + 2 * radius]).index_select(2, cols)
            pad = pad.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).clamp_(0, 1)
            centre = pad[:, :, radius:radius + bh, radius:radius + w]  # view [n,3,bh,w]
            acc = torch.zeros_like(centre)
            wsum = centre.new_zeros((n, 1, bh, w))
            diff, weight = torch.empty_like(centre), torch.empty_like(wsum)
            # One offset at a time: memory stays a few planes, never the disc's maxk neighbours at once.
            for dy, dx, space_w in offsets:
                nb = pad[:, :, radius + dy:radius + dy + bh, radius + dx:radius + dx + w]  # view [n,3,bh,w]
                torch.sub(nb, centre, out=diff).abs_()
                torch.sum(diff, dim=1, keepdim=True, out=weight)  # L1 over R, G, B: [n,1,bh,w]
                weight.square_().mul_(coeff).exp_().mul_(space_w)
                wsum.add_(weight)
                acc.addcmul_(nb, weight)
            out[i0:i0 + n, y0:y0 + bh] = acc.div_(wsum).permute(0, 2, 3, 1)  # centre weight 1: wsum > 0
    return out


def _sharpen(x: Tensor, blurred: Tensor, amount: float, threshold: int) -> Tensor:
    """``x + amount * (x - blurred)`` clamped, kept only where the detail exceeds ``threshold`` levels.

    ``blurred`` is overwritten (callers pass a buffer of their own).
    """
    detail = blurred.neg_().add_(x)  # x - blurred, in place
    sharp = torch.add(x, detail, alpha=amount).clamp_(0, 1)
    if threshold > 0:
        sharp = torch.where(detail.abs_().mul_(255.0) > threshold, sharp, x)
    return sharp


def _unsharp_opencv(rgb: Tensor, sigma: float, half: int, amount: float, threshold: int) -> Tensor:
    """``[B,H,W,3]`` -> ``[B,H,W,3]`` with ``cv2.GaussianBlur`` on float32 images."""
    b, h, w, _ = rgb.shape
    src = rgb.to("cpu", torch.float32).numpy()  # a no-op for float32 CPU batches, the usual case
    out = torch.from_numpy(np.empty(src.shape, np.float32))  # NumPy madvises huge pages: fewer page faults
    out_np = out.numpy()  # shares memory: cv2 and numpy write straight into the result
    x, blurred = np.empty((h, w, 3), np.float32), np.empty((h, w, 3), np.float32)
    ksize = (2 * half + 1, 2 * half + 1)
    # cv2 filters one image per call, which forces this per-image loop. Arithmetic stays in numpy/cv2 on
    # reused buffers and views: it allocates nothing per image (but the threshold mask) and does not
    # fight cv2's threads for the cores as torch's thread pool measurably did here.
    for i in range(b):
        np.clip(src[i], 0, 1, out=x)  # contiguous clamped copy of a possibly strided (RGBA) view
        # BORDER_REFLECT is scipy's "reflect" (edge pixel repeated); OpenCV's default would not repeat it.
        cv2.GaussianBlur(x, ksize, sigma, dst=blurred, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
        cv2.addWeighted(x, 1.0 + amount, blurred, -amount, 0.0, dst=out_np[i])  # x + amount * (x - blurred)
        np.clip(out_np[i], 0, 1, out=out_np[i])
        if threshold > 0:
            levels = np.multiply(cv2.absdiff(x, blurred, dst=blurred), 255.0, out=blurred)  # |detail| in 8-bit levels
            np.copyto(out_np[i], x, where=levels <= threshold)  # flat areas keep the input
    return out.to(rgb.device, rgb.dtype)


def _unsharp_torch(rgb: Tensor, sigma: float, half: int, amount: float, threshold: int) -> Tensor:
    """``[B,H,W,3]`` -> ``[B,H,W,3]``: separable Gaussian as shifted adds, batched, chunk by chunk."""
    b, h, w, _ = rgb.shape
    per_chunk = max(1, PIXELS_PER_CHUNK // (h * w))  # bounds the few float32 copies of a chunk
    out = torch.empty_like(rgb)
    for i0 in range(0, b, per_chunk):
        x = rgb[i0:i0 + per_chunk].float().clamp(0, 1)  # [n,H,W,3], our own copy
        blurred = gaussian_blur(x, sigma, half, dims=(1, 2))  # [n,H,W,3], scipy's mode="reflect"
        out[i0:i0 + x.shape[0]] = _sharpen(x, blurred, amount, threshold)
    return out
