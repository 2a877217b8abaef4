"""PIL's 8-bit LANCZOS resize as batched tensor ops: the same coefficients, the same integer rounding.

rembg resizes with ``PIL.Image.resize(size, LANCZOS)`` on uint8 images, both the photo to the model's
input size and the predicted mask back to the photo's size. Pillow (``src/libImaging/Resample.c``)
resamples separably, horizontal pass first, each pass on 8 bits:

* filter ``sinc(x) * sinc(x / 3)`` on ``[-3, 3)``, stretched by the scale when shrinking;
* per output pixel, taps ``xmin .. xmin + n`` with ``xmin = int(center - support + 0.5)`` clamped to 0,
  weights normalised to sum 1, then turned into fixed-point integers with 22 fractional bits;
* each output is ``clip8((2**21 + sum(v * k)) >> 22)``: round half up, clamp to 0..255, stored as uint8
  between the passes;
* Pillow 13 runs the vertical pass first when the height shrinks by more than twice what the width
  shrinks (``in_h - out_h > 2 * max(in_w - out_w, 0)``, measured against Pillow 13.0 on random sizes:
  ``tests/test_rembg.py``); older Pillow always starts with the horizontal pass.

Here each pass is a product with a banded resampling matrix: the rows of the input that feed a block
of outputs are gathered once, then one batched matmul applies the block's weights. The sums are exact
integers (float64, or two float32 halves of the coefficients), so the result equals Pillow's bit for bit.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import PIL
import torch
from torch import Tensor

from ..checks import fail

PRECISION_BITS = 22  # Pillow: 32 - 8 - 2
F32_EXACT = 2 ** 24  # float32 holds every integer below this exactly


PILLOW_13 = int(PIL.__version__.split(".")[0]) >= 13


def vertical_first(in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Whether the installed Pillow resizes ``in`` -> ``out`` with the vertical pass first."""
    return PILLOW_13 and in_h - out_h > 2 * max(in_w - out_w, 0)


def _sinc(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        px = x * math.pi
        return np.where(x == 0.0, 1.0, np.sin(px) / px)


def _lanczos(x: np.ndarray) -> np.ndarray:
    return np.where((x >= -3.0) & (x < 3.0), _sinc(x) * _sinc(x / 3.0), 0.0)


@lru_cache(maxsize=64)
def pil_coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for LANCZOS over the whole axis.

    Returns:
        ``xmin`` (first input index per output), ``count`` (taps used) and ``k`` ``[out_size, ksize]``:
        int64 fixed-point weights (22 fractional bits), zero past ``count``.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)  # C's (int) truncates
    count = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    w = _lanczos((taps[None, :] + xmin[:, None] - center[:, None] + 0.5) * (1.0 / filterscale))
    w = np.where(taps[None, :] < count[:, None], w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total != 0.0, w / np.where(total == 0.0, 1.0, total), w)
    one = float(1 << PRECISION_BITS)
    k = np.where(w < 0, np.trunc(-0.5 + w * one), np.trunc(0.5 + w * one)).astype(np.int64)
    return xmin, count, k


@lru_cache(maxsize=64)
def _banded_plan(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Blocks of outputs and the contiguous input window each block reads.

    Returns ``index`` ``[blocks * window]`` (input rows to gather), ``weights`` int64
    ``[blocks, block, window]``, the block size and ``split``: the number of low bits that go into the
    second float32 half (0 when float32 cannot hold the sums exactly: use float64).
    """
    xmin, count, k = pil_coefficients(in_size, out_size)
    ksize = k.shape[1]
    block = int(min(128, max(8, round(2 * ksize / max(in_size / out_size, 1e-6)))))  # window ~ 3 * taps
    nb = -(-out_size // block)
    first = np.arange(nb) * block
    starts = xmin[first]
    ends = np.maximum.reduceat(xmin + count, first)
    window = min(int((ends - starts).max()), in_size)
    starts = np.minimum(starts, in_size - window)  # keep every window inside the input
    index = (starts[:, None] + np.arange(window)[None, :]).reshape(-1)
    weights = np.zeros((nb, block, window), np.int64)
    for i in range(out_size):
        j, b = divmod(i, block)
        off = xmin[i] - starts[j]
        weights[j, b, off:off + count[i]] = k[i, :count[i]]
    return index, weights, block, _split_bits(weights)


def _split_bits(weights: np.ndarray) -> int:
    """Low bits for the two-half float32 product, or 0 when no split keeps both sums below 2**24."""
    for bits in range(11, 2, -1):
        hi, lo = weights >> bits, weights & ((1 << bits) - 1)
        if 255 * np.abs(hi).sum(-1).max() < F32_EXACT and 255 * lo.sum(-1).max() < F32_EXACT:
            return bits
    return 0


@lru_cache(maxsize=64)
def _weights_on(in_size: int, out_size: int, device: torch.device, use_f32: bool) -> tuple[Tensor, Tensor, int, int]:
    index, weights, block, bits = _banded_plan(in_size, out_size)
    idx = torch.from_numpy(index).to(device)
    if use_f32 and bits:
        hi, lo = weights >> bits, weights & ((1 << bits) - 1)
        w = torch.from_numpy(np.concatenate([hi, lo], axis=1)).to(device, torch.float32)  # [nb, 2*block, win]
    else:
        bits = 0
        w = torch.from_numpy(weights).to(device, torch.float64)
    return idx, w, block, bits


def _use_float32(device: torch.device) -> bool:
    """float32 halves on the CPU at full matmul precision; float64 on GPUs (TF32 would round the halves)."""
    return device.type == "cpu" and torch.get_float32_matmul_precision() == "highest"


CHUNK_BYTES = 64 << 20  # working set of one slice of a pass (a 48 MP photo's passes took ~1 GB in one go)


def _resample_leading(x: Tensor, out_size: int, unit: bool = False) -> Tensor:
    """Resample dim 0 of ``x`` ``[N, ...]`` (8-bit values; 0..1 floats if ``unit``) -> float32 ``[out_size, ...]``.

    Slice by slice along the largest other dim, each slice's temporaries within :data:`CHUNK_BYTES`: the
    columns are independent and the sums exact integers, so the result does not depend on the slicing.
    """
    n, rest = x.shape[0], x.shape[1:]
    plan = _weights_on(n, out_size, x.device, _use_float32(x.device))
    w = plan[1]
    out = torch.empty((out_size, *rest), dtype=torch.float32, device=x.device)
    if not rest or x.numel() == 0:
        return out.copy_(_resample_slice(x, out_size, unit, plan))
    dim = 1 + max(range(len(rest)), key=lambda i: rest[i])
    per_index = x.numel() // (n * x.shape[dim])  # elements of one index along dim, per input row
    rows = n + w.shape[0] * (w.shape[2] + 3 * w.shape[1])  # src, gathered, sums and total, per column
    step = max(1, CHUNK_BYTES // (rows * per_index * w.element_size()))
    for start in range(0, x.shape[dim], step):
        part = x.narrow(dim, start, min(step, x.shape[dim] - start))
        out.narrow(dim, start, part.shape[dim]).copy_(_resample_slice(part, out_size, unit, plan))
    return out


def _resample_slice(x: Tensor, out_size: int, unit: bool, plan: tuple[Tensor, Tensor, int, int]) -> Tensor:
    """One slice of :func:`_resample_leading`: integer values ``[out_size, ...]``."""
    n, rest = x.shape[0], x.shape[1:]
    idx, w, block, bits = plan
    nb, window = w.shape[0], w.shape[2]
    src = torch.empty(x.shape, dtype=w.dtype, device=x.device)
    src.copy_(x)  # one pass: transpose into rows and convert
    if unit:
        src.clamp_(0, 1).mul_(255).round_()  # the 8-bit image rembg would receive (round half to even)
    gathered = src.view(n, -1).index_select(0, idx).view(nb, window, -1)  # [blocks, window, N]
    sums = torch.bmm(w, gathered)  # [blocks, block (x2), N]: exact integer sums
    if bits:  # hi * 2**bits + lo in int32, as Pillow accumulates
        sums = sums.view(nb, 2, block, -1)
        total = sums[:, 0].to(torch.int32).bitwise_left_shift_(bits).add_(sums[:, 1].to(torch.int32))
    else:
        total = sums.to(torch.int64)
    out = total.reshape(nb * block, -1)[:out_size]
    # Pillow: clip8((2**21 + s) >> 22); >> is an arithmetic shift (floor)
    out = out.add_(1 << (PRECISION_BITS - 1)).bitwise_right_shift_(PRECISION_BITS).clamp_(0, 255)
    return out.view(out_size, *rest)


FLOAT64_DEVICES = ("cpu", "cuda")  # device types with float64 (ROCm reports "cuda"); MPS and many XPUs lack it


def exact_device(device: torch.device) -> torch.device:
    """Where Pillow-exact integer arithmetic can run for ``device``: itself, or the CPU for a device without
    float64 (Apple MPS; Intel XPUs without fp64), whose float32 matmuls would round the sums."""
    return device if device.type in FLOAT64_DEVICES else torch.device("cpu")


def resize_uint8(x: Tensor, height: int, width: int, unit: bool = False) -> Tensor:
    """``PIL.Image.resize((width, height), Image.LANCZOS)`` on 8-bit images, for a whole batch.

    Args:
        x: ``[B, H, W, C]`` (or ``[B, H, W]``) float tensor holding 8-bit values 0..255, or, with
            ``unit``, an IMAGE in 0..1 (clamped, scaled and rounded to 8 bits first, as ``to_uint8``).
        height, width: output size.
    Returns:
        ``[B, height, width, C]`` (or ``[B, height, width]``) float32 holding integers 0..255, equal to
        Pillow's result; on ``x.device``.
    """
    if height < 1 or width < 1:
        fail("size", f"expected a positive size, got {width}x{height}.")
    if exact_device(x.device) != x.device:  # no float64 there: the exact sums run on the CPU, one round trip
        return resize_uint8(x.cpu(), height, width, unit).to(x.device)
    if x.device.type == "cpu" and x.shape[0] > 1:
        # on the CPU one image at a time stays in cache: 3x faster than one pass over a 1024^2 x 8 batch
        return torch.cat([resize_uint8(x[i:i + 1], height, width, unit) for i in range(x.shape[0])])
    squeeze = x.ndim == 3
    if squeeze:
        x = x.unsqueeze(-1)
    in_h, in_w = x.shape[1:3]
    if in_h == height and in_w == width:
        out = x.to(torch.float32, copy=True)
        out = out.clamp_(0, 1).mul_(255).round_() if unit else out
        return out.squeeze(-1) if squeeze else out
    out = x.permute(1, 0, 2, 3)  # [H, B, W, C]: each pass resamples dim 0
    if vertical_first(in_h, in_w, height, width):
        out = _resample_leading(out, height, unit) if in_h != height else out
        out = out.permute(2, 1, 0, 3)  # [W, B, H', C]
        out = _resample_leading(out, width, unit and in_h == height) if in_w != width else out
        out = out.permute(1, 2, 0, 3)  # [B, H', W', C]
    else:
        out = out.permute(2, 1, 0, 3)  # [W, B, H, C]
        out = _resample_leading(out, width, unit) if in_w != width else out
        out = out.permute(2, 1, 0, 3)  # [H, B, W', C]
        out = _resample_leading(out, height, unit and in_w == width) if in_h != height else out
        out = out.permute(1, 0, 2, 3)  # [B, H', W', C]
    out = out.contiguous()  # float32 already; a copy only when the last permute leaves it strided
    return out.squeeze(-1) if squeeze else out
