"""Benchmark helpers: load the pack by path, time a function, sample peak memory, print a table.

Each benchmark times CleanCut and the approach users run today *in the same run* and prints the ratio.
Numbers are for reading, never for asserting.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the pack loader and the WAS reference are shared with the tests

from packloader import load_pack  # noqa: E402,F401  (re-exported for the benchmark scripts)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory above the level at entry: CUDA allocator stats on a GPU, sampled RSS on the CPU."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._base, self._stop = _rss(), threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss() - self._base)
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss() - self._base)


def timeit(fn: Callable[[], object], device: torch.device, repeat: int = 3) -> tuple[float, int]:
    """Best wall time in seconds over ``repeat`` runs (after one warm-up) and the peak memory of one run."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    with PeakMemory(device) as mem:
        fn()
    return best, mem.peak


def photo_batch(batch: int, size: int, channels: int = 3, device: str | torch.device = "cpu") -> torch.Tensor:
    """A ``[batch, size, size, channels]`` IMAGE batch of real photos (scikit-image samples, resized)."""
    from PIL import Image
    from skimage import data

    names = ["astronaut", "chelsea", "coffee", "rocket"]
    imgs = []
    for i in range(batch):
        im = Image.fromarray(getattr(data, names[i % len(names)])()).convert("RGBA" if channels == 4 else "RGB")
        imgs.append(torch.from_numpy(np.array(im.resize((size, size), Image.LANCZOS))))
    return (torch.stack(imgs).float() / 255.0).to(device)


def arguments(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--memory", action="store_true", help="also measure peak memory at 1024²×32")
    return p.parse_args()


def print_table(rows: list[dict]) -> None:
    """Rows with keys case, ours_s, theirs_s, images, peak_mb, output_mb -> a Markdown table."""
    print("| case | CleanCut ms/img | loop ms/img | speed-up | CleanCut peak MB | output MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        n = r["images"]
        print(f"| {r['case']} | {1000 * r['ours_s'] / n:.1f} | {1000 * r['theirs_s'] / n:.1f} | "
              f"{r['theirs_s'] / r['ours_s']:.2f}x | {r['peak_mb']:.0f} | {r['output_mb']:.0f} |")
