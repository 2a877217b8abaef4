"""Input validation: the only place that words errors about bad input.

ComfyUI checks widget ``min``/``max`` only when a graph is queued, so every public ``utils`` function
validates its arguments too; internal cores trust their callers. Errors name the input, say what came,
and say what to do. They are :class:`CleanCutError` (a ``ValueError``) with the input's name attached:
:class:`InputError` for a tensor or file that cannot be used, :class:`SettingError` for a widget or
option value. Problems of the environment (a missing model file, no onnxruntime) are ``RuntimeError``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NoReturn

import torch
from torch import Tensor


class CleanCutError(ValueError):
    """Bad input to a CleanCut node or function; ``name`` is the input it is about ("" for none)."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}" if name else message)
        self.name, self.message = name, message


class InputError(CleanCutError):
    """An IMAGE / MASK tensor (or an image file) that cannot be used: shape, dtype, values, batch size."""


class SettingError(CleanCutError):
    """A widget or option value: out of range, of the wrong type, or not one of the choices."""


def fail(name: str, message: str, kind: type[CleanCutError] = SettingError) -> NoReturn:
    """Raise ``kind(name, message)``: the one way modules outside this file report bad input."""
    raise kind(name, message)


def check_image(x: object, name: str, channels: Sequence[int] = (3, 4)) -> None:
    """Raise :class:`InputError` unless ``x`` is a usable IMAGE batch ``[B, H, W, C]`` of finite floats."""
    if not isinstance(x, Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        hint = " If this is a MASK, convert it with 'Convert Mask to Image' first." if isinstance(x, Tensor) else ""
        fail(name, f"expected an IMAGE batch [B, H, W, C], got {got}.{hint}", InputError)
    if x.shape[0] == 0:
        fail(name, "the batch is empty; connect a node that outputs at least one image.", InputError)
    if x.shape[1] == 0 or x.shape[2] == 0:
        fail(name, f"the images have no pixels (size {x.shape[2]}x{x.shape[1]}).", InputError)
    if x.shape[-1] not in channels:
        want = " or ".join(map(str, channels))
        fail(name, f"expected {want} channels (RGB or RGBA), got {x.shape[-1]}. Convert the image to RGB first.",
             InputError)
    _check_data(x, name, "IMAGE")


def check_mask(x: object, name: str, like: Tensor | None = None) -> None:
    """Raise :class:`InputError` unless ``x`` is a MASK batch ``[B, H, W]`` (of ``like``'s size if given).

    Entry points take masks through :func:`as_mask`, which also accepts ``[H, W]`` and bool masks.
    """
    if not isinstance(x, Tensor) or x.ndim != 3:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        fail(name, f"expected a MASK batch [B, H, W] (or one mask [H, W]), got {got}. "
             "If this is an IMAGE, convert it with 'Convert Image to Mask' first.", InputError)
    if x.shape[0] == 0:
        fail(name, "the batch is empty; connect a node that outputs at least one mask.", InputError)
    if x.shape[1] == 0 or x.shape[2] == 0:
        fail(name, f"the masks have no pixels (size {x.shape[2]}x{x.shape[1]}).", InputError)
    if like is not None and tuple(x.shape[1:]) != tuple(like.shape[1:3]):
        fail(name, f"mask size {x.shape[2]}x{x.shape[1]} does not match the image size "
             f"{like.shape[2]}x{like.shape[1]}; resize the mask to the image first.", InputError)
    _check_data(x, name, "MASK")


def as_mask(x: object, name: str, like: Tensor | None = None) -> Tensor:
    """``x`` as a checked MASK batch ``[B, H, W]``, detached: the one place a MASK input is normalised.

    As ComfyUI's own mask nodes, a 2-D ``[H, W]`` mask is a batch of one and a bool mask is 0/1 (float32).
    Detached, so a tensor that requires grad (a script) reaches no op and no output requires grad.
    Raises :class:`InputError` as :func:`check_mask`.
    """
    if isinstance(x, Tensor):
        x = x.detach()
        if x.ndim == 2:
            x = x.unsqueeze(0)  # [H, W] -> [1, H, W]
        if x.dtype == torch.bool:
            x = x.to(torch.float32)
    check_mask(x, name, like)
    return x


def _check_data(x: Tensor, name: str, kind: str) -> None:
    """The values themselves: real (not on the meta device), float, finite."""
    if x.is_meta:  # before any reduction: torch's own error ("item() on meta tensors") says nothing useful
        fail(name, f"the tensor has no data: it is on the 'meta' device, which holds shapes only. Pass {kind} "
             "values made or loaded on 'cpu' or 'cuda' (e.g. outside a 'with torch.device(\"meta\")' block).",
             InputError)
    if not x.is_floating_point():
        fail(name, f"expected a float {kind} with values in 0..1, got dtype {x.dtype}. "
             "Divide 8-bit data by 255 (or 16-bit data by 65535) and convert to float first.", InputError)
    # One float32 sum is several times cheaper than isfinite().all() on big batches; only a non-finite
    # sum (a NaN/inf somewhere, or absurd magnitudes) pays for the exact element-wise check.
    if not bool(torch.isfinite(x.sum(dtype=torch.float32))) and not bool(torch.isfinite(x).all()):
        fail(name, "contains NaN or infinite values; check the node that produced it "
             "(a VAE decode in float16 often does this: try --fp32-vae).", InputError)


def check_number(value: object, name: str, low: float | None = None, high: float | None = None,
                 integer: bool = False) -> None:
    """Raise :class:`SettingError` unless ``value`` is a finite number in ``[low, high]`` (an int if ``integer``)."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        fail(name, f"expected {'an integer' if integer else 'a finite number'}, got {value!r}.")
    if low is not None and value < low:
        fail(name, f"{value} is below the minimum {low}; use a value of at least {low}.")
    if high is not None and value > high:
        fail(name, f"{value} is above the maximum {high}; use a value of at most {high}.")


def check_flag(value: object, name: str) -> None:
    """Raise :class:`SettingError` unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, bool):
        fail(name, f"expected True or False, got {value!r}.")


def check_choice(value: object, name: str, choices: Iterable[str]) -> None:
    """Raise :class:`SettingError` unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        fail(name, f"{value!r} is not one of {', '.join(map(repr, choices))}.")


def check_same_batch(a: Tensor, b: Tensor, name_a: str, name_b: str) -> int:
    """The common batch size of two batches, a batch of 1 broadcasting; else :class:`InputError`."""
    na, nb = a.shape[0], b.shape[0]
    if na == nb or nb == 1 or na == 1:
        return max(na, nb)
    fail(name_b, f"{name_a} has {na} images but {name_b} has {nb}; connect batches of the same size, "
         "or a single image to pair with every image of the other batch.", InputError)
