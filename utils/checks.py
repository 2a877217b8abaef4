"""Input validation: the only place that words errors about bad input.

ComfyUI checks widget ``min``/``max`` only when a graph is queued, so every public ``utils`` function
validates its arguments too. Errors name the input, say what came, and say what to do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor


def check_image(x: object, name: str, channels: Sequence[int] = (3, 4)) -> None:
    """Raise ``ValueError`` unless ``x`` is a usable IMAGE batch ``[B, H, W, C]`` of finite floats."""
    if not isinstance(x, Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        hint = " If this is a MASK, convert it with 'Convert Mask to Image' first." if isinstance(x, Tensor) else ""
        raise ValueError(f"{name}: expected an IMAGE batch [B,H,W,C], got {got}.{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty; connect a node that outputs at least one image.")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"{name}: the images have no pixels (size {x.shape[2]}x{x.shape[1]}).")
    if x.shape[-1] not in channels:
        want = " or ".join(map(str, channels))
        raise ValueError(f"{name}: expected {want} channels (RGB or RGBA), got {x.shape[-1]}. "
                         "Convert the image to RGB first.")
    _check_float_finite(x, name, "IMAGE")


def check_mask(x: object, name: str, like: Tensor | None = None) -> None:
    """Raise ``ValueError`` unless ``x`` is a MASK batch ``[B, H, W]`` (matching ``like``'s size if given)."""
    if not isinstance(x, Tensor) or x.ndim != 3:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a MASK batch [B,H,W], got {got}. "
                         "If this is an IMAGE, convert it with 'Convert Image to Mask' first.")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty; connect a node that outputs at least one mask.")
    if like is not None and tuple(x.shape[1:]) != tuple(like.shape[1:3]):
        raise ValueError(f"{name}: mask size {x.shape[2]}x{x.shape[1]} does not match the image size "
                         f"{like.shape[2]}x{like.shape[1]}; resize the mask to the image first.")
    _check_float_finite(x, name, "MASK")


def _check_float_finite(x: Tensor, name: str, kind: str) -> None:
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a float {kind} with values in 0..1, got dtype {x.dtype}. "
                         "Divide 8-bit data by 255 (or 16-bit data by 65535) and convert to float first.")
    # One float32 sum is several times cheaper than isfinite().all() on big batches; only a non-finite
    # sum (a NaN/inf somewhere, or absurd magnitudes) pays for the exact element-wise check.
    if not bool(torch.isfinite(x.sum(dtype=torch.float32))) and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values; check the node that produced it "
                         "(a VAE decode in float16 often does this: try --fp32-vae).")


def check_number(value: object, name: str, low: float | None = None, high: float | None = None,
                 integer: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number in ``[low, high]`` (an int if ``integer``)."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{name}: expected {kind}, got {value!r}.")
    if low is not None and value < low:
        raise ValueError(f"{name}: {value} is below the minimum {low}; use a value of at least {low}.")
    if high is not None and value > high:
        raise ValueError(f"{name}: {value} is above the maximum {high}; use a value of at most {high}.")


def check_choice(value: object, name: str, choices: Iterable[str]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(map(repr, choices))}.")


def check_same_batch(a: Tensor, b: Tensor, name_a: str, name_b: str) -> int:
    """Return the common batch size of two batches, allowing a batch of 1 to broadcast; else ``ValueError``."""
    na, nb = a.shape[0], b.shape[0]
    if na == nb or nb == 1 or na == 1:
        return max(na, nb)
    raise ValueError(f"{name_a} has {na} images but {name_b} has {nb}; connect batches of the same size, "
                     "or a single image to pair with every image of the other batch.")
