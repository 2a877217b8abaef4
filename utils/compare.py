"""Side-by-side comparison of two IMAGE batches, with an optional caption strip."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from . import runtime
from .checks import check_image, check_same_batch


def resize_to_height(image: Tensor, height: int) -> Tensor:
    """``[B,H,W,C]`` -> ``[B,height,W',C]`` keeping the aspect ratio (antialiased bilinear)."""
    h, w = image.shape[1:3]
    if h == height:
        return image.clamp(0, 1)  # clamped as the resized path is: the result is always 0..1
    width = max(1, round(w * height / h))
    nchw = image.permute(0, 3, 1, 2).float()  # [B,C,H,W] for interpolate
    out = F.interpolate(nchw, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return out.clamp_(0, 1).permute(0, 2, 3, 1).to(image.dtype)


def _with_channels(image: Tensor, channels: int) -> Tensor:
    if image.shape[-1] == channels:
        return image
    return torch.cat([image, torch.ones_like(image[..., :1])], dim=-1)  # 3 -> 4: opaque alpha


def caption_strip(text: str, widths: list[int], channels: int) -> np.ndarray:
    """A dark strip, ``H x sum(widths) x channels`` uint8, with ``text`` split on ``|`` over each panel."""
    height = max(20, min(64, sum(widths) // 40))
    strip = Image.new("RGB", (sum(widths), height), (32, 32, 32))
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=int(height * 0.6))
    parts = [p.strip() for p in text.split("|")]
    if len(parts) != len(widths):  # no "|" (or too many): one caption centred over everything
        parts, widths = [text.strip()], [sum(widths)]
    left = 0
    for part, span in zip(parts, widths, strict=True):
        draw.text((left + span / 2, height / 2), part, fill=(235, 235, 235), font=font, anchor="mm")
        left += span
    arr = np.array(strip)  # a writable copy: torch.from_numpy warns on read-only PIL buffers
    if channels == 4:
        arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    return arr


def side_by_side(image_a: Tensor, image_b: Tensor, caption: str = "", chunk: int = 8) -> Tensor:
    """``image_a`` and ``image_b`` next to each other, ``b`` resized to ``a``'s height.

    Args:
        image_a: IMAGE ``[Ba, H, W, C]``; sets the height, dtype and device of the result.
        image_b: IMAGE ``[Bb, H', W', C']``; a batch of 1 pairs with every image of ``a`` and vice versa.
        caption: optional text drawn in a strip above; ``"before | after"`` centres one part per panel.
        chunk: images resized at once, to bound memory on big batches.
    Returns:
        ``[max(Ba, Bb), H (+ strip), W + W'', max(C, C')]`` on ``image_a.device``; RGBA if either is.
    """
    check_image(image_a, "image_a")
    check_image(image_b, "image_b")
    # detached: a tensor that requires grad (a script) reaches no op, and no output requires grad
    return side_by_side_core(image_a.detach(), image_b.detach(), caption, chunk)


def side_by_side_core(image_a: Tensor, image_b: Tensor, caption: str = "", chunk: int = 8) -> Tensor:
    """:func:`side_by_side` for batches the caller checked already (no second NaN scan)."""
    n = check_same_batch(image_a, image_b, "image_a", "image_b")
    height, width, channels = image_a.shape[1], image_a.shape[2], max(image_a.shape[-1], image_b.shape[-1])
    b_width = max(1, round(image_b.shape[2] * height / image_b.shape[1]))
    strip = None
    if caption.strip():
        strip = torch.from_numpy(caption_strip(caption, [width, b_width], channels))
        strip = strip.to(image_a.device, image_a.dtype) / 255
    top = 0 if strip is None else strip.shape[0]

    def pair(a: Tensor, start: int, out: tuple[Tensor]) -> tuple[Tensor]:
        (dest,) = out
        b = image_b[torch.arange(start, start + a.shape[0]) % image_b.shape[0]]  # a batch of 1 broadcasts
        if strip is not None:
            dest[:, :top] = strip
        dest[:, top:, :width] = _with_channels(a.clamp(0, 1), channels)
        dest[:, top:, width:] = _with_channels(resize_to_height(b.to(a.device), height).to(dest.dtype), channels)
        return out

    # image_a broadcast to the common batch as a view: the chunk loop then walks both batches together
    return runtime.map_batches(image_a.expand(n, -1, -1, -1), pair, chunk=chunk, device=image_a.device,
                               outputs=[(top + height, width + b_width, channels)], pass_start=True)
