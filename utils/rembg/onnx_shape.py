"""ONNX operators as torch functions: types, shapes and indexing (Cast, Shape, Gather*, Scatter*, Reshape,
Slice, Concat, Split, Expand, ...). Same conventions as :mod:`.onnx_ops` (``op(n, r, *inputs)``); their shape
inputs stay small CPU tensors (:data:`.onnx_ops.HOST_INPUTS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .onnx_ops import DTYPES, SMALL, Node, Run, _agree_all, _arg_or_attr, _axis, _named, ints


def _cast_target(x: Tensor, to: torch.dtype, r: Run) -> torch.dtype:
    """Shape arithmetic (small CPU) casts exactly; an activation cast to a float type keeps the run's dtype."""
    if (x.device.type == "cpu" and x.numel() <= SMALL) or not to.is_floating_point:
        return to
    return r.dtype


def _cast(n: Node, r: Run, x: Tensor) -> Tensor:
    """Cast: activations stay in the run's float dtype, which convert's dtype decides."""
    return x.to(_cast_target(x, DTYPES[n.get("to")], r))


def _shape(n: Node, r: Run, x: Tensor) -> Tensor:
    """Shape (start/end, opset 15): a CPU int64 tensor."""
    return torch.tensor(list(x.shape)[slice(n.get("start", 0), n.get("end"))], dtype=torch.int64)


def _constant_of_shape(n: Node, r: Run, shape: Tensor) -> Tensor:
    """ConstantOfShape: small results on the CPU (shape arithmetic), large ones on the run's device."""
    value = n.get("value", torch.zeros(1))
    dims = ints(shape)
    big = math.prod(dims) > SMALL
    dtype = r.dtype if big and value.is_floating_point() else value.dtype
    return torch.full(dims, value.reshape(-1)[0].item(), dtype=dtype, device=r.device if big else "cpu")


def _range(n: Node, r: Run, start: Tensor, limit: Tensor, delta: Tensor) -> Tensor:
    """Range: ``start + i * delta`` below ``limit``, on the CPU."""
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)


def _gather(n: Node, r: Run, x: Tensor, idx: Tensor) -> Tensor:
    """Gather along ``axis``; negative indices count from the end; scalar indices drop the axis."""
    axis = _axis(n.get("axis", 0), x.dim())
    idx = torch.where(idx < 0, idx + x.shape[axis], idx).long()
    out = x.index_select(axis, idx.reshape(-1))
    return out.reshape((*x.shape[:axis], *idx.shape, *x.shape[axis + 1:]))


def _gather_elements(n: Node, r: Run, x: Tensor, idx: Tensor) -> Tensor:
    """GatherElements: torch.gather with negative indices."""
    axis = _axis(n.get("axis", 0), x.dim())
    return torch.gather(x, axis, torch.where(idx < 0, idx + x.shape[axis], idx).long())


def _linear_index(shape: tuple[int, ...], idx: Tensor) -> Tensor:
    """Indices ``[..., k]`` into the first ``k`` dims of ``shape`` -> flat indices ``[...]`` (no host copies)."""
    flat = torch.zeros(idx.shape[:-1], dtype=torch.int64, device=idx.device)
    for i in range(idx.shape[-1]):
        col = idx[..., i].long()
        flat = flat * shape[i] + torch.where(col < 0, col + shape[i], col)
    return flat


def _gather_nd(n: Node, r: Run, x: Tensor, idx: Tensor) -> Tensor:
    """GatherND with ``batch_dims``: the leading batch dims are shared, then ``k``-tuples index ``x``."""
    b, k = n.get("batch_dims", 0), idx.shape[-1]
    batch = math.prod(x.shape[:b])
    rest = x.shape[b:]
    flat = x.reshape(batch, math.prod(rest[:k]), *rest[k:])  # [B, prod(indexed dims), *kept dims]
    lin = _linear_index(tuple(rest), idx.reshape(batch, -1, k))  # [B, M]
    rows = torch.arange(batch, device=x.device).unsqueeze(1)
    return flat[rows, lin].reshape((*idx.shape[:-1], *rest[k:]))


def _scatter_nd(n: Node, r: Run, x: Tensor, idx: Tensor, updates: Tensor) -> Tensor:
    """ScatterND (reduction none/add/mul/max/min) on a copy of ``x``."""
    k = idx.shape[-1]
    out = x.clone()
    flat = out.view(math.prod(x.shape[:k]), *x.shape[k:])
    lin = _linear_index(tuple(x.shape), idx).reshape(-1)
    upd = updates.reshape(-1, *x.shape[k:]).to(x.dtype)
    reduction = n.get("reduction", "none")
    if reduction == "none":
        flat[lin] = upd
    elif reduction == "add":
        flat.index_add_(0, lin, upd)
    else:
        flat.index_reduce_(0, lin, upd, {"mul": "prod", "max": "amax", "min": "amin"}[reduction])
    return out


def _scatter_elements(n: Node, r: Run, x: Tensor, idx: Tensor, updates: Tensor) -> Tensor:
    """ScatterElements (reduction none/add/mul/max/min)."""
    axis = _axis(n.get("axis", 0), x.dim())
    idx = torch.where(idx < 0, idx + x.shape[axis], idx).long()
    reduction = n.get("reduction", "none")
    if reduction == "none":
        return x.scatter(axis, idx, updates.to(x.dtype))
    mode = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}[reduction]
    return x.scatter_reduce(axis, idx, updates.to(x.dtype), mode)


def _unsqueeze(n: Node, r: Run, x: Tensor, axes: Tensor | None = None) -> Tensor:
    """Unsqueeze: axes from the input (opset 13+) or the attribute, counted in the output's rank."""
    axes = _arg_or_attr(n, axes, "axes")
    rank = x.dim() + len(axes)
    for a in sorted(_axis(a, rank) for a in axes):
        x = x.unsqueeze(a)
    return x


def _squeeze(n: Node, r: Run, x: Tensor, axes: Tensor | None = None) -> Tensor:
    """Squeeze: the given axes (input at opset 13+, attribute before), or every size-1 axis."""
    axes = _arg_or_attr(n, axes, "axes")
    return x.squeeze() if not axes else x.squeeze(tuple(_axis(a, x.dim()) for a in axes))


def _concat(n: Node, r: Run, *xs: Tensor) -> Tensor:
    """Concat along ``axis``."""
    return torch.cat(_agree_all(list(xs)), dim=n.get("axis"))


def _split(n: Node, r: Run, x: Tensor, split: Tensor | None = None) -> tuple[Tensor, ...]:
    """Split: sizes from the input (13+) or attribute, else equal parts (opset 18: the last one smaller)."""
    axis = _axis(n.get("axis", 0), x.dim())
    sizes = _arg_or_attr(n, split, "split")
    if not sizes:
        parts, dim = n.get("num_outputs") or n.n_outputs, x.shape[axis]
        step = -(-dim // parts)
        sizes = [step] * (parts - 1) + [dim - step * (parts - 1)]
    return tuple(torch.split(x, sizes, dim=axis))


def _slice_axis(x: Tensor, axis: int, start: int, end: int, step: int) -> Tensor:
    """One axis of Slice with ONNX's clamping (Python's, also for negative steps, which torch lacks)."""
    dim = x.shape[axis]
    start, end = (start + dim if start < 0 else start), (end + dim if end < 0 else end)
    if step > 0:
        return x[(slice(None),) * axis + (slice(min(max(start, 0), dim), min(max(end, 0), dim), step),)]
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return x.index_select(axis, torch.arange(start, end, step, device=x.device))


def _slice(n: Node, r: Run, x: Tensor, starts=None, ends=None, axes=None, steps=None) -> Tensor:
    """Slice: bounds from inputs (opset 10+) or attributes (before); negative steps allowed."""
    starts, ends = _arg_or_attr(n, starts, "starts"), _arg_or_attr(n, ends, "ends")
    axes = _arg_or_attr(n, axes, "axes") or list(range(len(starts)))
    steps = ints(steps) or [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        x = _slice_axis(x, _axis(axis, x.dim()), start, end, step)
    return x


def _reshape(n: Node, r: Run, x: Tensor, shape: Tensor) -> Tensor:
    """Reshape: 0 copies the input's dimension (unless allowzero), -1 is inferred."""
    dims = ints(shape)
    if not n.get("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _flatten(n: Node, r: Run, x: Tensor) -> Tensor:
    """Flatten to 2-D at ``axis``."""
    axis = _axis(n.get("axis", 1), x.dim())
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _transpose(n: Node, r: Run, x: Tensor) -> Tensor:
    """Transpose by ``perm`` (default: reverse the axes)."""
    return x.permute(n.get("perm") or list(reversed(range(x.dim()))))


def _expand(n: Node, r: Run, x: Tensor, shape: Tensor) -> Tensor:
    """Expand: broadcast ``x`` against ``shape`` (a view)."""
    return x.expand(torch.broadcast_shapes(tuple(x.shape), tuple(ints(shape))))


def _one_hot(n: Node, r: Run, idx: Tensor, depth: Tensor, values: Tensor) -> Tensor:
    """OneHot: ``values[1]`` where the index matches, else ``values[0]``; negative indices wrap."""
    d = int(depth.reshape(-1)[0].item())
    idx = torch.where(idx < 0, idx + d, idx).long()
    axis = _axis(n.get("axis", -1), idx.dim() + 1)
    classes = torch.arange(d, device=idx.device).reshape([d if i == axis else 1 for i in range(idx.dim() + 1)])
    return torch.where(idx.unsqueeze(axis) == classes, values[1], values[0])


def _cumsum(n: Node, r: Run, x: Tensor, axis: Tensor) -> Tensor:
    """CumSum with ``exclusive`` and ``reverse``."""
    a = _axis(ints(axis)[0], x.dim())
    y = x.flip(a) if n.get("reverse", 0) else x
    y = torch.cumsum(y, a)
    if n.get("exclusive", 0):  # shift by one instead of subtracting: exact for floats
        y = torch.cat([torch.zeros_like(y.narrow(a, 0, 1)), y.narrow(a, 0, y.shape[a] - 1)], a)
    return y.flip(a) if n.get("reverse", 0) else y


def _top_k(n: Node, r: Run, x: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """TopK along ``axis``: values and int64 indices."""
    values, idx = torch.topk(x, ints(k)[0], dim=n.get("axis", -1), largest=bool(n.get("largest", 1)),
                             sorted=bool(n.get("sorted", 1)))
    return values, idx


def _trilu(n: Node, r: Run, x: Tensor, k: Tensor | None = None) -> Tensor:
    """Trilu: upper (default) or lower triangle of the last two dims, shifted by ``k``."""
    diagonal = ints(k)[0] if k is not None else 0
    return torch.triu(x, diagonal) if n.get("upper", 1) else torch.tril(x, diagonal)


TENSORS = {
    "Cast": _cast, "Shape": _shape, "ConstantOfShape": _constant_of_shape, "Range": _range,
    "CastLike": _named(lambda n, r, x, like: x.to(like.dtype), "CastLike: to the second input's type."),
    "Size": _named(lambda n, r, x: torch.tensor(x.numel(), dtype=torch.int64), "Size: element count, CPU int64."),
    "Dropout": _named(lambda n, r, x, *_: (x, torch.ones_like(x, dtype=torch.bool)) if n.n_outputs > 1 else x,
                      "Dropout at inference: the input (and an all-true mask)."),
    "Gather": _gather, "GatherElements": _gather_elements, "GatherND": _gather_nd, "ScatterND": _scatter_nd,
    "ScatterElements": _scatter_elements, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Concat": _concat,
    "Split": _split, "Slice": _slice, "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose,
    "Expand": _expand, "OneHot": _one_hot, "CumSum": _cumsum, "TopK": _top_k, "Trilu": _trilu,
    "Tile": _named(lambda n, r, x, reps: x.repeat(ints(reps)), "Tile by ``repeats``."),
    "NonZero": _named(lambda n, r, x: torch.nonzero(x).t(), "NonZero: int64 indices [rank, count] (syncs)."),
}

OPS: dict[str, Callable] = TENSORS
