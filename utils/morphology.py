"""Mask morphology for Refine Mask: round grow / shrink, hole filling, island removal, edge distances.

Every function here is a chunk-level core: ``mask`` is a checked float32 MASK chunk ``[b, H, W]`` in 0..1 on the
compute device (:mod:`.masks` validates), and results are new tensors on that device.

Grow uses OpenCV's round structuring element, ``cv2.getStructuringElement(MORPH_ELLIPSE, (2r+1, 2r+1))``, whose
row ``dy`` spans ``|dx| <= round(sqrt(r² - dy²))`` (:func:`ellipse_half_widths`; not quite a Euclidean disc).
A binary mask grown by ``r`` equals ``cv2.dilate`` with it exactly, at a cost independent of ``r``: in each
column the distance to the nearest set pixel gives how far that pixel's row of the element reaches
sideways, and two running maxima along the rows find every pixel within reach (:func:`_grow_binary`). Soft
masks are grown by grey dilation with the same element (the maximum over it: a soft edge moves outwards
keeping its profile): row maxima of growing width shifted into place, ``O(r)`` per pixel (OpenCV's own,
``O(r²)``, for small radii on the CPU). Shrinking is the complement grown (erosion), and like
OpenCV's it never erodes from the image border.

Connected pieces (holes, islands) are labelled on the CPU with OpenCV on every device: torch has no
labelling, and only the 1-byte thresholded mask travels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from . import runtime

LEVEL = 0.5  # holes, islands and feathering look at the mask thresholded here (value > LEVEL = subject)
CV2_GROW_BELOW = 24  # below this radius OpenCV's own dilation (cost ~r²) is faster than the scans (measured)
CV2_GREY_BELOW = 16  # soft masks: OpenCV's grey dilation below this radius, the O(r) row maxima above (measured
# per 1024² mask on the CPU: r=8 8.6 vs 12.2 ms, r=32 74 vs 32 ms, r=128 1138 vs 104 ms)


def ellipse_half_widths(radius: int) -> list[int]:
    """Half-width of each row ``dy = 0..radius`` of OpenCV's elliptical ``(2 radius + 1)²`` element."""
    return [round(math.sqrt(radius * radius - dy * dy)) for dy in range(radius + 1)]  # never a .5 tie


def is_binary(mask: Tensor) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())


# ---- grow / shrink -------------------------------------------------------------------------------------------

def grow(mask: Tensor, radius: int, backend: str = "auto") -> Tensor:
    """Dilate (``radius`` > 0) or erode (< 0) every mask by OpenCV's round element of that radius."""
    if radius == 0:
        return mask.clone()
    if radius < 0:  # erosion is the complement dilated: the element is symmetric
        return 1 - grow(1 - mask, -radius, backend)
    native = runtime.pick_backend(mask.device, backend) == "native"
    if is_binary(mask):
        if native:
            return runtime.per_image(lambda m: _grow_binary_np(m, radius), mask.to(torch.uint8))
        return _grow_binary(mask > LEVEL, radius).to(mask.dtype)
    if native and radius < CV2_GREY_BELOW:  # OpenCV's grey dilation is the reference itself, per mask
        import cv2

        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
        return runtime.per_image(lambda m: cv2.dilate(m, element), mask.float())
    return _grow_grey(mask, radius)


def _nearest(on: Tensor, cap: int) -> Tensor:
    """Distance along the last dim to the nearest True of ``on`` ``[..., L]``, capped at ``cap`` (int32)."""
    n = on.shape[-1]
    xs = torch.arange(n, device=on.device, dtype=torch.int32)
    none = torch.tensor(-(n + cap + 1), device=on.device, dtype=torch.int32)
    before = torch.where(on, xs, none).cummax(-1).values  # the last True at or before x (or "none")
    after = torch.where(on.flip(-1), xs, none).cummax(-1).values  # the same from the far end
    return torch.minimum(xs - before, (xs - after).flip(-1)).clamp_(max=cap)


def _reach_table(radius: int, device) -> Tensor:
    """``table[d]``: 1 + how far sideways the element reaches from a set pixel ``d`` rows away; 0 = not at all."""
    return torch.tensor([w + 1 for w in ellipse_half_widths(radius)] + [0], dtype=torch.int32, device=device)


def _covered(reach: Tensor) -> Tensor:
    """Pixels within reach along the last dim: ``x`` is covered when some ``q`` has ``|x - q| < reach[q]``."""
    xs = torch.arange(reach.shape[-1], device=reach.device, dtype=torch.int32)
    right = (reach + xs).cummax(-1).values > xs  # from a pixel at or left of x
    left = (reach.flip(-1) + xs).cummax(-1).values > xs  # from one at or right of x, in mirrored coordinates
    return right | left.flip(-1)


def _grow_binary(on: Tensor, radius: int) -> Tensor:
    """Binary dilation of ``on`` ``[b, H, W]`` (bool) by the round element: two scans per axis, any radius."""
    rows_away = _nearest(on.transpose(1, 2).contiguous(), radius + 1)  # [b, W, H]: per column, the nearest set row
    reach = _reach_table(radius, on.device)[rows_away.long()].transpose(1, 2).contiguous()  # [b, H, W]
    return _covered(reach)


def _grow_binary_np(mask: np.ndarray, radius: int) -> np.ndarray:
    """:func:`_grow_binary` of one ``H x W`` 0/1 uint8 mask with NumPy and OpenCV; float32 0/1 out."""
    import cv2

    if radius < CV2_GROW_BELOW:
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
        return cv2.dilate(mask, element).astype(np.float32)
    rows_away = _nearest_np(cv2.transpose(mask), radius + 1)  # W x H; NumPy's scans are fastest along rows
    table = np.array([w + 1 for w in ellipse_half_widths(radius)] + [0], np.int32)
    if radius + 1 < 256:  # OpenCV's byte lookup is ~5x NumPy's
        reach = cv2.LUT(rows_away.astype(np.uint8), np.resize(table, 256).astype(np.uint8)).astype(np.int32)
    else:
        reach = np.take(table, rows_away)
    reach = cv2.transpose(reach)
    xs = np.arange(mask.shape[1], dtype=np.int32)
    right = np.maximum.accumulate(reach + xs, axis=1) > xs
    left = np.maximum.accumulate(reach[:, ::-1] + xs, axis=1) > xs
    return (right | left[:, ::-1]).astype(np.float32)


def _nearest_np(on: np.ndarray, cap: int) -> np.ndarray:
    """:func:`_nearest` for one 2-D array, along its rows."""
    n = on.shape[1]
    xs = np.arange(n, dtype=np.int32)
    none = np.int32(-(n + cap + 1))
    before = np.maximum.accumulate(np.where(on, xs, none), axis=1)
    after = np.maximum.accumulate(np.where(on[:, ::-1], xs, none), axis=1)
    return np.minimum(np.minimum(xs - before, (xs - after)[:, ::-1]), cap)


def _grow_grey(mask: Tensor, radius: int) -> Tensor:
    """Grey dilation by the round element: the row maxima of growing width, shifted into place; O(radius)."""
    widths = ellipse_half_widths(radius)
    rows = mask.clone()  # max over |dx| <= width, widened step by step
    out = torch.zeros_like(mask)
    width = 0
    for dy in range(radius, -1, -1):  # half-widths grow as dy shrinks
        for k in range(width + 1, widths[dy] + 1):
            torch.maximum(rows[..., k:], mask[..., :-k], out=rows[..., k:])
            torch.maximum(rows[..., :-k], mask[..., k:], out=rows[..., :-k])
        width = widths[dy]
        if dy == 0:
            torch.maximum(out, rows, out=out)
        else:
            torch.maximum(out[:, dy:], rows[:, :-dy], out=out[:, dy:])
            torch.maximum(out[:, :-dy], rows[:, dy:], out=out[:, :-dy])
    return out


# ---- holes and islands ---------------------------------------------------------------------------------------

def fill_and_clean(mask: Tensor, fill_holes: bool, min_size: int) -> Tensor:
    """Fill every hole (``fill_holes``), drop pieces under ``min_size`` px, and fill holes under it.

    Pieces are the 8-connected components of the thresholded mask, holes the 4-connected pieces of its
    background that do not touch the image border (what ``scipy.ndimage.binary_fill_holes`` fills). Small holes
    are filled only when ``fill_holes`` is off (on, every hole is). Filled pixels become 1, dropped ones 0; the
    soft rest of the mask is kept.
    """
    # labelling runs on the CPU (OpenCV), whatever the device: from a GPU only the 1-byte thresholded mask travels
    src = mask if mask.device.type == "cpu" else (mask > LEVEL).to(torch.uint8)

    def one(m: np.ndarray) -> np.ndarray:  # +1 fill, -1 drop, 0 keep
        return _changes(m if m.dtype == np.uint8 else (m > LEVEL).view(np.uint8), fill_holes, min_size)

    change = runtime.per_image(one, src, np.int8)
    out = runtime.empty(mask.shape, mask)
    return torch.add(mask, change, out=out).clamp_(0, 1)  # the mask is in 0..1: +1 gives 1, -1 gives 0


def _changes(on: np.ndarray, fill_holes: bool, min_size: int) -> np.ndarray:
    """Per pixel of one 0/1 mask: +1 to fill, -1 to drop, 0 to keep (int8)."""
    import cv2

    change = np.zeros(on.shape, np.int8)
    if fill_holes or min_size > 0:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(1 - on, connectivity=4)
        hole = np.ones(count, np.int8)
        hole[0] = 0  # label 0: the subject
        for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):  # pieces touching the border are not holes
            hole[edge] = 0
        if not fill_holes:
            hole[stats[:, cv2.CC_STAT_AREA] >= min_size] = 0
        change = np.take(hole, labels)  # a table lookup per pixel: cheaper than boolean indexing
    if min_size > 0:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(on, connectivity=8)
        drop = np.where(stats[:, cv2.CC_STAT_AREA] < min_size, np.int8(-1), np.int8(0))
        drop[0] = 0  # label 0: the background
        change += np.take(drop, labels)  # islands are subject pixels, holes background: never both
    return change


# ---- distances to the edge -----------------------------------------------------------------------------------

def edge_distance(on: Tensor, cap: int, backend: str = "auto") -> Tensor:
    """Euclidean distance ``[b, H, W]`` (float32) from each pixel to the nearest pixel on the other side of
    ``on``'s edge (bool ``[b, H, W]``), capped at ``cap``; ``cap`` where the other side is absent."""
    if runtime.pick_backend(on.device, backend) == "native":
        import cv2

        def one(m: np.ndarray) -> np.ndarray:
            if m.all() or not m.any():  # one side only: OpenCV has no pixel to measure to
                return np.full(m.shape, cap, np.float32)
            inside = cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            return np.minimum(np.where(m > 0, inside, outside), np.float32(cap))

        return runtime.per_image(one, on.to(torch.uint8))
    return torch.where(on, _distance_to(~on, cap), _distance_to(on, cap))


def _distance_to(target: Tensor, cap: int) -> Tensor:
    """Exact distance to the nearest True of ``target`` up to ``cap``: the nearest one in each column, then the
    best column within ``cap`` on either side (``O(cap)`` steps; meant for the GPU)."""
    rows = _nearest(target.transpose(1, 2).contiguous(), cap).transpose(1, 2).float().square_()  # [b, H, W]
    best = rows.clone()
    for dx in range(1, min(cap, target.shape[-1] - 1) + 1):
        torch.minimum(best[..., dx:], rows[..., :-dx] + dx * dx, out=best[..., dx:])
        torch.minimum(best[..., :-dx], rows[..., dx:] + dx * dx, out=best[..., :-dx])
    return best.sqrt_().clamp_(max=cap)
