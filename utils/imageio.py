"""Reading image files for the command line: many formats and bit depths, grouped into batches."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from .bridges import np2tensor

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def collect_inputs(patterns: Iterable[str]) -> list[Path]:
    """Files, folders (their image files, sorted) and globs -> unique paths, in the order given."""
    found: list[Path] = []
    for pattern in patterns:
        p = Path(pattern)
        if p.is_dir():
            found += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in EXTENSIONS)
        elif p.is_file():
            found.append(p)
        else:
            found += sorted(Path(m) for m in glob.glob(pattern, recursive=True) if os.path.isfile(m))
    unique = dict.fromkeys(f.resolve() for f in found)
    return list(unique)


def read_image(path: Path) -> Tensor:
    """One file -> IMAGE ``[1,H,W,3|4]`` float32; 16-bit files keep their precision, alpha is kept.

    Raises ``ValueError`` naming the file when it cannot be decoded.
    """
    data = np.fromfile(path, dtype=np.uint8)
    # JPEGs: IMREAD_COLOR applies the EXIF orientation; others: UNCHANGED keeps alpha and 16 bits.
    flags = cv2.IMREAD_COLOR if path.suffix.lower() in (".jpg", ".jpeg") else cv2.IMREAD_UNCHANGED
    arr = cv2.imdecode(data, flags) if data.size else None
    if arr is None:
        raise ValueError(f"{path}: not a readable image (corrupt, empty or unsupported format).")
    if arr.ndim == 2:
        arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    elif arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    else:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if arr.dtype not in (np.uint8, np.uint16):
        arr = arr.astype(np.float32) / max(float(arr.max()), 1.0)
    return np2tensor(arr)


def batches(paths: list[Path], batch_size: int) -> Iterator[tuple[list[Path], Tensor | None, list[str]]]:
    """Read files and yield ``(paths, batch, errors)`` with same-size, same-channel images stacked.

    Images are grouped by (height, width, channels) in first-seen order, ``batch_size`` at a time;
    unreadable files come back as error lines with an empty batch. At most ``4 * batch_size`` images
    wait in memory for company of their size; past that the oldest group goes out early.
    """
    groups: dict[tuple, list[tuple[Path, Tensor]]] = {}
    for path in paths:
        try:
            image = read_image(path)
        except (ValueError, OSError) as exc:
            yield [path], None, [str(exc)]
            continue
        key = tuple(image.shape[1:])
        groups.setdefault(key, []).append((path, image))
        if len(groups[key]) == batch_size:
            group = groups.pop(key)
            yield [p for p, _ in group], torch.cat([t for _, t in group]), []
        elif sum(map(len, groups.values())) > 4 * batch_size:  # many sizes: bound what is held in memory
            group = groups.pop(next(iter(groups)))
            yield [p for p, _ in group], torch.cat([t for _, t in group]), []
    for group in groups.values():
        yield [p for p, _ in group], torch.cat([t for _, t in group]), []
