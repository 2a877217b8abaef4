"""Refine Mask and Composite on Background against what users run today, timed in one run, ratios printed.

    python benchmarks/bench_masks.py [--size 1024] [--batch 8] [--repeat 3] [--memory] [--quick]

1. grow r=32, binary masks: Refine Mask against core GrowMask's method (a 3x3 grey dilation repeated once per
   pixel of radius, scipy, mask by mask; reimplemented from its description: cross-shaped footprint, as its
   default ``tapered_corners``) and against ``cv2.dilate`` with the same elliptical kernel, mask by mask.
   Issue #14's targets: >= 10x the core method and >= 1x the OpenCV loop. Soft masks too (grey dilation).
2. fill holes against ``scipy.ndimage.binary_fill_holes`` mask by mask; remove islands (< 64 px) against
   ``cv2.connectedComponentsWithStats`` mask by mask. Target >= 1x.
3. Composite on an image background against a Pillow loop (tensor -> RGBA images, ``Image.alpha_composite``,
   -> tensor), what a PIL-based node does. Target >= 2x.
4. Flicker (mean |m[t] - m[t-1]|) of masks of a still scene with per-frame sensor noise, before and after the
   temporal step: u2netp's masks of 16 noisy copies of a photo when the model is installed, else a synthetic
   soft mask with noise.
5. ``--memory``: peak memory of Refine Mask (every step on) and of Composite at 1024² x 64, against the output's
   own size: chunking bounds the rest to one chunk's working set.

Masks are synthetic shapes with known holes and specks (``masks``); photos are scikit-image's. CPU unless
``--device cuda``. Best of ``--repeat`` runs, one warm-up.
"""

from __future__ import annotations

import importlib
import os

import cv2
import numpy as np
import scipy.ndimage as ndi
import torch
from common import PeakMemory, load_pack, photo_batch, print_table, timeit

PACK = load_pack()
mk = importlib.import_module(PACK.__name__ + ".utils.masks")
cp = importlib.import_module(PACK.__name__ + ".utils.composite")


def masks(batch: int, size: int, soft: bool = False) -> torch.Tensor:
    """Subject-like binary masks: a body (ellipse), a head, a hole, 40 specks of 1-50 px; blurred when soft."""
    rng = np.random.default_rng(14)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(batch):
        cx = 0.5 + 0.05 * np.sin(i)
        m = (((xx - cx) / 0.25) ** 2 + ((yy - 0.65) / 0.3) ** 2 < 1) | (np.hypot(xx - cx, yy - 0.28) < 0.13)
        m &= ~(np.hypot(xx - cx - 0.08, yy - 0.6) < 0.04)  # a hole (a gap under an arm)
        for _ in range(40):
            y, x, r = rng.integers(0, size - 8, 2).tolist() + [int(rng.integers(1, 5))]
            m[y:y + r, x:x + r] = ~m[y:y + r, x:x + r]
        m = m.astype(np.float32)
        out.append(np.clip(ndi.gaussian_filter(m, 2.0), 0, 1) if soft else m)
    return torch.from_numpy(np.stack(out))


def core_grow_mask(batch: torch.Tensor, expand: int) -> torch.Tensor:
    footprint = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)  # tapered_corners=True
    out = []
    for m in batch.numpy():
        for _ in range(expand):
            m = ndi.grey_dilation(m, footprint=footprint)
        out.append(torch.from_numpy(m))
    return torch.stack(out)


def cv2_loop(batch: torch.Tensor, r: int, binary: bool) -> torch.Tensor:
    """``cv2.dilate`` mask by mask; binary masks as 0/255 bytes (OpenCV's fastest path), soft ones as float32."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    if binary:
        return torch.stack([torch.from_numpy(cv2.dilate((m * 255).astype(np.uint8), kernel)).float() / 255
                            for m in batch.numpy()])
    return torch.stack([torch.from_numpy(cv2.dilate(m, kernel)) for m in batch.numpy()])


def scipy_fill_loop(batch: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.from_numpy(ndi.binary_fill_holes(m > 0.5).astype(np.float32)) for m in batch.numpy()])


def cv2_islands_loop(batch: torch.Tensor, n: int) -> torch.Tensor:
    """Pieces under ``n`` px dropped and holes under ``n`` px filled, as remove_islands does with fill_holes off."""
    out = []
    for m in batch.numpy():
        on = (m > 0.5).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(on, connectivity=8)
        keep = stats[:, cv2.CC_STAT_AREA] >= n
        keep[0] = False
        count, holes, stats, _ = cv2.connectedComponentsWithStats(1 - on, connectivity=4)
        small = stats[:, cv2.CC_STAT_AREA] < n
        small[0] = False
        for edge in (holes[0], holes[-1], holes[:, 0], holes[:, -1]):
            small[edge] = False
        out.append(torch.from_numpy((keep[labels] | small[holes]).astype(np.float32)))
    return torch.stack(out)


def pil_composite_loop(fg: torch.Tensor, mask: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    from PIL import Image

    background = Image.fromarray((bg[0].numpy() * 255 + 0.5).astype(np.uint8)).convert("RGBA")
    out = []
    for rgb, a in zip(fg.numpy(), mask.numpy(), strict=True):
        rgba = np.dstack((rgb, a))
        im = Image.fromarray((rgba * 255 + 0.5).astype(np.uint8), "RGBA")
        done = Image.alpha_composite(background, im).convert("RGB")
        out.append(torch.from_numpy(np.asarray(done, dtype=np.float32) / 255))
    return torch.stack(out)


def speed(args, device: torch.device) -> list[dict]:
    n, size = args.batch, args.size
    binary, soft = masks(n, size), masks(n, size, soft=True)
    fg, bg = photo_batch(n, size), photo_batch(1, size).flip(2)
    alpha = masks(n, size, soft=True)
    on = {"binary": binary.to(device), "soft": soft.to(device)}
    cases = [
        ("grow r=32, binary: vs core GrowMask method", lambda: mk.refine_mask(on["binary"], mk.MaskOptions(grow=32)),
         lambda: core_grow_mask(binary, 32)),
        ("grow r=32, binary: vs cv2.dilate loop", lambda: mk.refine_mask(on["binary"], mk.MaskOptions(grow=32)),
         lambda: cv2_loop(binary, 32, True)),
        ("grow r=32, soft: vs cv2.dilate loop", lambda: mk.refine_mask(on["soft"], mk.MaskOptions(grow=32)),
         lambda: cv2_loop(soft, 32, False)),
        ("grow r=8, binary: vs core GrowMask method", lambda: mk.refine_mask(on["binary"], mk.MaskOptions(grow=8)),
         lambda: core_grow_mask(binary, 8)),
        ("fill holes: vs scipy loop", lambda: mk.refine_mask(on["binary"], mk.MaskOptions(fill_holes=True)),
         lambda: scipy_fill_loop(binary)),
        ("remove islands < 64 px (and holes): vs cv2 loop",
         lambda: mk.refine_mask(on["binary"], mk.MaskOptions(remove_islands=64)), lambda: cv2_islands_loop(binary, 64)),
        ("composite on an image: vs PIL loop",
         lambda: cp.composite(fg.to(device), cp.CompositeOptions(background="image"), alpha.to(device), bg.to(device)),
         lambda: pil_composite_loop(fg, alpha, bg)),
    ]
    rows = []
    for name, ours, theirs in cases:
        ours_s, peak = timeit(ours, device, args.repeat)
        theirs_s, _ = timeit(theirs, torch.device("cpu"), args.repeat)
        out = ours()
        rows.append({"case": name, "ours_s": ours_s, "theirs_s": theirs_s, "images": n, "peak_mb": peak / 2**20,
                     "output_mb": out.numel() * out.element_size() / 2**20})
    return rows


def still_scene_masks(frames: int, size: int) -> tuple[torch.Tensor, str]:
    """Masks of ``frames`` noisy copies of one photo: u2netp's when installed, else a noisy synthetic mask."""
    rng = np.random.default_rng(3)
    photo = photo_batch(1, size)[0]
    noisy = (photo + torch.from_numpy(rng.normal(0, 4 / 255, (frames, *photo.shape)).astype(np.float32))).clamp(0, 1)
    try:
        rb = importlib.import_module(PACK.__name__ + ".utils.rembg")
        got = rb.remove_background(noisy, rb.RembgOptions(model="u2netp"))
        return got[1], f"u2netp masks of {frames} copies of a {size}² photo with sensor noise (sigma 4/255)"
    except Exception as exc:  # no model installed: a synthetic stand-in, said in the output
        base = masks(1, size, soft=True)
        jitter = torch.from_numpy(rng.normal(0, 0.05, (frames, size, size)).astype(np.float32))
        return (base + jitter * (base > 0.05) * (base < 0.95)).clamp(0, 1), f"synthetic soft masks ({exc!s:.60})"


def flicker(args) -> None:
    frames, what = still_scene_masks(16, min(args.size, 512))
    print(f"\nFlicker on a still scene: {what}")
    print("| temporal | flicker mean abs(m[t] - m[t-1]) | reduction | mean abs change of the mask |")
    print("|---:|---:|---:|---:|")
    before = mk.flicker(frames)
    for weight in (0.0, 0.3, 0.5, 0.7, 0.9):
        out = mk.refine_mask(frames, mk.MaskOptions(temporal=weight))
        print(f"| {weight} | {mk.flicker(out):.5f} | {before / max(mk.flicker(out), 1e-12):.1f}x | "
              f"{float((out - frames).abs().mean()):.5f} |")


def memory(device: torch.device) -> None:
    """Peak memory above the inputs at 1024² x 16 and x 64: the part above the output must not grow with the batch."""
    size = 1024
    every = mk.MaskOptions(grow=16, fill_holes=True, remove_islands=64, smooth=2.0, feather=8)
    print(f"\nPeak memory at {size}² ({device}), above the inputs:")
    print("| node | batch | peak MB | output MB | peak - output MB |")
    print("|---|---:|---:|---:|---:|")
    bg = photo_batch(1, size).to(device)
    for n in (16, 64):
        m = masks(n, size).to(device)
        fg = photo_batch(4, size).repeat(n // 4, 1, 1, 1).to(device)
        runs = (("Refine Mask, every step", lambda m=m: mk.refine_mask(m, every)),
                ("Composite on an image", lambda m=m, fg=fg: cp.composite(fg, cp.CompositeOptions(background="image"),
                                                                          m, bg)))
        for name, fn in runs:
            with PeakMemory(device) as mem:
                out = fn()
            out_mb = out.numel() * out.element_size() / 2**20
            del out
            print(f"| {name} | {n} | {mem.peak / 2**20:.0f} | {out_mb:.0f} | {mem.peak / 2**20 - out_mb:.0f} |")
        del m, fg, runs


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--memory", action="store_true", help="also measure peak memory at 1024² x 64")
    p.add_argument("--quick", action="store_true", help="256² x 2, for a smoke run")
    args = p.parse_args()
    if args.quick:
        args.size, args.batch, args.repeat = 256, 2, 1
    device = torch.device(args.device)
    print(f"device {device}, {args.batch} masks of {args.size}², {os.cpu_count()} CPU threads, best of {args.repeat}")
    print_table(speed(args, device))
    flicker(args)
    if args.memory:
        memory(device)


if __name__ == "__main__":
    main()
