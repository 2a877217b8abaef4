"""Lossless saving of a cut-out set: one stem per batch item, a role suffix per file.

``<prefix>_<counter>_original.png``, ``_cutout.png`` (RGBA), ``_extracted.png`` (RGBA), ``_mask.png``
(8-bit grey, 255 = subject). The counter continues after the highest one in the folder, as core
SaveImage's does, and an existing file is never overwritten.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from torch import Tensor

from .bridges import to_uint8
from .checks import check_image, check_mask

ROLES = ("original", "cutout", "extracted", "mask")
FORMATS = {"png": ".png", "webp (lossless)": ".webp"}


def split_prefix(prefix: str, root: str) -> tuple[str, str]:
    """``"sub/name"`` -> (absolute folder under ``root``, ``"name"``); refuses paths that leave ``root``."""
    prefix = prefix.strip() or "cleancut"
    folder = os.path.abspath(os.path.join(root, os.path.dirname(os.path.normpath(prefix))))
    if os.path.commonpath([folder, os.path.abspath(root)]) != os.path.abspath(root):
        raise ValueError(f"filename_prefix: {prefix!r} points outside the output folder; use a relative name.")
    return folder, os.path.basename(os.path.normpath(prefix))


def next_counter(folder: str, name: str) -> int:
    """One more than the highest ``<name>_<counter>_`` already in ``folder`` (1 in an empty folder)."""
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)_")
    found = [int(m.group(1)) for f in (os.listdir(folder) if os.path.isdir(folder) else []) if (m := pattern.match(f))]
    return max(found, default=0) + 1


def batch_length(items: Mapping[str, Tensor]) -> int:
    """Common batch length of the connected inputs; a batch of 1 broadcasts, other mismatches are errors."""
    sizes = {role: t.shape[0] for role, t in items.items()}
    many = {n for n in sizes.values() if n != 1}
    if len(many) > 1:
        listed = ", ".join(f"{role}: {n}" for role, n in sizes.items())
        raise ValueError(f"The connected inputs have different batch sizes ({listed}); connect batches of the "
                         "same length, or a single image to go with every item.")
    return many.pop() if many else 1


def _to_pil(role: str, t: Tensor) -> Image.Image:
    arr = to_uint8(t)
    if role == "mask":
        return Image.fromarray(arr, "L")
    return Image.fromarray(arr, "RGBA" if arr.shape[-1] == 4 else "RGB")


def _save(img: Image.Image, path: str, fmt: str, metadata: Mapping | None) -> None:
    kwargs: dict = {}
    if fmt == ".png":
        kwargs["compress_level"] = 4  # core SaveImage's level: lossless either way, much faster than 9
        if metadata:
            info = PngInfo()
            for key, value in metadata.items():
                info.add_text(key, json.dumps(value))
            kwargs["pnginfo"] = info
    else:
        kwargs.update(lossless=True, exact=True, quality=80, method=4)  # exact: keep RGB under alpha 0
        if metadata:  # as core's WebP savers: one EXIF tag per entry, "key:json"
            exif = img.getexif()
            for tag, (key, value) in zip(range(0x0110, 0x0100, -1), metadata.items(), strict=False):
                exif[tag] = f"{key}:{json.dumps(value)}"
            kwargs["exif"] = exif
    with open(path, "xb") as f:  # exclusive create: never overwrite a file that appeared meanwhile
        img.save(f, format="PNG" if fmt == ".png" else "WEBP", **kwargs)


def check_items(items: Mapping[str, Tensor | None]) -> tuple[dict[str, Tensor], int]:
    """Drop unconnected roles, validate the rest, and return them with their common batch length."""
    items = {role: t for role, t in items.items() if t is not None}
    unknown = set(items) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; use {', '.join(ROLES)}.")
    if not items:
        raise ValueError("Nothing to save: connect at least one of original, cutout, extracted or mask.")
    for role, t in items.items():
        check_mask(t, role) if role == "mask" else check_image(t, role)
    return items, batch_length(items)


def write_item(folder: str, stem: str, items: Mapping[str, Tensor], index: int, fmt: str = "png",
               metadata: Mapping | None = None) -> list[tuple[str, str]]:
    """Write batch item ``index`` of every role as ``<folder>/<stem>_<role>.<ext>``; returns (role, path)."""
    if fmt not in FORMATS:
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(map(repr, FORMATS))}.")
    written = []
    for role in ROLES:
        if role in items:
            t = items[role]
            path = os.path.join(folder, f"{stem}_{role}{FORMATS[fmt]}")
            _save(_to_pil(role, t[index % t.shape[0]]), path, FORMATS[fmt], metadata)
            written.append((role, path))
    return written


def save_set(root: str, prefix: str, items: Mapping[str, Tensor | None], fmt: str = "png",
             metadata: Mapping | None = None) -> list[dict]:
    """Write every connected role of every batch item; returns ComfyUI preview entries, in order.

    Args:
        root: output folder; ``prefix`` may add sub-folders below it.
        prefix: file name prefix, e.g. ``"cleancut/cutout"``.
        items: role -> IMAGE ``[B,H,W,C]`` (``mask``: MASK ``[B,H,W]``); ``None`` roles are skipped.
        fmt: ``"png"`` or ``"webp (lossless)"``.
        metadata: PNG text chunks (``{"prompt": ..., "workflow": ...}``), or ``None``.
    Returns:
        ``[{"filename", "subfolder", "type": "output", "role", "path"}, ...]``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(map(repr, FORMATS))}.")
    items, n = check_items(items)
    folder, name = split_prefix(prefix, root)
    os.makedirs(folder, exist_ok=True)
    subfolder = os.path.relpath(folder, os.path.abspath(root))
    subfolder = "" if subfolder == "." else subfolder
    counter, ext, saved = next_counter(folder, name), FORMATS[fmt], []
    for i in range(n):
        while any(os.path.exists(os.path.join(folder, f"{name}_{counter:05}_{r}{ext}")) for r in ROLES):
            counter += 1
        for role, path in write_item(folder, f"{name}_{counter:05}", items, i, fmt, metadata):
            saved.append({"filename": os.path.basename(path), "subfolder": subfolder, "type": "output",
                          "role": role, "path": path})
        counter += 1
    return saved
