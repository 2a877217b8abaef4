"""utils/rembg/onnx_torch: ONNX graphs converted to torch, against onnxruntime on the same graphs.

Graphs are built with ``onnx.helper`` (one per model family here; one node per operator pitfall in
test_onnx_ops.py), saved under ``tmp_path``, and run through onnxruntime (CPU) and through ``convert``; the
tolerance is in onnx_graphs.py.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT
from onnx_graphs import (
    INT_MAX,
    Graph,
    TensorProto,
    assert_close,
    converted,
    f32,
    helper,
    numpy_helper,
    onnx,
    ort,
    ot,
    ours,
    rand,
    reference,
)


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
