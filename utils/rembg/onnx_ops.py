"""ONNX operators as small torch functions: the shared pieces (:class:`Node`, :class:`Run`, helpers), the
element-wise ops, reductions and products. Types, shapes and indexing are in :mod:`.onnx_shape`; convolution,
pooling, normalisation and resampling in :mod:`.onnx_nn`; :mod:`.onnx_torch` merges the three tables.

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
    **ELEMENTWISE, **ACTIVATIONS, **REDUCTIONS,
    "Constant": _named(lambda n, r: constant_value(n), "Constant (evaluated once, at convert time)."),
}

# Inputs read as Python numbers (shapes, axes, sizes, bounds): kept on the CPU, never moved to the run's device.
HOST_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2), "Squeeze": (1,),
    "Unsqueeze": (1,), "Split": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3), "Resize": (1, 2, 3),
    "Upsample": (1,), "TopK": (1,), "OneHot": (1,), "CumSum": (1,), "Trilu": (1,), "Clip": (1, 2),
    **{name: (1,) for name in REDUCTIONS if name.startswith("Reduce")},
}
