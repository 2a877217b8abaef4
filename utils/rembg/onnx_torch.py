"""ONNX -> torch: rembg's segmentation graphs (U^2-Net family, IS-Net, BiRefNet, BRIA RMBG-2.0, BEN2) as a
plain torch module, so they run batched on any torch device (CUDA, ROCm, MPS, XPU, CPU) under ComfyUI's
model management.

``convert(path)`` reads the ``.onnx`` file with the ``onnx`` package (imported on use; onnxruntime is never
imported here) and returns an :class:`OnnxModule`: the graph's first input in, its first output out,
computing only the nodes that output needs. The operators themselves live in :mod:`.onnx_ops`,
:mod:`.onnx_shape` and :mod:`.onnx_nn`.

* Weights: every float initializer, and every float ``Constant`` above 16 elements, is a frozen
  ``nn.Parameter`` in a leaf module, one per node that owns weights (ComfyUI's ModelPatcher moves leaves),
  cast to ``dtype`` once. Integer tensors (shapes, axes, indices) stay plain CPU tensors, neither
  parameters nor buffers; so do float initializers read only as shape arithmetic (Resize's scales).
* Running: nodes in graph order; each intermediate tensor is dropped after its last reader. Weights are used
  on the input's device and in its float dtype (moved per op when ComfyUI left some on the CPU). Shape
  arithmetic stays on small CPU int64 tensors read with ``.tolist()``, so it never waits on the GPU; a
  CPU value an op needs on the GPU is filled there when it is one number, and a constant (an index
  table) is copied once per device and kept (dropped when the module is moved as a whole).
* Batch: the first input may take any batch size, also when the file declares batch 1, provided the graph
  computes its shapes (``Shape`` ops, Reshape's 0 = copy) as rembg's exports do. Limit: a Reshape or
  Expand whose target is a constant baked at export with a literal batch of 1 cannot know the real batch;
  such a graph runs at batch 1 only (torch raises a shape error), and needs one image per run.
* Operators: :data:`SUPPORTED`. Others (including those of non-standard domains such as ``com.microsoft``)
  on the first output's path raise :class:`UnsupportedOperator` before any weight is built; a few rare
  attribute combinations raise NotImplementedError when run (AveragePool dilations, Resize antialias when
  downscaling, MaxPool's Indices with uneven pads, LayerNormalization's Mean / InvStdDev outputs). An
  unknown or newer opset runs with the newest semantics known here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import onnx_nn, onnx_ops, onnx_shape
from .onnx_ops import HOST_INPUTS, SMALL, Node, Run, constant_value

# every operator the converter runs: name -> op(node, run, *inputs)
OPS = {**onnx_ops.OPS, **onnx_shape.OPS, **onnx_nn.OPS}

SUPPORTED: frozenset[str] = frozenset(OPS)
CONSTANT_PARAMETER_MIN = 17  # elements: a float Constant node this large is a weight (a Parameter)
_STANDARD = ("", "ai.onnx")


class UnsupportedOperator(RuntimeError):
    """The graph uses operators the converter lacks; ``operators`` names them, sorted."""

    def __init__(self, operators: Iterable[str], source: str = "the model"):
        self.operators: tuple[str, ...] = tuple(sorted(set(operators)))
        super().__init__(f"{source}: the ONNX operator(s) {', '.join(self.operators)} cannot be converted to torch; "
                         "run this model with onnxruntime instead.")


def _op_name(node) -> str:
    """``op_type``, prefixed ``domain.`` outside the standard domain (a contrib op is not the standard one)."""
    return node.op_type if node.domain in _STANDARD else f"{node.domain}.{node.op_type}"


def _walk(graph) -> Iterator:
    """Every node of ``graph``, then of its nested subgraphs (If/Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            subgraphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
            for sub in subgraphs:
                yield from _walk(sub)


def operators(graph_or_path) -> set[str]:
    """The operator types a model uses, nested subgraphs included.

    Args:
        graph_or_path: path of an ``.onnx`` file, or an ``onnx`` ModelProto or GraphProto.
    Returns:
        ``op_type`` names; those of non-standard domains as ``"domain.op_type"``.
    """
    graph = graph_or_path
    if isinstance(graph_or_path, (str, os.PathLike)):
        import onnx

        graph = onnx.load(os.fspath(graph_or_path), load_external_data=False)
    return {_op_name(node) for node in _walk(getattr(graph, "graph", graph))}


def convert(path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> OnnxModule:
    """Read an ``.onnx`` file as a torch module (on the CPU; move it, or let ComfyUI, where it should run).

    Args:
        path: the ``.onnx`` file (external data files beside it are read too).
        dtype: float dtype of the weights (float32, float16 or bfloat16); activations follow the input's.
    Returns:
        An :class:`OnnxModule`: ``module(x)`` maps the graph's first input to its first output.
    Raises:
        UnsupportedOperator: the nodes the first output needs use operators outside :data:`SUPPORTED`
            (every one is named), found before any weight is converted.
        RuntimeError: the first output needs another graph input besides the first.
    """
    import onnx

    source = os.fspath(path)
    return OnnxModule(onnx.load(source), dtype, source=source)


@dataclass(frozen=True)
class _Step:
    """One node to run: where its inputs come from, where its outputs go, what dies after it."""

    node: Node
    inputs: tuple[tuple[str, object] | None, ...]  # ("env", name) | ("param", (leaf, name)) | ("const", name)
    outputs: tuple[str, ...]
    host: frozenset[int]  # input positions read as Python numbers: left on the CPU
    needed: int  # how many leading outputs later steps read
    free: tuple[str, ...] = ()


class _Weights(nn.Module):
    """The float weights of one ONNX node (a leaf module: ComfyUI moves and offloads leaves)."""

    def __init__(self, op_type: str):
        super().__init__()
        self.op_type = op_type

    def extra_repr(self) -> str:
        return self.op_type


def _sanitise(name: str, owner: nn.Module) -> str:
    """A child / parameter name of ``owner`` made of ``[A-Za-z0-9_]``, clashing with none of its attributes."""
    clean = re.sub(r"\W", "_", name) or "w"
    key, i = clean, 1
    while hasattr(owner, key) or key in owner._modules:
        key, i = f"{clean}_{i}", i + 1
    return key


class OnnxModule(nn.Module):
    """An ONNX graph as a torch module: first input -> first output, only the nodes that output needs.

    Attributes:
        input_name: name of the graph input ``forward`` feeds.
        output_name: name of the graph output ``forward`` returns.
        weights: ``ModuleDict`` of leaf modules, one per node owning float weights (frozen Parameters).
    """

    def __init__(self, model, dtype: torch.dtype = torch.float32, source: str = "the model"):
        super().__init__()
        graph = model.graph
        initializers = {t.name: t for t in graph.initializer}
        self.input_name = next((i.name for i in graph.input if i.name not in initializers), "")
        self.output_name = graph.output[0].name
        nodes = _needed_nodes(graph.node, self.output_name)
        unsupported = {_op_name(node) for node in nodes if _op_name(node) not in SUPPORTED}
        if unsupported:
            raise UnsupportedOperator(unsupported, source)
        _check_inputs(nodes, initializers, self.input_name, self.output_name, source)
        self.weight_dtype = dtype
        self.weights = nn.ModuleDict()
        self._params: dict[str, tuple[str, str]] = {}  # value name -> (leaf key, parameter name)
        self._constants: dict[str, Tensor] = {}  # CPU tensors: integers, small floats, host-only floats
        self._leaf_of: dict[int, str] = {}  # node index -> key of its leaf in ``weights``
        self._moved: dict[tuple, Tensor] = {}  # constants read as data, copied once per device
        opsets = {o.domain or "": o.version for o in model.opset_import}
        self._steps = self._build(nodes, initializers, opsets.get("", opsets.get("ai.onnx", 1)))
        self._result = self._source(self.output_name)

    # ------------------------------------------------------------ building
    def _build(self, nodes, initializers: dict, opset: int) -> tuple[_Step, ...]:
        """Weights into leaves and constants, then the steps with their inputs resolved."""
        host_only = _host_only(nodes)
        built = []
        for index, proto in enumerate(nodes):
            node = Node(proto.op_type, _attributes(proto), opset, len(proto.output))
            owner = (proto.name or proto.op_type, proto.op_type, index)
            if proto.op_type == "Constant":
                self._store(proto.output[0], constant_value(node), owner, host_only, initializer=False)
                continue
            for name in proto.input:
                if name in initializers and name not in self._params and name not in self._constants:
                    self._store(name, _to_tensor(initializers[name]), owner, host_only, initializer=True)
            built.append((node, proto))
        return _schedule(built, self._source, self.output_name)

    def _store(self, name: str, value: Tensor, owner: tuple, host_only: set[str], initializer: bool) -> None:
        """A float weight becomes a frozen Parameter in its owner's leaf; anything else a CPU constant."""
        weight = value.is_floating_point() and name not in host_only
        if not weight or (not initializer and value.numel() < CONSTANT_PARAMETER_MIN):
            self._constants[name] = value
            return
        label, op_type, index = owner
        if index not in self._leaf_of:  # the node's own leaf, made on its first weight
            self._leaf_of[index] = _sanitise(label, self.weights)
            self.weights[self._leaf_of[index]] = _Weights(op_type)
        key = self._leaf_of[index]
        param = _sanitise(name, self.weights[key])
        self.weights[key].register_parameter(param, nn.Parameter(value.to(self.weight_dtype), requires_grad=False))
        self._params[name] = (key, param)

    def _source(self, name: str):
        """Where a value comes from at run time."""
        if not name:
            return None
        if name in self._params:
            return ("param", self._params[name])
        if name in self._constants:
            return ("const", name)
        return ("env", name)

    # ------------------------------------------------------------ running
    def forward(self, x: Tensor) -> Tensor:
        """Run the graph on a batch.

        Args:
            x: the graph's first input (rembg: ``[B, 3, S, S]`` float), on any device, any batch size.
        Returns:
            The graph's first output, on ``x``'s device, in ``x``'s float dtype where the graph computes floats.
        """
        run = Run(x.device, x.dtype if x.is_floating_point() else self.weight_dtype)
        env = {self.input_name: x}
        for step in self._steps:
            args = [self._fetch(src, env, run) for src in step.inputs]
            out = OPS[step.node.op_type](step.node, run, *self._colocate(step, args, run))
            out = (out,) if isinstance(out, Tensor) else tuple(out)
            if len(out) < step.needed:
                raise NotImplementedError(f"{step.node.op_type}: output {len(out)} is not implemented")
            for name, value in zip(step.outputs, out, strict=False):  # trailing optional outputs may be absent
                if name:
                    env[name] = value
            for name in step.free:
                del env[name]
        return self._fetch(self._result, env, run)

    def _fetch(self, src, env: dict, run: Run) -> Tensor | None:
        if src is None:
            return None
        kind, key = src
        if kind == "env":
            return env[key]
        if kind == "const":
            return self._constants[key]
        weight = getattr(self.weights[key[0]], key[1])  # looked up each run: ComfyUI may have moved it
        return weight.to(run.device, run.dtype, non_blocking=True)

    def _colocate(self, step: _Step, args: list, run: Run) -> list:
        """Move CPU inputs to the device of the other inputs (not those read as Python numbers); a constant
        bigger than shape arithmetic (an index table) takes the op to the run's device."""
        data = [(src, a) for i, (src, a) in enumerate(zip(step.inputs, args, strict=True))
                if a is not None and i not in step.host]
        device = next((a.device for _, a in data if a.device.type != "cpu"), None)
        if device is None and run.device.type != "cpu" and any(s[0] == "const" and a.numel() > SMALL for s, a in data):
            device = run.device
        if device is None:
            return args
        dtype = run.dtype if device == run.device else None
        return [self._move(src, a, device, dtype) if a is not None and i not in step.host and a.device.type == "cpu"
                else a for i, (src, a) in enumerate(zip(step.inputs, args, strict=True))]

    def _move(self, src, value: Tensor, device: torch.device, dtype: torch.dtype | None) -> Tensor:
        """A CPU tensor on ``device`` without waiting on it (a copy from pageable memory waits for the GPU's
        queue); floats in the run's dtype (float64 shape arithmetic cannot go to MPS)."""
        dtype = dtype if value.is_floating_point() and dtype is not None else value.dtype
        if value.numel() == 1:  # a fill kernel takes the value as an argument: no copy
            return torch.full(value.shape, value.item(), dtype=dtype, device=device)
        if src[0] != "const":
            return value.to(device, dtype, non_blocking=True)
        key = (src[1], device, dtype)
        if key not in self._moved:
            self._moved[key] = value.to(device, dtype)
        return self._moved[key]

    def _apply(self, fn, *args, **kwargs):
        self._moved.clear()  # the module moves: drop the constants' copies on the device it leaves
        return super()._apply(fn, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"input={self.input_name!r}, output={self.output_name!r}, steps={len(self._steps)}"


# ---------------------------------------------------------------- graph helpers
def _needed_nodes(nodes, output: str) -> list:
    """The nodes ``output`` depends on, in graph (topological) order."""
    wanted, kept = {output}, []
    for node in reversed(nodes):
        if wanted.intersection(node.output):
            kept.append(node)
            wanted.update(name for name in node.input if name)
    return kept[::-1]


def _check_inputs(nodes, initializers: dict, input_name: str, output: str, source: str) -> None:
    """Every value the kept nodes read is made by them, an initializer, or the first input."""
    made = {name for node in nodes for name in node.output} | set(initializers) | {input_name}
    missing = sorted({name for node in nodes for name in node.input if name and name not in made})
    if output not in made:
        missing.append(output)
    if missing:
        raise RuntimeError(f"{source}: the first output '{output}' needs {', '.join(missing)}, which the graph's "
                         f"first input '{input_name}' does not provide; only single-input graphs are supported.")


def _host_only(nodes) -> set[str]:
    """Values read only as Python numbers (shape arithmetic): they stay CPU constants even when float."""
    host, data = set(), set()
    for node in nodes:
        positions = HOST_INPUTS.get(node.op_type, ())
        for i, name in enumerate(node.input):
            (host if i in positions else data).add(name)
    return host - data


def _schedule(built: list, source, output: str) -> tuple[_Step, ...]:
    """Steps with resolved inputs, the outputs later steps read, and the values to drop after each."""
    last_use: dict[str, int] = {}
    for index, (_, proto) in enumerate(built):
        for name in proto.input:
            last_use[name] = index
    steps = []
    for index, (node, proto) in enumerate(built):
        read = [i for i, name in enumerate(proto.output) if name and (name in last_use or name == output)]
        dead = [name for name in proto.input if last_use.get(name) == index and name != output]
        dead += [name for name in proto.output if name and name not in last_use and name != output]
        inputs = tuple(source(name) for name in proto.input)
        free = tuple(dict.fromkeys(n for n in dead if n and source(n)[0] == "env"))  # weights stay
        steps.append(_Step(node, inputs, tuple(proto.output), frozenset(HOST_INPUTS.get(node.op_type, ())),
                           max(read, default=-1) + 1, free))
    return tuple(steps)


def _attributes(node) -> dict:
    """A node's attributes as Python values: ints, floats, str, lists of them, CPU tensors."""
    from onnx import AttributeProto, helper

    out = {}
    for attr in node.attribute:
        if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            continue  # subgraph operators (If, Loop, Scan) are unsupported anyway
        value = helper.get_attribute_value(attr)
        if attr.type == AttributeProto.STRING:
            value = value.decode()
        elif attr.type == AttributeProto.STRINGS:
            value = [v.decode() for v in value]
        elif attr.type == AttributeProto.TENSOR:
            value = _to_tensor(value)
        out[attr.name] = value
    return out


def _to_tensor(proto) -> Tensor:
    """An ONNX TensorProto as a CPU tensor (unsigned types above 8 bits widen to int64)."""
    import numpy as np
    from onnx import numpy_helper

    array = numpy_helper.to_array(proto)
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
    if array.dtype.kind == "u" and array.dtype.itemsize > 1:
        array = array.astype(np.int64)
    return torch.from_numpy(array if array.flags.writeable else array.copy())
