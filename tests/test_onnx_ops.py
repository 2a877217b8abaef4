"""utils/rembg/onnx_torch, one operator at a time: each operator pitfall (opset versions, attribute vs input
forms, modes) as a one-node graph, and Resize / Upsample in every mode and version, against onnxruntime.
The graph helpers and the tolerance are in onnx_graphs.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx_graphs import INT_MAX, TensorProto, assert_close, f32, i64, numpy_helper, ours, rand, reference, single

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
