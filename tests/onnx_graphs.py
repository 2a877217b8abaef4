"""Shared by the onnx_torch tests: ONNX graphs built with ``onnx.helper``, run through onnxruntime (CPU) and
through ``convert``, and the comparison of the two.

Tolerance, float32: ``|ours - onnxruntime| <= 1e-5 * max(1, |onnxruntime|.max())``. Both sides compute in
float32 but with different kernels (MLAS vs oneDNN / ATen: other summation orders in convolutions and
matrix products, and resizes as two separable passes instead of one 2-D pass), which differ by a few
float32 rounding steps (~1e-7 relative each); measured differences here stay below 1.1e-6 of the output's
scale (the largest: cubic resizes), a tenth of the tolerance. Integer and boolean outputs must be equal.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from conftest import PACK

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ot = importlib.import_module(PACK.__name__ + ".utils.rembg.onnx_torch")

IR_VERSION = 9  # onnx 1.23 writes IR 14 by default, newer than onnxruntime reads
INT_MAX = np.iinfo(np.int64).max


# ---------------------------------------------------------------- graph building and running
class Graph:
    """A tiny graph builder: ``g.op("Conv", x, w, pads=[1, 1, 1, 1])`` returns the output name."""

    def __init__(self, seed: int = 0):
        self.nodes, self.inits, self.rng = [], [], np.random.default_rng(seed)

    def op(self, op_type: str, *inputs: str, outputs: int = 1, domain: str = "", **attrs):
        names = [f"v{len(self.nodes)}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, domain=domain, **attrs))
        return names[0] if outputs == 1 else names

    def init(self, array) -> str:
        name = f"w{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, *shape: int, scale: float = 0.3) -> str:
        return self.init((self.rng.standard_normal(shape) * scale).astype(np.float32))

    def const(self, array) -> str:
        out = f"c{len(self.nodes)}"
        self.nodes.append(helper.make_node("Constant", [], [out], value=numpy_helper.from_array(np.asarray(array))))
        return out

    def model(self, x_shape, out: str, opset: int, x_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("x", x_type, x_shape)],
                                  [helper.make_empty_tensor_value_info(out)], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)


def reference(model: onnx.ModelProto, x: np.ndarray, per_image: bool = False) -> np.ndarray:
    """onnxruntime's first output, on the whole batch or image by image (a graph declared with batch 1)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    if per_image:
        return np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    return session.run(None, {"x": x})[0]


def converted(model: onnx.ModelProto, tmp_path, dtype=torch.float32):
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    return ot.convert(path, dtype=dtype)


def ours(model: onnx.ModelProto, x: np.ndarray, tmp_path) -> np.ndarray:
    with torch.inference_mode():
        return converted(model, tmp_path)(torch.from_numpy(x)).numpy()


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
        return
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    assert float(np.abs(got.astype(np.float64) - want).max(initial=0.0)) <= 1e-5 * scale  # see the module docstring


# ---------------------------------------------------------------- one-node graphs and arrays
def single(op_type: str, x, *others, opset: int = 17, outputs: int = 1, pick: int = 0, **attrs):
    """One node: input ``x`` (graph input) and ``others`` as initializers (``None``: omitted input)."""
    g = Graph()
    names = [g.init(o) if o is not None else "" for o in others]
    outs = g.op(op_type, "x", *names, outputs=outputs, **attrs)
    x = np.asarray(x)
    out = outs if outputs == 1 else outs[pick]
    return g.model(list(x.shape), out, opset, helper.np_dtype_to_tensor_dtype(x.dtype)), x


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def i64(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def f32(*values) -> np.ndarray:
    return np.array(values, dtype=np.float32)
