"""Foreground colour estimation for a soft alpha (Germer et al.'s multi-level method), batched.

Given an image ``I`` and its alpha ``a``, find foreground ``F`` and background ``B`` colours with
``I ~ a F + (1 - a) B`` that vary smoothly where the alpha does: the colours a cut-out should carry so that
no trace of the old background shows on a new one (decontamination). It is pymatting's
``estimate_foreground_ml`` with the same defaults, coarse to fine over ``ceil(log2(max(H, W))) + 1``
levels (nearest-neighbour resizes), a few Gauss-Seidel sweeps per level.

Two backends with one result:

* ``"torch"`` (any device, batched): pymatting sweeps pixels in raster order, each pixel reading its
  already-updated left and upper neighbours and the old right and lower ones. Pixels on one anti-diagonal
  (``y + x = k``) depend only on diagonals ``k - 1`` (new) and ``k + 1`` (old), so sweeping diagonal by
  diagonal reproduces the sequential sweep exactly (to float rounding), for the whole batch at once:
  ``H + W - 1`` small steps per sweep, which suits a GPU.
* ``"native"`` (the CPU path): pymatting's numba kernel as :mod:`.foreground_ml` restates it (bit-identical
  results, a fraction of its memory), image by image, one thread per core, which is far faster on a CPU
  than the diagonal steps (measured ~70x at 256² for one image).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import runtime
from .checks import InputError, check_image, check_mask, fail
from .runtime import pick_backend

REGULARIZATION, SMALL_ITERATIONS, BIG_ITERATIONS, SMALL_SIZE, GRADIENT_WEIGHT = 1e-5, 10, 2, 32, 1.0  # pymatting's


def estimate_foreground(image: Tensor, alpha: Tensor, backend: str = "auto") -> tuple[Tensor, Tensor]:
    """Foreground and background colours of every image for its alpha, as pymatting's ``estimate_foreground_ml``.

    Args:
        image: IMAGE ``[B, H, W, 3|4]`` in 0..1 (alpha channel ignored). alpha: MASK ``[B, H, W]``, 1 = subject.
        backend: ``"auto"`` (pymatting's kernel on the CPU, torch elsewhere), ``"torch"`` or ``"native"``.
    Returns:
        ``(foreground, background)``, each ``[B, H, W, 3]`` float32 in 0..1 on ``image.device``.
    """
    check_image(image, "image")
    check_mask(alpha, "alpha", like=image)
    if alpha.shape[0] != image.shape[0]:
        fail("alpha", f"{alpha.shape[0]} masks for {image.shape[0]} images; connect one mask per image.", InputError)
    rgb, a = unit_float32(image[..., :3]), unit_float32(alpha)
    if _native_applies(a, backend):
        fg, bg = torch.empty(rgb.shape), torch.empty(rgb.shape)
        _native(rgb.cpu(), a.cpu(), fg, bg)
        return fg.to(rgb.device), bg.to(rgb.device)
    return _torch(rgb, a)


def unit_float32(x: Tensor) -> Tensor:
    """``x.float().clamp(0, 1)``, but ``x`` itself (not a copy: read it only) when it is float32 in 0..1 already."""
    if x.dtype == torch.float32 and x.numel():
        low, high = torch.aminmax(x)
        if low >= 0 and high <= 1:  # NaN fails both: clamped below, as before
            return x
    return x.float().clamp(0, 1)


def foreground_into(rgb: Tensor, alpha: Tensor, out: Tensor, backend: str = "auto") -> Tensor:
    """The foreground of :func:`estimate_foreground`, written into ``out`` ``[b, H, W, 3]`` float32 (it may be a
    strided view, e.g. a cut-out's RGB); the background is not kept. ``rgb`` ``[b, H, W, 3]`` and ``alpha``
    ``[b, H, W]`` are checked, float32 in 0..1, on ``out.device``. On the CPU this holds ~75 MB beyond ``out``
    at 48 MP (pymatting's call: ~3 GB)."""
    if _native_applies(alpha, backend) and out.device.type == "cpu":
        rows = [ml_background_rows(*alpha.shape[1:])] * alpha.shape[0]
        _native(rgb, alpha, out, [torch.empty((r, alpha.shape[2], 3)) for r in rows])
    else:
        out.copy_(_torch(rgb, alpha)[0])
    return out


def _native_applies(alpha: Tensor, backend: str) -> bool:
    return pick_backend(alpha.device, backend) == "native" and max(alpha.shape[1:]) > 1  # pymatting: 1/0 at 1x1


def ml_background_rows(h: int, w: int) -> int:
    """Rows of background the CPU kernel needs for a foreground alone: its last level's sweeps + 2 (or all)."""
    sweeps = SMALL_ITERATIONS if h <= SMALL_SIZE and w <= SMALL_SIZE else BIG_ITERATIONS
    return min(h, sweeps + 2)


KERNELS = "cleancut_foreground_ml"  # a fixed module name: numba's on-disk cache records the module's name


def _kernels():
    """:mod:`.foreground_ml`, imported once under :data:`KERNELS`. ComfyUI (and the tests) import the pack under
    a new name in each process; numba's cache, written under one name, then failed to load in the next process
    (ModuleNotFoundError). The module imports nothing of the pack, so a fixed name is safe."""
    import importlib.util
    import sys
    from pathlib import Path

    module = sys.modules.get(KERNELS)
    if module is None:
        spec = importlib.util.spec_from_file_location(KERNELS, Path(__file__).with_name("foreground_ml.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[KERNELS] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[KERNELS]
            raise
    return module


def _native(rgb: Tensor, alpha: Tensor, fg: Tensor, bg) -> None:
    """pymatting's kernel (:mod:`.foreground_ml`, the same results) per image, into ``fg`` and ``bg`` (CPU
    float32 tensors, or a list of per-image background rings: :func:`ml_background_rows`)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    estimate_ml = _kernels().estimate_ml

    images, alphas, fgs, bgs = rgb.numpy(), alpha.numpy(), fg.numpy(), [b.numpy() for b in bg]
    params = (np.float32(REGULARIZATION), SMALL_ITERATIONS, BIG_ITERATIONS, SMALL_SIZE, np.float32(GRADIENT_WEIGHT))

    def one(i: int) -> None:  # NumPy views only: no tensor is made off this thread (ComfyUI's inference mode)
        estimate_ml(images[i], alphas[i], fgs[i], bgs[i], *params)

    # one image per call; the numba kernel releases the GIL: one thread per core
    with ThreadPoolExecutor(max_workers=max(1, min(len(images), runtime.cpu_count()))) as pool:
        list(pool.map(one, range(len(images))))


def _nearest(x: Tensor, h: int, w: int) -> Tensor:
    """pymatting's nearest-neighbour resize of ``[B, H, W(, C)]``: source index ``dst * src // dst``."""
    ys = (torch.arange(h, device=x.device) * x.shape[1] // h).clamp_(0, x.shape[1] - 1)
    xs = (torch.arange(w, device=x.device) * x.shape[2] // w).clamp_(0, x.shape[2] - 1)
    return x[:, ys][:, :, xs]


def _mean_colour(rgb: Tensor, where: Tensor) -> Tensor:
    w = where.float().unsqueeze(-1)
    return (rgb * w).sum((1, 2)) / (w.sum((1, 2)) + 1e-5)  # [B, 3]


def _torch(rgb: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    b, h0, w0, c = rgb.shape
    fg = _mean_colour(rgb, alpha > 0.9).view(b, 1, 1, c)
    bg = _mean_colour(rgb, alpha < 0.1).view(b, 1, 1, c)
    levels = max(1, int(math.ceil(math.log2(max(w0, h0)))))
    for level in range(levels + 1):
        w, h = round(w0 ** (level / levels)), round(h0 ** (level / levels))
        image, a = _nearest(rgb, h, w), _nearest(alpha, h, w)
        fg, bg = _nearest(fg, h, w).contiguous(), _nearest(bg, h, w).contiguous()
        sweeps = SMALL_ITERATIONS if w <= SMALL_SIZE and h <= SMALL_SIZE else BIG_ITERATIONS
        for _ in range(sweeps):
            for k in range(h + w - 1):  # one anti-diagonal at a time: the raster sweep's exact order
                _update_diagonal(image, a, fg, bg, k)
    return fg, bg


def _update_diagonal(image: Tensor, a: Tensor, fg: Tensor, bg: Tensor, k: int) -> None:
    """Solve the 2x2 system of every pixel with ``y + x = k`` from its four neighbours, in place."""
    h, w = a.shape[1:]
    ys = torch.arange(max(0, k - w + 1), min(h - 1, k) + 1, device=a.device)
    xs = k - ys
    a0 = a[:, ys, xs]
    a1 = 1.0 - a0
    a00, a01, a11 = a0 * a0, a0 * a1, a1 * a1
    px = image[:, ys, xs]
    r0, r1 = a0.unsqueeze(-1) * px, a1.unsqueeze(-1) * px
    # pymatting's neighbour order: left, right, up, down (borders clamp to the pixel itself)
    for y2, x2 in ((ys, (xs - 1).clamp(min=0)), (ys, (xs + 1).clamp(max=w - 1)),
                   ((ys - 1).clamp(min=0), xs), ((ys + 1).clamp(max=h - 1), xs)):
        da = REGULARIZATION + GRADIENT_WEIGHT * (a0 - a[:, y2, x2]).abs()
        a00, a11 = a00 + da, a11 + da
        r0 = r0 + da.unsqueeze(-1) * fg[:, y2, x2]
        r1 = r1 + da.unsqueeze(-1) * bg[:, y2, x2]
    inv = 1.0 / (a00 * a11 - a01 * a01)
    c00, c01, c11 = (inv * a11).unsqueeze(-1), (inv * -a01).unsqueeze(-1), (inv * a00).unsqueeze(-1)
    fg[:, ys, xs] = (c00 * r0 + c01 * r1).clamp_(0, 1)
    bg[:, ys, xs] = (c01 * r0 + c11 * r1).clamp_(0, 1)
