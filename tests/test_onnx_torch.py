"""utils/rembg/onnx_torch: ONNX graphs converted to torch, against onnxruntime on the same graphs.

Graphs are built here with ``onnx.helper`` (one per model family, and one node per operator pitfall), saved
under ``tmp_path``, and run through onnxruntime (CPU) and through ``convert``.

Tolerance, float32: ``|ours - onnxruntime| <= 1e-5 * max(1, |onnxruntime|.max())``. Both sides compute in
float32 but with different kernels (MLAS vs oneDNN / ATen: other summation orders in convolutions and
matrix products, and resizes as two separable passes instead of one 2-D pass), which differ by a few
float32 rounding steps (~1e-7 relative each); measured differences here stay below 1.1e-6 of the output's
scale (the largest: cubic resizes), a tenth of the tolerance. Integer and boolean outputs must be equal.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import PACK, ROOT

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


# ---------------------------------------------------------------- model families
def u2net_like(batch) -> onnx.ModelProto:
    """U^2-Net's pattern (opset 11): Resize sizes from Shape -> Gather -> Unsqueeze -> Concat -> Cast, and
    Shape -> Slice for [N, C], as u2netp.onnx; MaxPool with ceil_mode on an odd size; dilated Conv."""
    g = Graph(1)
    h1 = g.op("Relu", g.op("Conv", "x", g.weight(8, 3, 3, 3), g.weight(8), pads=[1, 1, 1, 1]))  # [N, 8, 21, 21]
    p1 = g.op("MaxPool", h1, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, pads=[0, 0, 0, 0])  # 11 x 11
    h2 = g.op("Relu", g.op("Conv", p1, g.weight(8, 8, 3, 3), g.weight(8), pads=[2, 2, 2, 2], dilations=[2, 2]))
    shape1 = g.op("Shape", h1)
    dims = [g.op("Unsqueeze", g.op("Gather", shape1, g.const(np.array(i)), axis=0), axes=[0]) for i in (2, 3)]
    hw = g.op("Cast", g.op("Concat", *dims, axis=0), to=TensorProto.INT64)
    nc = g.op("Slice", g.op("Shape", h2), g.const(np.array([0])), g.const(np.array([2])), g.const(np.array([0])))
    sizes = g.op("Concat", nc, hw, axis=0)
    empty = g.const(np.array([], dtype=np.float32))
    up = g.op("Resize", h2, empty, empty, sizes, mode="linear", coordinate_transformation_mode="pytorch_half_pixel")
    fused = g.op("Conv", g.op("Concat", up, h1, axis=1), g.weight(1, 16, 1, 1), g.weight(1))
    side = g.op("Conv", h1, g.weight(1, 8, 1, 1), g.weight(1))
    return g.model([batch, 3, 21, 21], g.op("Sigmoid", g.op("Add", fused, side)), 11)


def isnet_like(batch) -> onnx.ModelProto:
    """IS-Net's pattern (opset 13): Conv + BatchNormalization + Relu, bilinear Resize by scales (half_pixel),
    F.interpolate's nearest export (asymmetric, floor), Concat, Sigmoid."""
    g = Graph(2)

    def conv_bn_relu(x: str, cin: int, cout: int, stride: int) -> str:
        bn = [g.init(np.abs(g.rng.standard_normal(cout)).astype(np.float32) + 0.5 * (i % 2 == 1)) for i in range(4)]
        conv = g.op("Conv", x, g.weight(cout, cin, 3, 3), g.weight(cout), pads=[1, 1, 1, 1], strides=[stride] * 2)
        return g.op("Relu", g.op("BatchNormalization", conv, *bn, epsilon=1e-5))

    f1 = conv_bn_relu("x", 3, 8, 2)  # [N, 8, 8, 8]
    f2 = conv_bn_relu(g.op("MaxPool", f1, kernel_shape=[2, 2], strides=[2, 2]), 8, 8, 1)  # [N, 8, 4, 4]
    empty = g.const(np.array([], dtype=np.float32))
    up = g.op("Resize", f2, empty, g.const(np.array([1, 1, 2, 2], dtype=np.float32)), mode="linear",
              coordinate_transformation_mode="half_pixel")
    cat = g.op("Concat", up, f1, axis=1)  # [N, 16, 8, 8]
    big = g.op("Resize", cat, empty, g.const(np.array([1, 1, 2, 2], dtype=np.float32)), mode="nearest",
               coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return g.model([batch, 3, 16, 16], g.op("Sigmoid", g.op("Conv", big, g.weight(1, 16, 1, 1))), 13)


def _attention(g: Graph, tokens: str) -> str:
    """Window attention on [W, 16, 8] tokens with a relative position bias (Gather from a table)."""
    q, k, v = (g.op("Add", g.op("MatMul", tokens, g.weight(8, 8)), g.weight(8)) for _ in range(3))
    scores = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 2, 1])), g.const(np.float32(8 ** -0.5)))
    coords = np.stack(np.meshgrid(np.arange(4), np.arange(4), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :] + 3)
    index = (rel[0] * 7 + rel[1]).astype(np.int64)  # [16, 16] into a 7 x 7 table, as Swin
    bias = g.op("Gather", g.weight(49), g.init(index), axis=0)
    attn = g.op("Softmax", g.op("Add", scores, bias), axis=-1)
    return g.op("Add", g.op("MatMul", g.op("MatMul", attn, v), g.weight(8, 8)), g.weight(8))


def _decomposed_layer_norm(g: Graph, x: str) -> str:
    mean = g.op("ReduceMean", x, axes=[-1])
    d = g.op("Sub", x, mean)
    var = g.op("ReduceMean", g.op("Pow", d, g.const(np.float32(2.0))), axes=[-1])
    normed = g.op("Div", d, g.op("Sqrt", g.op("Add", var, g.const(np.float32(1e-5)))))
    return g.op("Add", g.op("Mul", normed, g.weight(8)), g.weight(8))


def _gelu_mlp(g: Graph, x: str) -> str:
    h = g.op("Add", g.op("MatMul", x, g.weight(8, 16)), g.weight(16))
    erf = g.op("Erf", g.op("Div", h, g.const(np.float32(1.4142135))))
    gelu = g.op("Mul", g.op("Mul", h, g.op("Add", erf, g.const(np.float32(1.0)))), g.const(np.float32(0.5)))
    return g.op("Add", g.op("MatMul", gelu, g.weight(16, 8)), g.weight(8))


def _swin_block(g: Graph, pe: str) -> str:
    """[N, 8, 8, 8] map -> tokens, LayerNorm, window attention, decomposed LayerNorm + GELU MLP -> map."""
    nc = g.op("Slice", g.op("Shape", pe), g.const(np.array([0])), g.const(np.array([2])))
    flat = g.op("Reshape", pe, g.op("Concat", nc, g.const(np.array([-1])), axis=0))  # [N, 8, 64]
    t = g.op("Transpose", flat, perm=[0, 2, 1])  # [N, 64, 8]
    ln = g.op("LayerNormalization", t, g.weight(8), g.weight(8), axis=-1, epsilon=1e-5)
    win = g.op("Reshape", ln, g.const(np.array([0, 2, 4, 2, 4, 8])))  # 0 copies the batch
    win = g.op("Reshape", g.op("Transpose", win, perm=[0, 1, 3, 2, 4, 5]), g.const(np.array([-1, 16, 8])))
    attn = _attention(g, win)
    n = g.op("Slice", g.op("Shape", "x"), g.const(np.array([0])), g.const(np.array([1])))
    back = g.op("Reshape", attn, g.op("Concat", n, g.const(np.array([2, 2, 4, 4, 8])), axis=0))
    back = g.op("Reshape", g.op("Transpose", back, perm=[0, 1, 3, 2, 4, 5]), g.const(np.array([-1, 64, 8])))
    r = g.op("Add", t, back)
    r = g.op("Add", r, _gelu_mlp(g, _decomposed_layer_norm(g, r)))
    return g.op("Reshape", g.op("Transpose", r, perm=[0, 2, 1]), g.const(np.array([0, 8, 8, 8])))


def birefnet_like(batch) -> onnx.ModelProto:
    """BiRefNet / Swin's pattern (opset 17): patch embedding, LayerNorm (fused and decomposed), window
    attention, Erf GELU, reflect Pad, a roll (Slice + Concat), ConvTranspose, Einsum, GatherElements and
    GatherND (deformable convolution's decomposition), Where / Equal / Expand."""
    g = Graph(3)
    pe = g.op("Conv", "x", g.weight(8, 3, 4, 4), g.weight(8), strides=[4, 4])  # [N, 8, 8, 8]
    feat = _swin_block(g, pe)
    padded = g.op("Pad", feat, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1])), mode="reflect")
    feat = g.op("Conv", padded, g.weight(8, 8, 3, 3), g.weight(8))
    ends = [g.const(np.array([v])) for v in (-2, INT_MAX, 0, 3)]
    rolled = g.op("Concat", g.op("Slice", feat, ends[0], ends[1], ends[3]), g.op("Slice", feat, ends[2], ends[0],
                                                                                   ends[3]), axis=3)
    up = g.op("ConvTranspose", rolled, g.weight(8, 4, 2, 2), g.weight(4), strides=[2, 2])  # [N, 4, 16, 16]
    mixed = g.op("Einsum", up, g.weight(6, 4), equation="bchw,dc->bdhw")  # [N, 6, 16, 16]
    n = g.op("Slice", g.op("Shape", mixed), g.const(np.array([0])), g.const(np.array([1])))
    shape = g.op("Concat", n, g.const(np.array([2, 16, 16])), axis=0)
    pick = g.rng.integers(0, 6, (1, 2, 16, 16)).astype(np.int64)
    gathered = g.op("GatherElements", mixed, g.op("Expand", g.init(pick), shape), axis=1)  # [N, 2, 16, 16]
    flip = np.stack(np.meshgrid(np.arange(2), 15 - np.arange(16), indexing="ij"), axis=-1).astype(np.int64)
    hwcn = g.op("GatherND", g.op("Transpose", gathered, perm=[1, 2, 3, 0]), g.init(flip))  # rows flipped
    z = g.op("Add", g.op("Transpose", hwcn, perm=[3, 0, 1, 2]), g.op("Expand", g.weight(1, 2, 1, 1), shape))
    positive = g.op("Equal", g.op("Cast", g.op("Greater", z, g.const(np.float32(0))), to=TensorProto.INT64),
                    g.const(np.int64(1)))
    leaky = g.op("Where", positive, z, g.op("Mul", z, g.const(np.float32(0.1))))
    return g.model([batch, 3, 32, 32], g.op("Conv", leaky, g.weight(1, 2, 1, 1), g.weight(1)), 17)


FAMILIES = {"u2net": (u2net_like, 21), "isnet": (isnet_like, 16), "birefnet": (birefnet_like, 32)}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("declared", ["N", 1], ids=["symbolic_batch", "fixed_batch_1"])
@pytest.mark.parametrize("family", FAMILIES)
def test_family_matches_onnxruntime(family, declared, batch, tmp_path):
    build, size = FAMILIES[family]
    model = build(declared)
    x = np.random.default_rng(batch).standard_normal((batch, 3, size, size)).astype(np.float32)
    got = ours(model, x, tmp_path)
    assert got.shape[0] == batch
    assert_close(got, reference(model, x, per_image=declared == 1))  # onnxruntime refuses batch 3 at [1, ...]


# ---------------------------------------------------------------- one operator at a time
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


X4 = rand(2, 3, 4, 5)
IMG = rand(1, 2, 7, 9)
OP_CASES = {
    # Softmax: before opset 13 the axis starts a flattened tail; from 13 it is one axis
    "softmax_11_axis1": single("Softmax", X4, opset=11, axis=1),
    "softmax_13_axis1": single("Softmax", X4, opset=13, axis=1),
    "softmax_11_default": single("Softmax", X4, opset=11),
    "logsoftmax_11_axis2": single("LogSoftmax", X4, opset=11, axis=2),
    # Squeeze / Unsqueeze: attribute (11) vs input (13)
    "squeeze_11_attr": single("Squeeze", rand(2, 1, 3, 1), opset=11, axes=[1]),
    "squeeze_13_input": single("Squeeze", rand(2, 1, 3, 1), i64(-1), opset=13),
    "squeeze_13_all": single("Squeeze", rand(2, 1, 3, 1), opset=13),
    "unsqueeze_11_attr": single("Unsqueeze", rand(2, 3), opset=11, axes=[0, 3]),
    "unsqueeze_13_input": single("Unsqueeze", rand(2, 3), i64(-1, 1), opset=13),
    # Split: attribute (11), input (13), num_outputs with a smaller last part (18)
    "split_11_attr": single("Split", X4, opset=11, outputs=2, pick=1, axis=1, split=[1, 2]),
    "split_13_input": single("Split", X4, i64(3, 2), opset=13, outputs=2, pick=1, axis=-1),
    "split_13_equal": single("Split", X4, opset=13, outputs=2, pick=1, axis=0),
    "split_18_uneven": single("Split", rand(7, 2), opset=18, outputs=3, pick=2, axis=0, num_outputs=3),
    # Slice: negative steps and bounds, omitted axes, the attribute form of opset 9
    "slice_negative_step": single("Slice", X4, i64(-1), i64(-INT_MAX), i64(3), i64(-2)),
    "slice_two_axes": single("Slice", X4, i64(1, 0), i64(INT_MAX, -1), i64(1, -1), i64(2, 1)),
    "slice_no_axes": single("Slice", X4, i64(0, 1), i64(1, 3)),
    "slice_9_attr": single("Slice", X4, opset=9, starts=[1, -3], ends=[3, -1], axes=[1, 3]),
    # Pad: modes, the attribute form, axes (18), negative pads crop
    "pad_constant_value": single("Pad", IMG, i64(0, 0, 1, 2, 0, 0, 3, 0), f32(1.5), mode="constant"),
    "pad_reflect": single("Pad", IMG, i64(0, 0, 2, 1, 0, 0, 1, 3), mode="reflect"),
    "pad_edge": single("Pad", IMG, i64(0, 0, 2, 1, 0, 0, 1, 3), mode="edge"),
    "pad_2_attr": single("Pad", IMG, opset=2, pads=[0, 1, 1, 0, 0, 0, 1, 1], value=-2.0),
    "pad_18_axes": single("Pad", IMG, i64(1, 1, 3, 0), None, i64(3, 1), opset=18, mode="reflect"),
    "pad_negative": single("Pad", IMG, i64(0, 0, -1, 2, 0, 0, 1, -3)),
    # Clip: attributes (6) vs inputs (11+), one bound omitted
    "clip_6_attr": single("Clip", X4, opset=6, min=-0.5, max=0.7),
    "clip_11_min_only": single("Clip", X4, f32(-0.2)[0], opset=11),
    "clip_13_max_only": single("Clip", X4, None, f32(0.3)[0], opset=13),
    # Reductions: axes attribute (13) vs input (18), keepdims, noop_with_empty_axes
    "reducemean_13_attr": single("ReduceMean", X4, opset=13, axes=[1, -1], keepdims=0),
    "reducemean_18_input": single("ReduceMean", X4, i64(-2), opset=18),
    "reducemean_18_all": single("ReduceMean", X4, opset=18, keepdims=0),
    "reducemean_18_noop": single("ReduceMean", X4, opset=18, noop_with_empty_axes=1),
    "reducesum_13_input": single("ReduceSum", X4, i64(0, 2), opset=13, keepdims=0),
    "reducemax_18": single("ReduceMax", X4, i64(1), opset=18),
    "reducel2_13": single("ReduceL2", X4, opset=13, axes=[2, 3]),
    "reduceprod_13": single("ReduceProd", X4, opset=13, axes=[1, 3], keepdims=0),
    "argmax_last": single("ArgMax", np.array([[1, 3, 3], [2, 2, 0]], np.float32), axis=1, select_last_index=1),
    # Conv: auto_pad SAME_UPPER / SAME_LOWER with strides, asymmetric pads, groups + dilations, 1-D
    "conv_same_upper": single("Conv", IMG, rand(4, 2, 3, 3), auto_pad="SAME_UPPER", strides=[2, 2]),
    "conv_same_lower": single("Conv", IMG, rand(4, 2, 4, 4), auto_pad="SAME_LOWER", strides=[2, 3]),
    "conv_asymmetric": single("Conv", IMG, rand(4, 2, 3, 3), rand(4), pads=[0, 1, 2, 0]),
    "conv_groups": single("Conv", rand(1, 4, 9, 9), rand(6, 2, 3, 3), group=2, dilations=[2, 2], pads=[1, 2, 1, 2]),
    "conv_1d": single("Conv", rand(2, 3, 11), rand(4, 3, 3), strides=[2], pads=[1, 0]),
    # ConvTranspose: output_padding, asymmetric pads, groups + dilations
    "convtranspose_output_padding": single("ConvTranspose", IMG, rand(2, 3, 3, 3), rand(3), strides=[2, 2],
                                           pads=[1, 1, 1, 1], output_padding=[1, 0]),
    "convtranspose_asymmetric": single("ConvTranspose", IMG, rand(2, 3, 3, 3), strides=[2, 2], pads=[0, 1, 2, 0]),
    "convtranspose_groups": single("ConvTranspose", IMG, rand(2, 2, 3, 3), group=2, dilations=[2, 2], strides=[3, 1]),
    # Pools: ceil_mode, pads, count_include_pad, uneven pads
    "maxpool_ceil_pads": single("MaxPool", IMG, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    "maxpool_dilations": single("MaxPool", IMG, kernel_shape=[2, 2], dilations=[2, 2], ceil_mode=1, strides=[2, 2]),
    "maxpool_uneven_pads": single("MaxPool", IMG, kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1]),
    "maxpool_same_upper": single("MaxPool", IMG, kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    "avgpool_exclude_pad_ceil": single("AveragePool", IMG, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                       ceil_mode=1),
    "avgpool_include_pad": single("AveragePool", IMG, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                  count_include_pad=1),
    "avgpool_include_pad_ceil": single("AveragePool", IMG, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                       count_include_pad=1, ceil_mode=1),
    "avgpool_uneven_pads": single("AveragePool", IMG, kernel_shape=[2, 3], pads=[0, 2, 1, 0]),
    "globalavgpool": single("GlobalAveragePool", IMG),
    # Gemm: transA / transB / alpha / beta, C broadcast
    "gemm_trans": single("Gemm", rand(5, 3), rand(4, 5), rand(4), transA=1, transB=1, alpha=0.5, beta=2.0),
    "gemm_plain": single("Gemm", rand(3, 5), rand(5, 4), rand(1, 4)),
    "matmul_batched": single("MatMul", rand(2, 1, 3, 5), rand(4, 5, 2)),
    "einsum_attention": single("Einsum", rand(2, 3, 4), rand(2, 5, 4), equation="bqd, bkd -> bqk"),
    # integer arithmetic: Div truncates toward zero; Mod's two sign rules
    "div_int": single("Div", i64(7, -7, 7, -7, 0), i64(2, 2, -2, -2, 3)),
    "mod_int": single("Mod", i64(7, -7, 7, -7), i64(3, 3, -3, -3)),
    "mod_fmod": single("Mod", f32(7.5, -7.5, 7.5), f32(2, 2, -2), fmod=1),
    "pow_int_exponent": single("Pow", X4, np.int64(3)),
    # indexing and shapes
    "gather_negative": single("Gather", X4, i64(-1, 0), axis=2),
    "gather_scalar": single("Gather", X4, np.int64(-2), axis=1),
    "gather_elements": single("GatherElements", rand(3, 4), i64(0, -1, 2, 1, 0, 3).reshape(3, 2) % 4, axis=1),
    "gathernd_batch_dims": single("GatherND", rand(2, 3, 4), i64(1, 2, 0, 3, 2, 1, 1, 0).reshape(2, 2, 2),
                                  batch_dims=1),
    "gathernd_full": single("GatherND", rand(3, 4), i64(0, 1, 2, -1).reshape(2, 2)),
    "scatternd": single("ScatterND", rand(4, 3), i64(2, 0).reshape(2, 1), rand(2, 3, seed=1)),
    "scatternd_add": single("ScatterND", rand(4, 3), i64(1, 1).reshape(2, 1), rand(2, 3, seed=1), opset=16,
                            reduction="add"),
    "scatter_elements": single("ScatterElements", rand(3, 3), i64(1, 0, 2, 0, 2, 1).reshape(2, 3),
                               rand(2, 3, seed=2), axis=0),
    "reshape_zero_copy": single("Reshape", X4, i64(0, -1, 5)),
    "reshape_allowzero": single("Reshape", rand(0, 3), i64(3, 0), opset=14, allowzero=1),
    "flatten": single("Flatten", X4, axis=-2),
    "expand": single("Expand", rand(3, 1), i64(2, 1, 4)),
    "tile": single("Tile", rand(2, 3), i64(2, 3)),
    "shape_start_end": single("Shape", X4, opset=15, start=1, end=-1),
    "size": single("Size", X4),
    "constant_of_shape": single("ConstantOfShape", i64(2, 3), value=numpy_helper.from_array(f32(0.5))),
    "range": single("Range", np.int64(2), np.int64(11), np.int64(3)),
    "cumsum_exclusive_reverse": single("CumSum", X4, np.int64(1), exclusive=1, reverse=1),
    "trilu_lower": single("Trilu", rand(2, 4, 5), np.int64(1), upper=0),
    "topk": single("TopK", X4, i64(2), outputs=2, pick=1, axis=2, largest=0),
    "onehot": single("OneHot", i64(0, 2, -1), i64(4), f32(-1, 3), axis=0),
    "nonzero": single("NonZero", np.array([[1, 0], [0, 3]], np.float32)),
    "where_broadcast": single("Where", np.array([[True], [False]]), rand(2, 3), rand(1, 3, seed=1)),
    "castlike": single("CastLike", X4, i64(1)),
    "isinf": single("IsInf", f32(1, np.inf, -np.inf, np.nan), detect_negative=0),
    "depth_to_space_dcr": single("DepthToSpace", rand(1, 8, 2, 3), blocksize=2),
    "depth_to_space_crd": single("DepthToSpace", rand(1, 8, 2, 3), blocksize=2, mode="CRD"),
    "space_to_depth": single("SpaceToDepth", rand(1, 2, 4, 6), blocksize=2),
    "convtranspose_output_shape": single("ConvTranspose", IMG, rand(2, 3, 3, 3), strides=[2, 2],
                                         output_shape=[15, 18]),
    "convtranspose_same_upper": single("ConvTranspose", IMG, rand(2, 3, 4, 3), strides=[2, 2], auto_pad="SAME_UPPER"),
    "convtranspose_same_lower": single("ConvTranspose", IMG, rand(2, 3, 4, 3), strides=[2, 2], auto_pad="SAME_LOWER"),
    # elementwise, variadic and logic
    **{f"unary_{op}": single(op, X4) for op in ("Abs", "Neg", "Exp", "Floor", "Ceil", "Tanh", "Sigmoid", "Erf",
                                                "Relu", "Sign", "Sin", "Cos", "Softsign", "Identity")},
    **{f"positive_{op}": single(op, np.abs(X4) + 0.1) for op in ("Sqrt", "Log", "Reciprocal")},
    "round_half_even": single("Round", f32(0.5, 1.5, 2.5, -0.5, -1.5, 2.4)),
    "max_variadic": single("Max", X4, rand(4, 5, seed=1), rand(3, 1, 1, seed=2)),
    "min_variadic": single("Min", X4, rand(4, 5, seed=1)),
    "sum_variadic": single("Sum", X4, rand(5, seed=1), rand(4, 1, seed=2)),
    "mean_variadic": single("Mean", X4, rand(4, 5, seed=1)),
    "less_or_equal": single("LessOrEqual", X4, rand(5, seed=1)),
    "greater_or_equal": single("GreaterOrEqual", X4, rand(5, seed=1)),
    "less": single("Less", i64(1, 5, 3), i64(3)),
    "equal_int": single("Equal", i64(1, 5, 3), i64(5, 5, 5)),
    "xor": single("Xor", np.array([True, False, True]), np.array([True, True, False])),
    "and": single("And", np.array([True, False, True]), np.array([True, True, False])),
    "or": single("Or", np.array([True, False, False]), np.array([True, True, False])),
    "not": single("Not", np.array([True, False])),
    "isnan": single("IsNaN", f32(1, np.nan, np.inf)),
    "cast_float_to_int": single("Cast", f32(-1.7, 1.7, 2.5, -0.2), to=TensorProto.INT64),
    "cast_int_to_float": single("Cast", i64(-3, 7), to=TensorProto.FLOAT),
    "cast_to_bool": single("Cast", f32(0, 0.5, -2), to=TensorProto.BOOL),
    "range_float": single("Range", np.float32(0.5), np.float32(3.2), np.float32(0.7)),
    "dropout": single("Dropout", X4, opset=13),
    "gemm_no_c": single("Gemm", rand(3, 5), rand(4, 5), transB=1, alpha=2.0),
    "logsoftmax_13": single("LogSoftmax", X4, opset=13, axis=1),
    "reducemin_keep": single("ReduceMin", X4, opset=13, axes=[0, 3]),
    "reducel1": single("ReduceL1", X4, opset=13, axes=[1], keepdims=0),
    "reducesumsquare": single("ReduceSumSquare", X4, opset=13, axes=[-1]),
    "reducelogsumexp": single("ReduceLogSumExp", X4, opset=13, axes=[2, 1]),
    "argmin_keepdims_0": single("ArgMin", X4, axis=-1, keepdims=0),
    "globalmaxpool": single("GlobalMaxPool", IMG),
    # activations and normalisations
    "elu": single("Elu", X4, alpha=0.5),
    "selu": single("Selu", X4),
    "softplus": single("Softplus", X4),
    "hardswish": single("HardSwish", X4, opset=14),
    "mish": single("Mish", X4, opset=18),
    "hardsigmoid": single("HardSigmoid", X4, alpha=0.3, beta=0.4),
    "gelu_tanh": single("Gelu", X4, opset=20, approximate="tanh"),
    "prelu": single("PRelu", X4, rand(3, 1, 1)),
    "leakyrelu": single("LeakyRelu", X4, alpha=0.2),
    "layernorm_axis": single("LayerNormalization", X4, rand(4, 5), rand(4, 5), axis=-2),
    "groupnorm_21": single("GroupNormalization", rand(2, 4, 3, 3), rand(4), rand(4), opset=21, num_groups=2),
    "instancenorm": single("InstanceNormalization", IMG, rand(2), rand(2)),
    # sampling
    "gridsample_bilinear": single("GridSample", IMG, np.clip(rand(1, 5, 6, 2), -1.2, 1.2), opset=16),
    "gridsample_nearest_border": single("GridSample", IMG, np.clip(rand(1, 5, 6, 2), -1.2, 1.2), opset=16,
                                        mode="nearest", padding_mode="border", align_corners=1),
    "deformconv": single("DeformConv", rand(1, 4, 6, 7), rand(6, 2, 3, 3), rand(1, 36, 4, 6), rand(6),
                         np.abs(rand(1, 18, 4, 6)), opset=19, group=2, offset_group=2, pads=[0, 1, 0, 0],
                         strides=[1, 1]),
    "deformconv_dilated": single("DeformConv", rand(1, 2, 8, 8), rand(3, 2, 3, 3), rand(1, 18, 3, 3) * 2, opset=19,
                                 dilations=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1]),
}

RESIZE_CASES = {
    # nearest: rounding modes x coordinate transforms, up and down by non-integer factors
    **{f"nearest_{ctm}_{nm}": ({"mode": "nearest", "coordinate_transformation_mode": ctm, "nearest_mode": nm},
                               [1, 2, 11, 6])
       for ctm in ("half_pixel", "asymmetric", "align_corners", "tf_half_pixel_for_nn")
       for nm in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")},
    "linear_half_pixel_down": ({"mode": "linear"}, [1, 2, 5, 4]),
    "linear_align_corners": ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 2, 12, 5]),
    "linear_asymmetric": ({"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, [1, 2, 12, 5]),
    "linear_pytorch_one_pixel": ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
                                 [1, 2, 1, 13]),
    "linear_half_pixel_one_pixel": ({"mode": "linear"}, [1, 2, 1, 13]),
    "cubic_half_pixel": ({"mode": "cubic"}, [1, 2, 12, 5]),
    "cubic_align_corners": ({"mode": "cubic", "coordinate_transformation_mode": "align_corners"}, [1, 2, 12, 5]),
    "cubic_asymmetric": ({"mode": "cubic", "coordinate_transformation_mode": "asymmetric"}, [1, 2, 12, 5]),
    "cubic_exclude_outside": ({"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5}, [1, 2, 12, 5]),
    "nearest_batch_and_channels": ({"mode": "nearest"}, [2, 3, 12, 5]),  # onnxruntime: nearest only
}


@pytest.mark.parametrize("name", OP_CASES)
def test_operator_matches_onnxruntime(name, tmp_path):
    model, x = OP_CASES[name]
    assert_close(ours(model, x, tmp_path), reference(model, x))


@pytest.mark.parametrize("by", ["sizes", "scales"])
@pytest.mark.parametrize("name", RESIZE_CASES)
def test_resize_matches_onnxruntime(name, by, tmp_path):
    attrs, sizes = RESIZE_CASES[name]
    if by == "scales":  # the coordinate transform then uses these factors, not output / input
        scales = np.array(sizes, np.float32) / np.array(IMG.shape, np.float32)
        scales[2:] *= np.float32(1.07)  # onnxruntime's linear and cubic resize only the two last dims
        model, x = single("Resize", IMG, np.zeros(0, np.float32), scales.astype(np.float32), opset=13, **attrs)
    else:
        model, x = single("Resize", IMG, np.zeros(0, np.float32), None, i64(*sizes), opset=13, **attrs)
    assert_close(ours(model, x, tmp_path), reference(model, x))


@pytest.mark.parametrize("case", [
    ("Resize", {"opset": 18, "axes": [2, 3], "mode": "linear"}, (None, None, i64(4, 13))),
    ("Resize", {"opset": 13, "mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
                "extrapolation_value": -1.0}, (f32(0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3), None, i64(1, 2, 6, 8))),
    ("Resize", {"opset": 10, "mode": "nearest"}, (f32(1, 1, 0.6, 1.7),)),
    ("Resize", {"opset": 10, "mode": "linear"}, (f32(1, 1, 2, 1.5),)),
    ("Upsample", {"opset": 9, "mode": "nearest"}, (f32(1, 1, 2, 3),)),
    ("Upsample", {"opset": 9, "mode": "linear"}, (f32(1, 1, 2, 3),)),
    ("Upsample", {"opset": 7, "mode": "nearest", "scales": [1.0, 1.0, 3.0, 2.0]}, ()),
], ids=["resize_18_axes", "tf_crop_and_resize", "resize_10_nearest", "resize_10_linear", "upsample_9_nearest",
        "upsample_9_linear", "upsample_7_attr"])
def test_resize_versions_match_onnxruntime(case, tmp_path):
    op_type, attrs, others = case
    attrs = dict(attrs)
    model, x = single(op_type, IMG, *others, opset=attrs.pop("opset"), **attrs)
    assert_close(ours(model, x, tmp_path), reference(model, x))


# ---------------------------------------------------------------- unsupported operators, operators()
def test_unsupported_operators_are_named_before_weights_are_built(tmp_path, monkeypatch):
    g = Graph()
    fancy = g.op("FancyOp", g.op("Relu", "x"), g.weight(3), domain="com.example")
    out = g.op("NonMaxSuppression", fancy, fancy)
    model = g.model([1, 3], out, 17)
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    monkeypatch.setattr(ot, "_to_tensor", lambda proto: pytest.fail("a weight was built first"))
    with pytest.raises(ot.UnsupportedOperator, match="FancyOp") as info:
        ot.convert(path)
    assert info.value.operators == ("NonMaxSuppression", "com.example.FancyOp")
    assert "NonMaxSuppression" in str(info.value) and str(path) in str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert ot.operators(path) == {"Relu", "com.example.FancyOp", "NonMaxSuppression"}
    assert "Relu" in ot.SUPPORTED and "NonMaxSuppression" not in ot.SUPPORTED


def test_unsupported_operator_off_the_first_outputs_path_is_pruned(tmp_path):
    g = Graph()
    relu = g.op("Relu", "x")
    g.op("NonMaxSuppression", relu, relu)  # feeds no output that forward returns
    model = g.model([2, 3], relu, 17)
    x = rand(2, 3)
    assert_close(ours(model, x, tmp_path), np.maximum(x, 0))


def test_operators_include_subgraphs():
    then = helper.make_graph([helper.make_node("Softplus", ["x"], ["y"])], "then", [],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "else", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    g = Graph()
    cond = g.op("ReduceMax", g.op("Greater", "x", g.const(np.float32(0))), keepdims=0)
    out = g.op("If", cond, then_branch=then, else_branch=other)
    model = g.model([3], out, 17)
    assert ot.operators(model) == {"Constant", "Greater", "ReduceMax", "If", "Softplus", "Neg"}
    assert ot.operators(model.graph) == ot.operators(model)


def test_import_needs_neither_onnx_nor_onnxruntime():
    code = ("import sys; sys.path.insert(0, 'tools'); from packloader import load_pack; import importlib; "
            "p = load_pack(); importlib.import_module(p.__name__ + '.utils.rembg.onnx_torch'); "
            "print(sorted(m for m in ('onnx', 'onnxruntime') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- weights
def _float_initializers(model: onnx.ModelProto) -> list[str]:
    return [t.name for t in model.graph.initializer if numpy_helper.to_array(t).dtype.kind == "f"]


def test_weights_are_frozen_parameters_in_leaf_modules(tmp_path):
    model = birefnet_like("N")
    module = converted(model, tmp_path)
    for name, leaf in module.named_modules():
        own = list(leaf.parameters(recurse=False))
        assert not own or not list(leaf.children()), f"{name} holds parameters and children"
    params = list(module.parameters())
    assert len(params) == len(_float_initializers(model))  # each float initializer, once
    assert all(not p.requires_grad and p.dtype == torch.float32 for p in params)
    assert not any(not t.is_floating_point() for t in [*params, *module.buffers()])  # shapes stay CPU constants
    assert list(module.buffers()) == []


def test_large_float_constants_are_parameters_small_ones_and_scales_are_not(tmp_path):
    g = Graph()
    big = g.op("Add", "x", g.const(rand(4, 5)))  # 20 elements: a weight
    small = g.op("Mul", big, g.const(rand(5)))  # 5 elements: a constant
    empty = g.init(np.zeros(0, np.float32))
    out = g.op("Resize", small, empty, g.init(f32(1, 1, 2, 2)), mode="nearest")  # scales: shape arithmetic
    model = g.model([1, 1, 4, 5], out, 13)
    module = converted(model, tmp_path)
    assert sorted(p.numel() for p in module.parameters()) == [20]
    x = rand(1, 1, 4, 5)
    assert_close(module(torch.from_numpy(x)).detach().numpy(), reference(model, x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_convert_dtype_casts_weights(dtype, tmp_path):
    model = u2net_like("N")
    module = converted(model, tmp_path, dtype=dtype)
    assert {p.dtype for p in module.parameters()} == {dtype}
    x = rand(2, 3, 21, 21)
    with torch.inference_mode():
        try:
            half = module(torch.from_numpy(x).to(dtype))
        except RuntimeError as exc:  # older torch builds lack some half-precision CPU kernels
            pytest.skip(f"this torch cannot run {dtype} on the CPU: {exc}")
        up = module(torch.from_numpy(x))  # a float32 input runs the (rounded) weights in float32
    assert half.dtype == dtype and up.dtype == torch.float32
    want = reference(model, x)
    assert np.abs(half.float().numpy() - want).max() < 0.02  # sigmoid output in 0..1; half precision's rounding
    assert np.abs(up.numpy() - want).max() < 0.005  # only the weights rounded


def test_batch_runs_match_single_runs_and_input_is_unchanged(tmp_path):
    module = converted(birefnet_like("N"), tmp_path)
    x = torch.from_numpy(rand(3, 3, 32, 32))
    before = x.clone()
    with torch.inference_mode():
        batch = module(x)
        singles = torch.cat([module(x[i:i + 1]) for i in range(3)])
    assert torch.equal(x, before)
    assert (batch - singles).abs().max() <= 1e-5 * max(1.0, singles.abs().max().item())


@pytest.mark.parametrize("family", FAMILIES)
def test_runs_on_another_device_with_weights_left_on_the_cpu(family, tmp_path):
    """The 'meta' device stands in for a GPU: torch refuses to mix it with CPU tensors in elementwise ops,
    so this runs every op's device placement (weights moved per op, shape arithmetic kept on the CPU)."""
    build, size = FAMILIES[family]
    module = converted(build(1), tmp_path)
    for leaf in list(module.weights.values())[::2]:  # a low-VRAM partial load: every other leaf moved
        leaf.to("meta")
    with torch.inference_mode():
        got = module(torch.zeros(3, 3, size, size, device="meta"))
    assert got.device.type == "meta" and got.shape[0] == 3
    assert module._moved or family != "birefnet"  # its index tables are copied once per device, then reused
    module.to("meta")  # a move of the whole module drops the constants' device copies
    assert module._moved == {}


@pytest.mark.gpu
def test_weights_left_on_the_cpu_are_moved_per_op(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    model = birefnet_like("N")
    module = converted(model, tmp_path)
    leaves = list(module.weights.values())
    for leaf in leaves[::2]:  # a low-VRAM partial load: every other leaf on the GPU
        leaf.to("cuda")
    x = rand(2, 3, 32, 32)
    with torch.inference_mode():
        got = module(torch.from_numpy(x).cuda())
    assert got.device.type == "cuda"
    assert_close(got.cpu().numpy(), reference(model, x))


# ---------------------------------------------------------------- the real model
def _photo_input(name: str) -> np.ndarray:
    """rembg's normalisation of a skimage photo for u2netp: LANCZOS to 320, / max, ImageNet mean and std."""
    from PIL import Image
    from skimage import data

    img = np.asarray(Image.fromarray(getattr(data, name)()).convert("RGB").resize((320, 320), Image.LANCZOS))
    img = img / np.max(img)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((img - mean) / std).transpose(2, 0, 1).astype(np.float32)


@pytest.mark.model
def test_u2netp_matches_onnxruntime(u2netp):
    module = ot.convert(u2netp)
    session = ort.InferenceSession(str(u2netp), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    noise = np.random.default_rng(0).standard_normal((4, 3, 320, 320)).astype(np.float32)
    photos = np.stack([_photo_input("astronaut"), _photo_input("chelsea")])
    for x in (noise, photos):
        with torch.inference_mode():
            got = module(torch.from_numpy(x))
        assert got.shape == (len(x), 1, 320, 320)
        want = np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
        assert np.abs(got[:, 0].numpy() - want[:, 0]).max() <= 1e-4  # sigmoid output in 0..1


def test_intermediates_are_dropped_after_their_last_reader(tmp_path):
    module = converted(birefnet_like("N"), tmp_path)
    steps = module._steps  # white box: the schedule is what bounds peak memory on 1024² models
    made = {name for step in steps for name in step.outputs if name} | {module.input_name}
    freed = [name for step in steps for name in step.free]
    assert sorted(freed) == sorted(made - {module.output_name})  # each one exactly once
    for index, step in enumerate(steps):
        later = {src[1] for s in steps[index + 1:] for src in s.inputs if src and src[0] == "env"}
        assert not later.intersection(step.free)
