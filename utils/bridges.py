"""The only conversions between IMAGE tensors and PIL / NumPy / OpenCV.

cv2 arrays here are RGB(A) unless a name ends in ``_bgr``. 8-bit conversions round to nearest
(many packs truncate with ``astype(uint8)``, which darkens every image by half a level on average).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .checks import InputError, fail


def to_uint8(image: Tensor | np.ndarray) -> np.ndarray:
    """Float 0..1 (any shape, tensor or array) -> uint8 array, clamped and rounded to nearest."""
    if isinstance(image, Tensor):
        image = image.detach().to("cpu", torch.float32).numpy()
    a = np.asarray(image, dtype=np.float32)
    if a.ndim >= 2 and a.size and (a.ndim == 2 or a.shape[-1] <= 4):
        # [.., H, W, C] -> [N, W, C] (a view, also of a strided channel view such as a cut-out's RGB)
        rows = a.reshape(-1, a.shape[-2], a.shape[-1]) if a.ndim > 2 else a
        out = np.empty(rows.shape, np.uint8)
        step = max(1, BAND_ELEMENTS // (rows[0].size or 1))
        for start in range(0, len(rows), step):  # a band of rows at a time: no full-size float temporary
            out[start:start + step] = _uint8_rows(rows[start:start + step])
        return out.reshape(a.shape)
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


BAND_ELEMENTS = 1 << 22  # values per band of to_uint8 / to_pil (16 MB of float32)


def _uint8_rows(rows: np.ndarray) -> np.ndarray:
    """cv2's saturating, rounding convert (~10x faster than NumPy's rint/clip/astype chain); negatives are
    zeroed first because it takes the absolute value."""
    return cv2.convertScaleAbs(np.maximum(rows, 0.0), alpha=255.0)


def to_pil(image: Tensor | np.ndarray, mode: str) -> Image.Image:
    """One image ``[H, W]`` (mode "L") or ``[H, W, 3|4]`` ("RGB", "RGBA") in 0..1 -> PIL image, as
    ``Image.fromarray(to_uint8(image), mode)``. RGB goes into PIL's own storage a band of rows at a time: PIL
    keeps 4 bytes per RGB pixel, so the full uint8 array beside it would be one more copy (144 MB at 48 MP)."""
    if mode != "RGB":
        return Image.fromarray(to_uint8(image), mode)  # PIL uses the uint8 array itself for L and RGBA
    if isinstance(image, Tensor):
        image = image.detach().to("cpu", torch.float32).numpy()
    h, w = image.shape[:2]
    out = Image.new("RGB", (w, h))
    step = max(1, BAND_ELEMENTS // max(1, w * 3))
    for top in range(0, h, step):
        out.paste(Image.fromarray(to_uint8(image[top:top + step]), "RGB"), (0, top))
    return out


def tensor2np(batch: Tensor) -> list[np.ndarray]:
    """IMAGE ``[B,H,W,C]`` (or one ``[H,W,C]`` image) -> list of uint8 ``H x W x C`` RGB(A) arrays."""
    if batch.ndim == 3:
        batch = batch.unsqueeze(0)
    return list(to_uint8(batch))


def np2tensor(arrays: np.ndarray | Sequence[np.ndarray], device: torch.device | str = "cpu") -> Tensor:
    """uint8/uint16/float arrays ``H x W (x C)`` of one size -> IMAGE ``[B,H,W,C]`` float32 in 0..1."""
    if isinstance(arrays, np.ndarray) and arrays.ndim in (2, 3):
        arrays = [arrays]
    out = []
    for a in arrays:
        a = np.asarray(a)
        if a.ndim == 2:
            a = a[:, :, None].repeat(3, axis=2)
        f = np.empty(a.shape, np.float32)  # one float copy, scaled in place: no second full-size temporary
        if a.dtype in (np.uint8, np.uint16):
            np.divide(a, np.float32(255.0 if a.dtype == np.uint8 else 65535.0), out=f, dtype=np.float32)
        else:
            np.clip(a, 0.0, 1.0, out=f, dtype=np.float32, casting="unsafe")
        out.append(torch.from_numpy(f))
    sizes = {tuple(t.shape) for t in out}
    if len(sizes) > 1:
        fail("images", f"one batch needs one size, got {sorted(sizes)}; resize them first.", InputError)
    batch = out[0].unsqueeze(0) if len(out) == 1 else torch.stack(out)  # one image: no stacked copy
    return batch.to(device)


def tensor2pil(batch: Tensor) -> list[Image.Image]:
    """IMAGE ``[B,H,W,C]`` (or ``[H,W,C]``) -> list of PIL images, RGB or RGBA by channel count."""
    return [Image.fromarray(a, "RGBA" if a.shape[2] == 4 else "RGB") for a in tensor2np(batch)]


def pil2tensor(images: Image.Image | Sequence[Image.Image], device: torch.device | str = "cpu") -> Tensor:
    """PIL image(s) of one size -> IMAGE ``[B,H,W,C]``; RGBA/LA keep alpha, 16-bit grey is scaled."""
    if isinstance(images, Image.Image):
        images = [images]
    arrays = []
    for im in images:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arrays.append(np.asarray(im, dtype=np.uint16 if im.mode != "I" else np.int32).astype(np.uint16))
            continue
        keep_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        arrays.append(np.asarray(im.convert("RGBA" if keep_alpha else "RGB")))
    return np2tensor(arrays, device)


def mask2np(mask: Tensor) -> list[np.ndarray]:
    """MASK ``[B,H,W]`` -> list of uint8 ``H x W`` arrays (255 = 1.0)."""
    return list(to_uint8(mask if mask.ndim == 3 else mask.unsqueeze(0)))
