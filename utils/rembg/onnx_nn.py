"""ONNX operators as torch functions, the neural-network half: convolution, pooling, normalisation and
resampling (Resize, Upsample, Pad, DepthToSpace, GridSample, DeformConv). Same conventions as
:mod:`.onnx_ops` (``op(n, r, *inputs)``); :mod:`.onnx_torch` merges both tables into one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .onnx_ops import Node, Run, _arg_or_attr, _axis, _floats, _named, _pairs, ints

# ---------------------------------------------------------------- convolution and pooling
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _window(n: Node, x: Tensor, kernel: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Strides, dilations and pads ``[b1, .., bn, e1, .., en]`` of a sliding window, auto_pad resolved."""
    nd = x.dim() - 2
    strides, dilations = n.get("strides") or [1] * nd, n.get("dilations") or [1] * nd
    auto = n.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):  # output ceil(in / stride); the odd pixel at the end (UPPER)
        total = [max(0, (-(-i // s) - 1) * s + (k - 1) * d + 1 - i)
                 for i, k, s, d in zip(x.shape[2:], kernel, strides, dilations, strict=True)]
        low, high = [t // 2 for t in total], [t - t // 2 for t in total]
        return strides, dilations, (low + high if auto == "SAME_UPPER" else high + low)
    pads = [0] * 2 * nd if auto == "VALID" else list(n.get("pads") or [0] * 2 * nd)
    return strides, dilations, pads


def _even_pads(x: Tensor, pads: list[int], limit: list[int] | None = None, value: float = 0.0):
    """Pads torch can take itself (same both sides, within ``limit``), else ``x`` padded by hand and zeros."""
    nd = len(pads) // 2
    begin, end = pads[:nd], pads[nd:]
    if begin == end and (limit is None or all(2 * p <= k for p, k in zip(begin, limit, strict=True))):
        return x, begin
    return F.pad(x, _pairs(begin, end), value=value), [0] * nd


def _conv(n: Node, r: Run, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """Conv 1-3-D: group, dilations, strides, asymmetric pads, auto_pad."""
    strides, dilations, pads = _window(n, x, list(w.shape[2:]))
    x, pad = _even_pads(x, pads)
    w = w.to(x.dtype)
    return _CONV[x.dim() - 2](x, w, None if b is None else b.to(x.dtype), strides, pad, dilations, n.get("group", 1))


def _transpose_pads(n: Node, x: Tensor, kernel: list[int], strides: list[int], out_pad: list[int]) -> list[int]:
    """ConvTranspose pads: given, or derived from output_shape / auto_pad as the specification says."""
    nd, shape, auto = x.dim() - 2, n.get("output_shape"), n.get("auto_pad", "NOTSET")
    if shape is None and auto not in ("SAME_UPPER", "SAME_LOWER"):
        return [0] * 2 * nd if auto == "VALID" else list(n.get("pads") or [0] * 2 * nd)
    shape = list(shape or [i * s for i, s in zip(x.shape[2:], strides, strict=True)])[-nd:]
    total = [s * (i - 1) + o + k - t
             for i, s, o, k, t in zip(x.shape[2:], strides, out_pad, kernel, shape, strict=True)]
    half, rest = [t // 2 for t in total], [t - t // 2 for t in total]
    return half + rest if auto == "SAME_UPPER" else rest + half


def _conv_transpose(n: Node, r: Run, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """ConvTranspose: output_padding, pads (asymmetric ones by cropping), group, dilations, output_shape."""
    nd, group = x.dim() - 2, n.get("group", 1)
    strides, dilations = n.get("strides") or [1] * nd, n.get("dilations") or [1] * nd
    kernel = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilations, strict=True)]
    out_pad = n.get("output_padding") or [0] * nd
    pads = _transpose_pads(n, x, kernel, strides, out_pad)
    begin, end = pads[:nd], pads[nd:]
    w, b = w.to(x.dtype), None if b is None else b.to(x.dtype)
    torch_ok = all(o < max(s, d) for o, s, d in zip(out_pad, strides, dilations, strict=True))
    if begin == end and min(begin, default=0) >= 0 and torch_ok:
        return _CONV_T[nd](x, w, b, strides, begin, out_pad, group, dilations)
    y = _CONV_T[nd](x, w, None, strides, 0, 0, group, dilations)
    y = F.pad(y, _pairs([-p for p in begin], [o - p for o, p in zip(out_pad, end, strict=True)]))  # negative pads crop
    return y if b is None else y + b.reshape(-1, *[1] * nd)


def _max_pool(n: Node, r: Run, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
    """MaxPool: ceil_mode, pads (uneven ones padded with -inf), dilations; Indices as ONNX flattens them."""
    kernel = n.get("kernel_shape")
    strides, dilations, pads = _window(n, x, kernel)
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    low = -math.inf if x.is_floating_point() else torch.iinfo(x.dtype).min
    xp, pad = _even_pads(x, pads, reach, low)
    pool = functools.partial(_MAX_POOL[x.dim() - 2], kernel_size=kernel, stride=strides, padding=pad,
                             dilation=dilations, ceil_mode=bool(n.get("ceil_mode", 0)))
    if n.n_outputs == 1:
        return pool(xp)
    if xp is not x or n.get("storage_order", 0):
        raise NotImplementedError("MaxPool: the Indices output with uneven pads or storage_order=1")
    y, idx = pool(xp, return_indices=True)  # torch: per (n, c) plane; ONNX: over the whole tensor
    plane = math.prod(x.shape[2:])
    base = torch.arange(x.shape[0] * x.shape[1], device=x.device).reshape(*x.shape[:2], *[1] * (x.dim() - 2))
    return y, idx + base * plane


def _avg_pool(n: Node, r: Run, x: Tensor) -> Tensor:
    """AveragePool: count_include_pad, ceil_mode; uneven pads as a ratio of pooled values and pooled counts."""
    kernel = n.get("kernel_shape")
    strides, dilations, pads = _window(n, x, kernel)
    if any(d != 1 for d in dilations):
        raise NotImplementedError("AveragePool with dilations")
    include, nd = bool(n.get("count_include_pad", 0)), x.dim() - 2
    pool = functools.partial(_AVG_POOL[nd], kernel_size=kernel, stride=strides, ceil_mode=bool(n.get("ceil_mode", 0)))
    xp, pad = _even_pads(x, pads, kernel)
    if xp is x:
        return pool(x, padding=pad, count_include_pad=include)
    ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
    counted = F.pad(ones, _pairs(pads[:nd], pads[nd:]), value=float(include))
    return pool(xp, padding=0) / pool(counted, padding=0)


# ---------------------------------------------------------------- normalisation
def _batch_norm(n: Node, r: Run, x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """BatchNormalization at inference (running statistics)."""
    return F.batch_norm(x, mean.to(x.dtype), var.to(x.dtype), scale.to(x.dtype), bias.to(x.dtype), False, 0.0,
                        n.get("epsilon", 1e-5))


def _layer_norm(n: Node, r: Run, x: Tensor, scale: Tensor, bias: Tensor | None = None) -> Tensor:
    """LayerNormalization over the dims from ``axis`` on (the Mean / InvStdDev outputs are not given)."""
    shape = x.shape[_axis(n.get("axis", -1), x.dim()):]
    return F.layer_norm(x, shape, scale.to(x.dtype).expand(shape),
                        None if bias is None else bias.to(x.dtype).expand(shape), n.get("epsilon", 1e-5))


def _group_norm(n: Node, r: Run, x: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
    """GroupNormalization: scale and bias per channel (opset 21) or per group (opset 18)."""
    groups, channels = n.get("num_groups"), x.shape[1]
    if scale.numel() != channels:
        scale, bias = scale.repeat_interleave(channels // groups), bias.repeat_interleave(channels // groups)
    return F.group_norm(x, groups, scale.to(x.dtype), bias.to(x.dtype), n.get("epsilon", 1e-5))


NN = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "MaxPool": _max_pool, "AveragePool": _avg_pool,
    "GlobalAveragePool": _named(lambda n, r, x: x.mean(tuple(range(2, x.dim())), keepdim=True), "GlobalAveragePool."),
    "GlobalMaxPool": _named(lambda n, r, x: x.amax(tuple(range(2, x.dim())), keepdim=True), "GlobalMaxPool."),
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm, "GroupNormalization": _group_norm,
    "InstanceNormalization": _named(lambda n, r, x, s, b: F.instance_norm(
        x, weight=s.to(x.dtype), bias=b.to(x.dtype), eps=n.get("epsilon", 1e-5)), "InstanceNormalization."),
}


# ---------------------------------------------------------------- resampling
_ROUNDING = {  # Resize's nearest_mode; "simple" is onnxruntime's rule for Upsample and Resize-10
    "round_prefer_floor": lambda c, s: torch.ceil(c - 0.5),
    "round_prefer_ceil": lambda c, s: torch.floor(c + 0.5),
    "floor": lambda c, s: torch.floor(c),
    "ceil": lambda c, s: torch.ceil(c),
    "simple": lambda c, s: torch.ceil(c) if s < 1 else torch.floor(c),
}
_COORDINATES = {  # coordinate_transformation_mode: output index d -> input coordinate, float32 as onnxruntime
    "half_pixel": lambda d, s, i, o: (d + 0.5) / s - 0.5,
    "pytorch_half_pixel": lambda d, s, i, o: (d + 0.5) / s - 0.5 if o > 1 else d * 0,
    "align_corners": lambda d, s, i, o: d * (i - 1) / (o - 1) if o > 1 else d * 0,
    "asymmetric": lambda d, s, i, o: d / s,
    "tf_half_pixel_for_nn": lambda d, s, i, o: (d + 0.5) / s,
    "half_pixel_symmetric": lambda d, s, i, o: i / 2 * (1 - o / (s * i)) + (d + 0.5) / s - 0.5,
}
_LINEAR = {1: torch.ops.aten.upsample_linear1d.default, 2: torch.ops.aten.upsample_bilinear2d.default,
           3: torch.ops.aten.upsample_trilinear3d.default}


def _resize_target(n: Node, shape: tuple[int, ...], scales: Tensor | None, sizes: Tensor | None):
    """Output sizes, and the per-axis scales the coordinate transform uses (given, or output / input)."""
    rank = len(shape)
    axes = [_axis(a, rank) for a in (n.get("axes") or range(rank))]
    dims = torch.tensor([shape[a] for a in axes], dtype=torch.float32)
    if sizes is not None and sizes.numel():
        wanted = torch.tensor(ints(sizes), dtype=torch.float32)
        policy = n.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            ratio = (wanted / dims).amin() if policy == "not_larger" else (wanted / dims).amax()
            wanted = (ratio * dims + 0.5).floor()
        factors, sized = wanted / dims, wanted
    else:
        factors = scales.to(torch.float32).reshape(-1)
        sized = (dims * factors).floor()  # float32 product, as onnxruntime
    out, scale = list(shape), [1.0] * rank
    for a, o, f in zip(axes, sized.long().tolist(), factors.tolist(), strict=True):
        out[a], scale[a] = o, f
    return out, scale


def _torch_resize(n: Node, x: Tensor, out: list[int], scale: list[float], given: bool) -> Tensor | None:
    """Resize by torch's own kernel where it is exactly ONNX's rule (linear, bicubic with a = -0.75), else None."""
    mode, ctm, nd = n.get("mode", "nearest"), n.get("coordinate_transformation_mode", "half_pixel"), x.dim() - 2
    if mode == "nearest" or nd not in _LINEAR or out[:2] != list(x.shape[:2]):
        return None  # nearest: onnxruntime's float rounding is reproduced by the index path instead
    if ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        return None
    if ctm == "pytorch_half_pixel" and any(o == 1 < i for o, i in zip(out[2:], x.shape[2:], strict=True)):
        return None  # pytorch_half_pixel samples 0 for a 1-pixel output; torch samples the centre
    cubic = (nd == 2, n.get("cubic_coeff_a", -0.75) == -0.75, not n.get("exclude_outside", 0))
    if mode == "cubic" and not all(cubic):
        return None
    kernel = torch.ops.aten.upsample_bicubic2d.default if mode == "cubic" else _LINEAR[nd]
    return kernel(x, out[2:], ctm == "align_corners", *(scale[2:] if given else [None] * nd))


def _cubic_taps(a: float, exclude: bool, coords: Tensor, size: int) -> tuple[list[Tensor], list[Tensor]]:
    """Four taps and weights per output pixel (Keys' cubic, ``cubic_coeff_a``, ``exclude_outside``)."""
    base = coords.floor()
    s = coords - base
    near = [s, 1 - s]  # |distance| <= 1
    far = [s + 1, 2 - s]  # 1 < |distance| < 2
    inner = [((a + 2) * t - (a + 3)) * t * t + 1 for t in near]
    outer = [((a * t - 5 * a) * t + 8 * a) * t - 4 * a for t in far]
    weights = [outer[0], inner[0], inner[1], outer[1]]
    taps = [base.long() + k for k in (-1, 0, 1, 2)]
    if exclude:
        weights = [w * ((t >= 0) & (t < size)) for w, t in zip(weights, taps, strict=True)]
        total = sum(weights)
        weights = [w / total for w in weights]
    return [t.clamp(0, size - 1) for t in taps], weights


def _taps(rule: tuple, coords: Tensor, size: int, scale: float) -> tuple[list[Tensor], list[Tensor]]:
    """Input indices and weights per output pixel along one axis, for nearest, linear or cubic."""
    mode, _, nearest_mode, a, exclude = rule
    if mode == "nearest":
        return [_ROUNDING[nearest_mode](coords, scale).clamp(0, size - 1).long()], []
    if mode == "linear":
        c = coords.clamp(0, size - 1)
        low = c.floor()
        return [low.long(), (low.long() + 1).clamp(max=size - 1)], [1 - (c - low), c - low]
    return _cubic_taps(a, exclude, coords, size)


@functools.lru_cache(maxsize=512)
def _axis_taps(rule: tuple, size: int, out: int, scale: float, device: torch.device):
    """Taps and weights of one axis on ``device``, computed once per rule and sizes: float32 on the CPU as
    onnxruntime computes them (exact nearest rounding), copied once (a host copy per run would wait on the GPU)."""
    coords = _COORDINATES[rule[1]](torch.arange(out, dtype=torch.float32), torch.tensor(scale), size, out)
    taps, weights = _taps(rule, coords, size, scale)
    return [t.to(device) for t in taps], [w.to(device) for w in weights]


def _crop_taps(rule: tuple, roi: Tensor, axis: int, rank: int, size: int, out: int, device: torch.device):
    """tf_crop_and_resize: taps, weights and the outside mask of one axis (the roi is data: not cached)."""
    lo, hi = _floats(roi)[axis::rank]
    d = torch.arange(out, dtype=torch.float32)
    if out > 1:
        coords = lo * (size - 1) + d * (hi - lo) * (size - 1) / (out - 1)
    else:
        coords = d * 0 + 0.5 * (lo + hi) * (size - 1)
    taps, weights = _taps(rule, coords, size, 1.0)
    outside = (coords < 0) | (coords > size - 1)
    return [t.to(device) for t in taps], [w.to(device) for w in weights], outside.to(device)


def _resample(n: Node, x: Tensor, out: list[int], scale: list[float], roi: Tensor | None) -> Tensor:
    """Separable resize, axis by axis, by gathering taps (any rank, mode and coordinate transform)."""
    rule = (n.get("mode", "nearest"), n.get("coordinate_transformation_mode", "half_pixel"),
            n.get("nearest_mode", "round_prefer_floor"), n.get("cubic_coeff_a", -0.75), n.get("exclude_outside", 0))
    crop = rule[1] == "tf_crop_and_resize"
    for axis in range(x.dim()):
        if scale[axis] == 1.0 and out[axis] == x.shape[axis] and not crop:
            continue
        shape = [-1 if i == axis else 1 for i in range(x.dim())]  # weights along ``axis``
        if crop:
            taps, weights, outside = _crop_taps(rule, roi, axis, x.dim(), x.shape[axis], out[axis], x.device)
        else:
            taps, weights = _axis_taps(rule, x.shape[axis], out[axis], scale[axis], x.device)
        picked = [x.index_select(axis, t) for t in taps]
        y = picked[0] if not weights else sum(p * w.to(x.dtype).reshape(shape)
                                              for p, w in zip(picked, weights, strict=True))
        x = torch.where(outside.reshape(shape), n.get("extrapolation_value", 0.0), y) if crop else y
    return x


def _resize(n: Node, r: Run, x: Tensor, roi=None, scales=None, sizes=None) -> Tensor:
    """Resize: scales or sizes, nearest/linear/cubic, every coordinate transform; opset 10 is Upsample's rule."""
    if n.opset < 11:
        return _upsample(n, r, x, roi)  # Resize-10's second input is the scales
    out, scale = _resize_target(n, tuple(x.shape), scales, sizes)
    if n.get("antialias", 0) and any(o < i for o, i in zip(out, x.shape, strict=True)):
        raise NotImplementedError("Resize with antialias=1 when downscaling")
    y = _torch_resize(n, x, out, scale, given=sizes is None or not sizes.numel())
    return _resample(n, x, out, scale, roi) if y is None else y


def _upsample(n: Node, r: Run, x: Tensor, scales: Tensor | None = None) -> Tensor:
    """Upsample (opset 7/9) and Resize-10: asymmetric coordinates, onnxruntime's 'simple' nearest rounding."""
    factors = scales if scales is not None else torch.tensor(n.get("scales"), dtype=torch.float32)
    mode = "linear" if n.get("mode", "nearest") in ("linear", "bilinear") else "nearest"
    rule = Node("Resize", {"mode": mode, "coordinate_transformation_mode": "asymmetric", "nearest_mode": "simple"}, 11)
    out, scale = _resize_target(rule, tuple(x.shape), factors, None)
    return _resample(rule, x, out, scale, None)


def _crop(x: Tensor, begin: list[int], end: list[int]) -> Tensor:
    """Remove what negative pads remove."""
    for a, (b, e) in enumerate(zip(begin, end, strict=True)):
        lo, hi = max(-b, 0), max(-e, 0)
        x = x.narrow(a, lo, x.shape[a] - lo - hi) if lo or hi else x
    return x


def _pad(n: Node, r: Run, x: Tensor, pads=None, value=None, axes=None) -> Tensor:
    """Pad constant/reflect/edge/wrap: pads, value, axes from inputs (11+, 18+) or attributes; negative crops."""
    rank, pads = x.dim(), _arg_or_attr(n, pads, "pads")
    axes = [_axis(a, rank) for a in ints(axes)] if axes is not None else list(range(rank))
    begin, end = [0] * rank, [0] * rank
    for a, b, e in zip(axes, pads[:len(axes)], pads[len(axes):], strict=True):
        begin[a], end[a] = b, e
    x = _crop(x, begin, end)
    begin, end = [max(b, 0) for b in begin], [max(e, 0) for e in end]
    first = next((a for a in range(rank) if begin[a] or end[a]), rank)  # torch pads trailing dims only
    if first == rank:
        return x
    flat, mode = _pairs(begin[first:], end[first:]), n.get("mode", "constant")
    if mode == "constant":
        return F.pad(x, flat, value=value.item() if value is not None and value.numel() else n.get("value", 0.0))
    torch_mode = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}[mode]
    y = F.pad(x.reshape(-1, 1, *x.shape[first:]), flat, mode=torch_mode)  # [lead, 1, padded dims]
    return y.reshape((*x.shape[:first], *y.shape[2:]))


def _depth_to_space(n: Node, r: Run, x: Tensor) -> Tensor:
    """DepthToSpace, DCR (default) or CRD order."""
    b, (N, C, H, W) = n.get("blocksize"), x.shape
    if n.get("mode", "DCR") == "DCR":
        y = x.reshape(N, b, b, C // (b * b), H, W).permute(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(N, C // (b * b), b, b, H, W).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(N, C // (b * b), H * b, W * b)


def _space_to_depth(n: Node, r: Run, x: Tensor) -> Tensor:
    """SpaceToDepth."""
    b, (N, C, H, W) = n.get("blocksize"), x.shape
    y = x.reshape(N, C, H // b, b, W // b, b).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(N, C * b * b, H // b, W // b)


def _grid_sample(n: Node, r: Run, x: Tensor, grid: Tensor) -> Tensor:
    """GridSample: bilinear/nearest/bicubic (opset 16 names, or 20's linear/cubic), padding, align_corners."""
    mode = n.get("mode", "bilinear" if n.opset < 20 else "linear")
    return F.grid_sample(x, grid.to(x.dtype), mode={"linear": "bilinear", "cubic": "bicubic"}.get(mode, mode),
                         padding_mode=n.get("padding_mode", "zeros"), align_corners=bool(n.get("align_corners", 0)))


def _deform_conv(n: Node, r: Run, x: Tensor, w: Tensor, offset: Tensor, b=None, mask=None) -> Tensor:
    """DeformConv 2-D (opset 19): bilinear taps at the offset positions (zero outside), then a grouped matmul."""
    (N, C, H, W), (oc, cg, kh, kw), (oh, ow) = x.shape, w.shape, offset.shape[-2:]
    (sy, sx), (dy, dx) = n.get("strides") or [1, 1], n.get("dilations") or [1, 1]
    top, left = (n.get("pads") or [0, 0, 0, 0])[:2]
    groups, og, k = n.get("group", 1), n.get("offset_group", 1), kh * kw
    dev = x.device
    tap_y = (torch.arange(kh, device=dev) * dy).repeat_interleave(kw).view(k, 1, 1)  # row offset of each tap
    tap_x = (torch.arange(kw, device=dev) * dx).repeat(kh).view(k, 1, 1)
    rows = torch.arange(oh, device=dev).view(1, oh, 1) * sy - top + tap_y  # [k, oh, 1] input rows
    cols = torch.arange(ow, device=dev).view(1, 1, ow) * sx - left + tap_x  # [k, 1, ow] input columns
    off = offset.to(x.dtype).reshape(N, og, k, 2, oh, ow)  # (dy, dx) per tap
    grid = torch.stack([(cols + off[:, :, :, 1]) * (2 / max(W - 1, 1)) - 1,
                        (rows + off[:, :, :, 0]) * (2 / max(H - 1, 1)) - 1], dim=-1)  # align_corners=True pixels
    taps = F.grid_sample(x.reshape(N * og, C // og, H, W), grid.reshape(N * og, k * oh, ow, 2),
                         mode="bilinear", padding_mode="zeros", align_corners=True)
    taps = taps.reshape(N, og, C // og, k, oh, ow)
    if mask is not None:
        taps = taps * mask.to(x.dtype).reshape(N, og, 1, k, oh, ow)
    y = torch.matmul(w.to(x.dtype).reshape(groups, oc // groups, cg * k), taps.reshape(N, groups, cg * k, oh * ow))
    y = y.reshape(N, oc, oh, ow)  # [N, groups, oc / groups, oh * ow] -> [N, oc, oh, ow]
    return y if b is None else y + b.to(x.dtype).view(1, -1, 1, 1)


RESAMPLING = {
    "Resize": _resize, "Upsample": _upsample, "Pad": _pad, "DepthToSpace": _depth_to_space,
    "SpaceToDepth": _space_to_depth, "GridSample": _grid_sample, "DeformConv": _deform_conv,
}

OPS: dict[str, Callable] = {**NN, **RESAMPLING}
