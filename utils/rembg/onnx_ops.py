"""ONNX operators as small torch functions: element-wise, tensor and index, reductions and products (the
convolution, pooling, normalisation and resampling ops are in :mod:`.onnx_nn`); :mod:`.onnx_torch` merges
both tables.

Each op is ``op(n, r, *inputs) -> Tensor | tuple[Tensor, ...]``: ``n`` (:class:`Node`) holds the node's
attributes, opset and output count, ``r`` (:class:`Run`) the device and float dtype of the run; a missing
optional input arrives as ``None``. Semantics follow the ONNX specification across opset versions, and
onnxruntime where the specification leaves room. An input that changed from attribute to input over the
versions (axes, pads, scales, split, min/max) is read from the input when present, else from the attribute.

Inputs listed in :data:`HOST_INPUTS` are shape arithmetic read as Python numbers (``.tolist()``): they stay
small CPU tensors, so reading them never waits on a GPU. No op writes into its inputs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

SMALL = 64  # elements: a tensor this small made from shapes stays on the CPU (it is shape arithmetic)

# ONNX TensorProto data types -> torch (the unsigned 16/32/64-bit types widen to signed 32/64/64)
DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 4: torch.int32, 5: torch.int16, 6: torch.int32,
          7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64, 12: torch.int64, 13: torch.int64,
          16: torch.bfloat16}


@dataclass(frozen=True)
class Node:
    """One ONNX node as the ops see it: attributes (Python values), the opset of its domain, output count."""

    op_type: str
    attrs: dict
    opset: int
    n_outputs: int = 1

    def get(self, name: str, default=None):
        """The attribute ``name``, or ``default`` when the node does not set it."""
        return self.attrs.get(name, default)


@dataclass(frozen=True)
class Run:
    """The run's device and the float dtype of its activations (the forward input's)."""

    device: torch.device
    dtype: torch.dtype


# ---------------------------------------------------------------- helpers
def ints(t: Tensor | None) -> list[int] | None:
    """A host tensor of integers as a list (``None`` stays ``None``)."""
    return None if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _floats(t: Tensor) -> list[float]:
    return [float(v) for v in t.reshape(-1).tolist()]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _arg_or_attr(n: Node, t: Tensor | None, name: str) -> list[int] | None:
    """Opset-proof list: from the input when given (newer opsets), else from the attribute (older ones)."""
    return ints(t) if t is not None else n.get(name)


def agree(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Give two float tensors one dtype: the smaller takes the larger's (a small constant meets an activation)."""
    if a.dtype == b.dtype or not (a.is_floating_point() and b.is_floating_point()):
        return a, b
    if a.numel() == b.numel():
        dtype = torch.promote_types(a.dtype, b.dtype)
        return a.to(dtype), b.to(dtype)
    return (a.to(b.dtype), b) if a.numel() < b.numel() else (a, b.to(a.dtype))


def _agree_all(xs: list[Tensor]) -> list[Tensor]:
    big = max(xs, key=Tensor.numel)
    return [x.to(big.dtype) if x.is_floating_point() and big.is_floating_point() else x for x in xs]


def _pairs(begin: list[int], end: list[int]) -> list[int]:
    """ONNX ``[b1, .., bn, e1, .., en]`` -> F.pad's ``[bn, en, .., b1, e1]`` (last dimension first)."""
    return [v for b, e in zip(reversed(begin), reversed(end), strict=True) for v in (b, e)]


def _named(fn: Callable, doc: str) -> Callable:
    fn.__doc__ = doc
    return fn


# ---------------------------------------------------------------- elementwise
def _unary(fn: Callable, doc: str) -> Callable:
    return _named(lambda n, r, x: fn(x), doc)


def _binary(fn: Callable, doc: str) -> Callable:
    def op(n: Node, r: Run, a: Tensor, b: Tensor) -> Tensor:
        return fn(*agree(a, b))
    return _named(op, doc)


def _variadic(fn: Callable, doc: str) -> Callable:
    def op(n: Node, r: Run, *xs: Tensor) -> Tensor:
        return functools.reduce(lambda a, b: fn(*agree(a, b)), xs)
    return _named(op, doc)


def _div(a: Tensor, b: Tensor) -> Tensor:
    """Div: integers truncate toward zero (onnxruntime's C++ division)."""
    if a.is_floating_point() or b.is_floating_point():
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


def _pow(a: Tensor, b: Tensor) -> Tensor:
    """Pow: the result keeps the base's type."""
    return torch.pow(a, b).to(a.dtype)


def _mod(n: Node, r: Run, a: Tensor, b: Tensor) -> Tensor:
    """Mod: fmod=1 is C's fmod (sign of the dividend), else the divisor's sign (Python's %)."""
    a, b = agree(a, b)
    return torch.fmod(a, b) if n.get("fmod", 0) else torch.remainder(a, b)


def _mean(n: Node, r: Run, *xs: Tensor) -> Tensor:
    """Mean: elementwise mean of the inputs, broadcast."""
    return OPS["Sum"](n, r, *xs) / len(xs)


def _clip(n: Node, r: Run, x: Tensor, lo: Tensor | None = None, hi: Tensor | None = None) -> Tensor:
    """Clip: bounds from inputs (opset 11+) or attributes (before); a missing bound is open."""
    low = lo.item() if lo is not None and lo.numel() else n.get("min")
    high = hi.item() if hi is not None and hi.numel() else n.get("max")
    return x if low is None and high is None else torch.clamp(x, low, high)


def _is_inf(n: Node, r: Run, x: Tensor) -> Tensor:
    """IsInf: detect_negative / detect_positive select the signs."""
    neg, pos = n.get("detect_negative", 1), n.get("detect_positive", 1)
    return (torch.isneginf(x) if neg else torch.zeros_like(x, dtype=torch.bool)) | \
        (torch.isposinf(x) if pos else torch.zeros_like(x, dtype=torch.bool))


def _prelu(n: Node, r: Run, x: Tensor, slope: Tensor) -> Tensor:
    """PRelu: ``x`` where positive, else ``slope * x`` (slope broadcast)."""
    return torch.where(x >= 0, x, x * slope.to(x.dtype))


def _selu(n: Node, r: Run, x: Tensor) -> Tensor:
    """Selu with the node's alpha and gamma."""
    alpha, gamma = n.get("alpha", 1.67326319217681884765625), n.get("gamma", 1.05070102214813232421875)
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(x))


ACTIVATIONS = {
    "Relu": _unary(torch.relu, "Relu."),
    "Sigmoid": _unary(torch.sigmoid, "Sigmoid."),
    "Tanh": _unary(torch.tanh, "Tanh."),
    "Erf": _unary(torch.erf, "Erf (GELU's exact form is built from it)."),
    "Softsign": _unary(F.softsign, "Softsign."),
    "Mish": _unary(F.mish, "Mish."),
    "HardSwish": _unary(F.hardswish, "HardSwish: x * HardSigmoid(x) with alpha 1/6, beta 0.5."),
    "LeakyRelu": _named(lambda n, r, x: F.leaky_relu(x, n.get("alpha", 0.01)), "LeakyRelu."),
    "Elu": _named(lambda n, r, x: F.elu(x, n.get("alpha", 1.0)), "Elu."),
    "Gelu": _named(lambda n, r, x: F.gelu(x, approximate=n.get("approximate", "none")), "Gelu (opset 20)."),
    "Softplus": _unary(F.softplus, "Softplus: log(1 + exp(x)) (linear above 20, as torch)."),
    "HardSigmoid": _named(lambda n, r, x: (n.get("alpha", 0.2) * x + n.get("beta", 0.5)).clamp(0, 1),
                          "HardSigmoid: clamp(alpha * x + beta, 0, 1)."),
    "PRelu": _prelu,
    "Selu": _selu,
    "Clip": _clip,
}

ELEMENTWISE = {
    **{name: _unary(fn, f"{name}.") for name, fn in {
        "Abs": torch.abs, "Neg": torch.neg, "Sqrt": torch.sqrt, "Exp": torch.exp, "Log": torch.log,
        "Floor": torch.floor, "Ceil": torch.ceil, "Reciprocal": torch.reciprocal, "Sign": torch.sign,
        "Sin": torch.sin, "Cos": torch.cos, "Not": torch.logical_not, "IsNaN": torch.isnan}.items()},
    "Round": _unary(torch.round, "Round: halves to even."),
    "Identity": _unary(lambda x: x, "Identity."),
    "Add": _binary(torch.add, "Add."), "Sub": _binary(torch.sub, "Sub."), "Mul": _binary(torch.mul, "Mul."),
    "Div": _binary(_div, _div.__doc__), "Pow": _binary(_pow, _pow.__doc__),
    "Equal": _binary(torch.eq, "Equal."), "Less": _binary(torch.lt, "Less."),
    "LessOrEqual": _binary(torch.le, "LessOrEqual."), "Greater": _binary(torch.gt, "Greater."),
    "GreaterOrEqual": _binary(torch.ge, "GreaterOrEqual."), "And": _binary(torch.logical_and, "And."),
    "Or": _binary(torch.logical_or, "Or."), "Xor": _binary(torch.logical_xor, "Xor."),
    "Min": _variadic(torch.minimum, "Min: elementwise over the inputs."),
    "Max": _variadic(torch.maximum, "Max: elementwise over the inputs."),
    "Sum": _variadic(torch.add, "Sum: elementwise over the inputs."),
    "Mean": _mean, "Mod": _mod, "IsInf": _is_inf,
    "Where": _named(lambda n, r, c, a, b: torch.where(c, *agree(a, b)), "Where."),
}


# ---------------------------------------------------------------- types, shapes and indexing
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


# ---------------------------------------------------------------- reductions and matrix products
def _reduce(fn: Callable, doc: str) -> Callable:
    def op(n: Node, r: Run, x: Tensor, axes: Tensor | None = None) -> Tensor:
        dims = _arg_or_attr(n, axes, "axes")
        if not dims:
            if n.get("noop_with_empty_axes", 0):
                return x
            dims = range(x.dim())
        return fn(x, tuple(sorted(_axis(a, x.dim()) for a in dims)), bool(n.get("keepdims", 1)))
    return _named(op, doc)


def _prod(x: Tensor, dims: tuple[int, ...], keep: bool) -> Tensor:
    for d in reversed(dims):
        x = x.prod(d, keepdim=keep)
    return x


def _arg_extreme(fn: Callable, doc: str) -> Callable:
    def op(n: Node, r: Run, x: Tensor) -> Tensor:
        axis, keep = _axis(n.get("axis", 0), x.dim()), bool(n.get("keepdims", 1))
        if n.get("select_last_index", 0):
            return x.shape[axis] - 1 - fn(x.flip(axis), axis, keep)
        return fn(x, axis, keep)
    return _named(op, doc)


def _softmax_like(fn: Callable, doc: str) -> Callable:
    def op(n: Node, r: Run, x: Tensor) -> Tensor:
        if n.opset >= 13:
            return fn(x, _axis(n.get("axis", -1), x.dim()))
        axis = _axis(n.get("axis", 1), x.dim())  # before 13: over all dims from axis on, as one 2-D row
        return fn(x.reshape(math.prod(x.shape[:axis]), -1), -1).reshape(x.shape)
    return _named(op, doc)


def _gemm(n: Node, r: Run, a: Tensor, b: Tensor, c: Tensor | None = None) -> Tensor:
    """Gemm: ``alpha * A' @ B' + beta * C`` with transA / transB."""
    a, b = agree(a.t() if n.get("transA", 0) else a, b.t() if n.get("transB", 0) else b)
    y = a @ b
    alpha, beta = n.get("alpha", 1.0), n.get("beta", 1.0)
    y = y if alpha == 1 else y * alpha
    return y if c is None else y + (c.to(y.dtype) if beta == 1 else c.to(y.dtype) * beta)


REDUCTIONS = {
    "ReduceMean": _reduce(lambda x, d, k: x.mean(d, keepdim=k), "ReduceMean."),
    "ReduceSum": _reduce(lambda x, d, k: x.sum(d, keepdim=k), "ReduceSum."),
    "ReduceMax": _reduce(lambda x, d, k: x.amax(d, keepdim=k), "ReduceMax."),
    "ReduceMin": _reduce(lambda x, d, k: x.amin(d, keepdim=k), "ReduceMin."),
    "ReduceProd": _reduce(_prod, "ReduceProd."),
    "ReduceL1": _reduce(lambda x, d, k: x.abs().sum(d, keepdim=k), "ReduceL1."),
    "ReduceL2": _reduce(lambda x, d, k: x.square().sum(d, keepdim=k).sqrt(), "ReduceL2."),
    "ReduceSumSquare": _reduce(lambda x, d, k: x.square().sum(d, keepdim=k), "ReduceSumSquare."),
    "ReduceLogSum": _reduce(lambda x, d, k: x.sum(d, keepdim=k).log(), "ReduceLogSum."),
    "ReduceLogSumExp": _reduce(lambda x, d, k: torch.logsumexp(x, d, keepdim=k), "ReduceLogSumExp."),
    "ArgMax": _arg_extreme(torch.argmax, "ArgMax (first index, or the last with select_last_index)."),
    "ArgMin": _arg_extreme(torch.argmin, "ArgMin (first index, or the last with select_last_index)."),
    "Softmax": _softmax_like(torch.softmax, "Softmax: one axis from opset 13, the flattened tail before."),
    "LogSoftmax": _softmax_like(torch.log_softmax, "LogSoftmax: one axis from opset 13, the flattened tail before."),
    "MatMul": _named(lambda n, r, a, b: torch.matmul(*agree(a, b)), "MatMul (numpy semantics)."),
    "Einsum": _named(lambda n, r, *xs: torch.einsum(n.get("equation").replace(" ", ""), *_agree_all(list(xs))),
                     "Einsum."),
    "Gemm": _gemm,
}


def constant_value(n: Node) -> Tensor:
    """Constant: its value (tensor, float(s) or int(s)) as a CPU tensor."""
    for name, dtype in (("value", None), ("value_float", torch.float32), ("value_floats", torch.float32),
                        ("value_int", torch.int64), ("value_ints", torch.int64)):
        if name in n.attrs:
            return n.attrs[name] if dtype is None else torch.tensor(n.attrs[name], dtype=dtype)
    raise NotImplementedError("Constant: only tensor, float(s) and int(s) values")


OPS: dict[str, Callable] = {
    **ELEMENTWISE, **ACTIVATIONS, **TENSORS, **REDUCTIONS,
    "Constant": _named(lambda n, r: constant_value(n), "Constant (evaluated once, at convert time)."),
}

# Inputs read as Python numbers (shapes, axes, sizes, bounds): kept on the CPU, never moved to the run's device.
HOST_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2), "Squeeze": (1,),
    "Unsqueeze": (1,), "Split": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3), "Resize": (1, 2, 3),
    "Upsample": (1,), "TopK": (1,), "OneHot": (1,), "CumSum": (1,), "Trilu": (1,), "Clip": (1, 2),
    **{name: (1,) for name in REDUCTIONS if name.startswith("Reduce")},
}
