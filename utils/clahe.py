"""CLAHE on lightness, as OpenCV computes it: batched in torch (any device) or OpenCV per image (CPU).

Both backends follow the usual OpenCV recipe on 8-bit data: RGB -> CIELAB, ``createCLAHE`` on L, back to
RGB. The torch backend reproduces OpenCV step by step: its fixed-point 8-bit RGB -> Lab (so the histogram
bins are the reference's bins), the per-tile clipped histograms and LUTs of ``CLAHE_CalcLut_Body`` and the
bilinear blend of ``CLAHE_Interpolation_Body``. Only the way back to RGB differs: it is done in float, so
the output is not re-quantised to 8 bits (within one level of OpenCV's 8-bit conversion).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache

import cv2
import numpy as np
import torch
from torch import Tensor

from .bridges import to_uint8
from .checks import check_image, check_number
from .color import lab_to_rgb, on_rgb
from .kernels import mirror_index
from .runtime import pick_backend

BINS = 256  # 8-bit histograms, as OpenCV's CLAHE on CV_8UC1
MAX_CLIP_LIMIT = 100.0  # a cap at 100x the mean bin rarely bites already; from 256 on it never does
MAX_TILE_GRID = 64
OPENCV_WORKERS = 4  # images in flight in the OpenCV backend (measured on 2 cores: 4 > 2 > 1 at 1024x1024)

# OpenCV's RGB2Lab_b constants: round(2**12 * sRGB->XYZ row / D65 white) and the L scale/offset in Q15.
_LAB_COEFFS = ((1777, 1541, 778), (871, 2929, 296), (73, 448, 3575))
_LSCALE, _LSHIFT = (116 * 255 + 50) // 100, -((16 * 255 * (1 << 15) + 50) // 100)


def clahe(image: Tensor, clip_limit: float = 2.0, tile_grid: int = 8, backend: str = "auto") -> Tensor:
    """Contrast Limited Adaptive Histogram Equalisation of lightness (CIELAB L), keeping hue.

    Matches ``cv2.createCLAHE(clip_limit, (tile_grid, tile_grid)).apply`` on the L channel of the 8-bit
    image (``cv2.cvtColor`` RGB -> Lab -> RGB) to within one level on almost every value.

    Args:
        image: IMAGE batch, shape (B, H, W, 3 or 4), values in [0, 1] (values outside are clamped first).
            Any size: like OpenCV, tiles cover the image padded (mirrored) to a multiple of ``tile_grid``.
        clip_limit: 0.01..100, OpenCV's meaning: each histogram bin is capped at ``clip_limit`` times the
            bin average of its tile. Higher gives stronger local contrast (and more noise).
        tile_grid: 1..64 tiles per side. More tiles make the equalisation more local.
        backend: ``"auto"`` (OpenCV when ``image`` is on the CPU, torch elsewhere), ``"torch"`` or
            ``"native"`` (OpenCV); the ``CLEANCUT_BACKEND`` environment variable can force the choice for ``"auto"``.
    Returns:
        New tensor with the shape, dtype and device of ``image``; alpha passed through untouched.
    Raises:
        ValueError: if ``image`` is not a finite IMAGE batch, or a parameter is out of range.
    """
    check_image(image, "image")
    check_number(clip_limit, "clip_limit", low=0.01, high=MAX_CLIP_LIMIT)
    check_number(tile_grid, "tile_grid", low=1, high=MAX_TILE_GRID, integer=True)
    return clahe_core(image, clip_limit, tile_grid, backend)


def clahe_core(image: Tensor, clip_limit: float = 2.0, tile_grid: int = 8, backend: str = "auto") -> Tensor:
    """:func:`clahe` without the checks, for callers that checked the batch and settings once."""
    run = _clahe_opencv if pick_backend(image.device, backend) == "native" else _clahe_torch
    return on_rgb(image, lambda rgb: run(rgb, float(clip_limit), tile_grid))


def _clahe_opencv(rgb: Tensor, clip_limit: float, tile_grid: int) -> Tensor:
    """The reference itself: ``[B,H,W,3]`` -> ``[B,H,W,3]`` through cv2 on 8-bit images."""
    out = torch.from_numpy(np.empty(rgb.shape, np.float32))  # NumPy's huge pages; each image lands in its slice
    out_np = out.numpy()  # workers write through NumPy: ComfyUI's inference mode does not reach their threads

    def one(i: int) -> None:
        src = to_uint8(rgb[i])  # [H,W,3] uint8, rounded to nearest as the reference does
        lab = cv2.cvtColor(src, cv2.COLOR_RGB2LAB)
        # A CLAHE object keeps scratch buffers, so each image (thread) gets its own; creating one is free.
        lab[..., 0] = cv2.createCLAHE(clip_limit, (tile_grid, tile_grid)).apply(lab[..., 0])
        rgb8 = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB, dst=src)
        np.divide(rgb8, np.float32(255.0), out=out_np[i])  # one pass, no per-image tensor to stack

    # OpenCV's CLAHE takes one single-channel 2-D image, which forces a per-image loop. A few images in
    # flight overlap the single-threaded NumPy rounding of one with OpenCV's own threads on another.
    with ThreadPoolExecutor(max_workers=min(rgb.shape[0], OPENCV_WORKERS)) as pool:
        list(pool.map(one, range(rgb.shape[0])))  # list(): re-raises a worker's exception here
    return out.to(rgb.device, rgb.dtype)


def _clahe_torch(rgb: Tensor, clip_limit: float, tile_grid: int) -> Tensor:
    """Fully batched CLAHE: ``[B,H,W,3]`` -> ``[B,H,W,3]`` on ``rgb.device``."""
    codes = rgb.float().clamp(0, 1).mul_(255).round_().long()  # [B,H,W,3] the reference's 8-bit input
    light, a, b = _rgb_to_lab8(codes)  # each [B,H,W] int32 in 0..255
    del codes
    light = _equalize(light, clip_limit, tile_grid)  # [B,H,W] float32, whole levels 0..255
    lab = torch.stack([light.mul_(100 / 255), a.float().sub_(128), b.float().sub_(128)], dim=-1)  # [B,H,W,3]
    del light, a, b
    out = torch.empty(rgb.shape, dtype=rgb.dtype, device=rgb.device)
    for i in range(lab.shape[0]):
        # Back to RGB one image at a time: bounds the float conversion's temporaries to one image, and keeps
        # each result independent of the batch size (BLAS blocks a batched matmul differently: last-bit noise).
        out[i] = lab_to_rgb(lab[i])
    return out


def _lookup(table: Tensor, index: Tensor) -> Tensor:
    """``table[index]`` for a 1-D table and an integer index of any shape (index_select: fastest on CPU)."""
    return table.index_select(0, index.flatten().long()).view(index.shape)


@cache
def _lab8_tables(device: torch.device) -> tuple[Tensor, Tensor]:
    """OpenCV's ``sRGBGammaTab_b`` (256 codes -> linear * 2040) and ``LabCbrtTab_b`` (3072 -> f(t) * 2**15).

    Built as ``initLabTabs`` builds them, in float32 with the same rounding; verified equal to OpenCV's
    8-bit ``RGB2LAB`` on all 2**24 colours.
    """
    f32 = torch.float32
    x = torch.arange(256, dtype=f32) / torch.full((256,), 255.0, dtype=f32)  # softfloat(i) / 255
    xd = x.double()
    lin = torch.where(xd <= 809 / 20000, xd / (323 / 25), ((xd + 11 / 200) / (1 + 11 / 200)).pow(12 / 5))
    gamma = (lin.float() * 2040).round_().to(torch.int32)

    step = torch.tensor(1.0, dtype=f32) / torch.tensor(2040.0, dtype=f32)
    t = (torch.arange(256 * 3 // 2 * 8, dtype=f32) * step).double()
    lthresh = torch.tensor(216.0, dtype=f32) / torch.tensor(24389.0, dtype=f32)
    lscale = (torch.tensor(841.0, dtype=f32) / torch.tensor(108.0, dtype=f32)).double()
    lbias = (torch.tensor(16.0, dtype=f32) / torch.tensor(116.0, dtype=f32)).double()
    f = torch.where(t < lthresh.double(), t * lscale + lbias, t.pow(1 / 3)).float()  # fused mul-add, cbrt
    cbrt = (f * 32768).round_().to(torch.int32)
    # OpenCV's softfloat cbrt lands one ulp low at t = 324/2040, where the exact value * 2**15 rounds to
    # 17745.5 (ties to even: 17746); OpenCV stores 17745. Keep its value so L, a, b match bit for bit.
    cbrt[324] = 17745
    return gamma.to(device), cbrt.to(device)


def _rgb_to_lab8(codes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """8-bit RGB codes ``[..., 3]`` int -> OpenCV 8-bit L, a, b ``[...]`` int32, fixed point as ``RGB2Lab_b``."""
    gamma, cbrt = _lab8_tables(codes.device)
    red, green, blue = _lookup(gamma, codes).unbind(-1)  # linear light * 2040, int32
    fx, fy, fz = (_lookup(cbrt, (red * c0 + green * c1 + blue * c2 + (1 << 11)) >> 12) for c0, c1, c2 in _LAB_COEFFS)
    light = (fy * _LSCALE + (_LSHIFT + (1 << 14))) >> 15
    a = ((fx - fy) * 500 + ((128 << 15) + (1 << 14))) >> 15
    b = ((fy - fz) * 200 + ((128 << 15) + (1 << 14))) >> 15
    return light.clamp_(0, 255), a.clamp_(0, 255), b.clamp_(0, 255)


def _tile_luts(light: Tensor, clip_limit: float, tiles: int) -> tuple[Tensor, int, int]:
    """Clipped, equalising LUTs of every tile: ``[B,H,W]`` levels -> ``[B*tiles*tiles*256]`` float32 0..255.

    Also returns the tile height and width. Mirrors ``CLAHE_Impl::apply`` and ``CLAHE_CalcLut_Body``.
    """
    n, h, w = light.shape
    if h % tiles or w % tiles:
        # OpenCV pads bottom and right by ``tiles - size % tiles`` on *both* axes as soon as either one is
        # not divisible (a whole extra tile's worth on the divisible one); tile sizes follow from that.
        dev = light.device
        rows, cols = (mirror_index(n, 0, tiles - n % tiles, False, dev) for n in (h, w))  # reflect-101
        light = light[:, rows][:, :, cols]
    th, tw = light.shape[1] // tiles, light.shape[2] // tiles
    area = th * tw
    # Histograms of all tiles of all images in one bincount: bin = (tile id) * 256 + level.
    tile_id = torch.arange(n * tiles * tiles, device=light.device).view(n, tiles, 1, tiles, 1)
    index = light.view(n, tiles, th, tiles, tw) + tile_id * BINS  # [B,ty,th,tx,tw] int64
    hist = torch.bincount(index.flatten(), minlength=n * tiles * tiles * BINS).view(-1, BINS)
    del index
    # Clip each bin at the limit, spread the excess evenly, then the remainder one count every `step` bins.
    limit = max(int(clip_limit * area / BINS), 1)
    excess = (hist - limit).clamp_(min=0).sum(dim=1, keepdim=True)  # [T,1]
    batch, residual = excess // BINS, excess % BINS
    step = (BINS // residual.clamp(min=1)).clamp_(min=1)
    bins = torch.arange(BINS, device=light.device)
    extra = (residual > 0) & (bins % step == 0) & (bins // step < residual)
    hist = hist.clamp_(max=limit).add_(batch).add_(extra)
    # LUT = saturate(cdf * (255 / area)) in float32 with round-half-even, as cv::saturate_cast<uchar>.
    scale = torch.tensor(BINS - 1, dtype=torch.float32) / area
    lut = hist.cumsum(dim=1).float().mul_(scale.to(light.device)).round_().clamp_(0, 255)
    return lut.flatten(), th, tw


def _axis_weights(size: int, tile: int, tiles: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Per row (or column): first and second tile index and the second tile's weight, as OpenCV (float32)."""
    inv = torch.tensor(1.0, dtype=torch.float32) / tile
    pos = torch.arange(size, dtype=torch.float32) * inv - 0.5
    first = pos.floor()
    weight = pos - first
    first = first.long()
    return first.clamp(min=0).to(device), (first + 1).clamp(max=tiles - 1).to(device), weight.to(device)


def _equalize(light: Tensor, clip_limit: float, tiles: int) -> Tensor:
    """CLAHE of 8-bit lightness ``[B,H,W]`` int -> ``[B,H,W]`` float32 whole levels, bit-exact to OpenCV."""
    n, h, w = light.shape
    dev = light.device
    light = light.long()  # int64: bincount and take index with it
    lut, th, tw = _tile_luts(light, clip_limit, tiles)
    y1, y2, ya = _axis_weights(h, th, tiles, dev)
    x1, x2, xa = _axis_weights(w, tw, tiles, dev)
    # Gather the 4 neighbouring tiles' LUT entries per pixel (no per-pixel 256-bin tensors): the flat index
    # is image offset + row-of-tiles offset + tile-column offset + level.
    base = light + torch.arange(n, device=dev).view(n, 1, 1) * (tiles * tiles * BINS)  # [B,H,W]
    del light
    r1, r2 = (y1 * (tiles * BINS)).view(h, 1), (y2 * (tiles * BINS)).view(h, 1)
    c1, c2 = (x1 * BINS).view(1, w), (x2 * BINS).view(1, w)
    xa1, xa = (1 - xa).view(1, w), xa.view(1, w)
    ya1, ya = (1 - ya).view(h, 1), ya.view(h, 1)
    # Same operation order as CLAHE_Interpolation_Body, so float32 rounding agrees.
    top = lut.take(base + (r1 + c1)).mul_(xa1).add_(lut.take(base + (r1 + c2)).mul_(xa))
    bottom = lut.take(base + (r2 + c1)).mul_(xa1).add_(lut.take(base + (r2 + c2)).mul_(xa))
    return top.mul_(ya1).add_(bottom.mul_(ya)).round_().clamp_(0, 255)
