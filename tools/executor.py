"""A small stand-in for ComfyUI's executor: runs API-format prompts through NODE_CLASS_MAPPINGS.

It validates the way ComfyUI's server does before running anything (required inputs present, link
types against the source's RETURN_TYPES, combo values, INT/FLOAT/BOOLEAN/STRING conversion and
``min``/``max``), then calls each node's ``FUNCTION`` in dependency order and counts outputs against
``RETURN_TYPES``. Core nodes the pack's workflows need can be passed in ``extra_nodes``. Shared by the
tests and tools/make_workflows.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

HIDDEN = {"PROMPT": "prompt", "EXTRA_PNGINFO": "extra_pnginfo", "UNIQUE_ID": "unique_id"}


class PromptError(ValueError):
    """A prompt that ComfyUI's validation would reject; the message names node, input and reason."""


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _types_match(output_type: str, input_type: str) -> bool:
    if "*" in (output_type, input_type):
        return True
    return bool(set(output_type.split(",")) & set(input_type.split(",")))


def _convert_widget(node_id: str, name: str, spec: tuple, value):
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {}) or {}
    where = f"node {node_id} input '{name}'"
    if isinstance(kind, (list, tuple)) or kind == "COMBO":
        options = kind if isinstance(kind, (list, tuple)) else opts.get("options", [])
        if value not in options:
            raise PromptError(f"{where}: value not in list: {value!r} not in {list(options)}")
        return value
    value = _convert_scalar(where, kind, value)
    if kind in ("INT", "FLOAT"):
        if "min" in opts and value < opts["min"]:
            raise PromptError(f"{where}: value {value} smaller than min of {opts['min']}")
        if "max" in opts and value > opts["max"]:
            raise PromptError(f"{where}: value {value} bigger than max of {opts['max']}")
    return value


def _as_bool(value):
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


CONVERTERS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": _as_bool}


def _convert_scalar(where: str, kind: str, value):
    """The server's conversion of a widget value to ``kind`` (links and unknown kinds pass unchanged)."""
    try:
        return CONVERTERS.get(kind, lambda v: v)(value)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"{where}: failed to convert {value!r} to {kind}") from exc


def _check_link(prompt: Mapping, classes: Mapping, node_id: str, name: str, input_spec: tuple, link) -> None:
    """The linked node exists, has that output, and its type fits the input."""
    where = f"node {node_id} input '{name}'"
    src = prompt.get(link[0])
    if src is None:
        raise PromptError(f"{where}: links to missing node {link[0]}")
    src_types = classes[src["class_type"]].RETURN_TYPES
    if link[1] >= len(src_types):
        raise PromptError(f"{where}: output {link[1]} does not exist")
    want = input_spec[0] if isinstance(input_spec[0], str) else "COMBO"
    if not _types_match(src_types[link[1]], want):
        raise PromptError(f"{where}: return type mismatch {src_types[link[1]]} != {want}")


def validate(prompt: Mapping, classes: Mapping) -> None:
    """Raise :class:`PromptError` for anything ComfyUI's ``validate_prompt`` would reject."""
    for node_id, node in prompt.items():
        cls = classes.get(node.get("class_type"))
        if cls is None:
            raise PromptError(f"node {node_id}: unknown class_type {node.get('class_type')!r}")
        spec = cls.INPUT_TYPES()
        inputs = node.get("inputs", {})
        for section in ("required", "optional"):
            for name, input_spec in spec.get(section, {}).items():
                if name not in inputs:
                    if section == "required":
                        raise PromptError(f"node {node_id}: required input '{name}' is missing")
                    continue
                if _is_link(inputs[name]):
                    _check_link(prompt, classes, node_id, name, input_spec, inputs[name])
                else:
                    inputs[name] = _convert_widget(node_id, name, input_spec, inputs[name])
        known = set(spec.get("required", {})) | set(spec.get("optional", {}))
        extra = set(inputs) - known
        if extra:
            raise PromptError(f"node {node_id}: unknown inputs {sorted(extra)} for {node['class_type']}")


@dataclass
class Run:
    """What a prompt produced: each node's output tuple, and the ``ui`` dict of output nodes."""

    outputs: dict[str, tuple] = field(default_factory=dict)
    ui: dict[str, dict] = field(default_factory=dict)


def run_prompt(prompt: Mapping, classes: Mapping, extra_pnginfo: dict | None = None) -> Run:
    """Validate then execute a prompt (JSON round-tripped first, as the server receives it)."""
    prompt = json.loads(json.dumps(prompt))
    validate(prompt, classes)
    run = Run()
    results = run.outputs

    def execute(node_id: str, stack: tuple = ()) -> tuple:
        if node_id in results:
            return results[node_id]
        if node_id in stack:
            raise PromptError(f"node {node_id}: the graph has a cycle")
        node = prompt[node_id]
        cls = classes[node["class_type"]]
        kwargs = {name: (execute(v[0], (*stack, node_id))[v[1]] if _is_link(v) else v)
                  for name, v in node["inputs"].items()}
        for name, key in cls.INPUT_TYPES().get("hidden", {}).items():
            kwargs[name] = {"PROMPT": prompt, "EXTRA_PNGINFO": extra_pnginfo, "UNIQUE_ID": node_id}.get(key)
        with torch.inference_mode():  # as ComfyUI runs every node: tensors made inside are inference tensors
            out = getattr(cls(), cls.FUNCTION)(**kwargs)
        if isinstance(out, dict):  # output nodes may return {"ui": ..., "result": (...)}
            run.ui[node_id] = out.get("ui", {})
            out = tuple(out.get("result", ()))
            results[node_id] = out
            return out
        if not isinstance(out, tuple) or len(out) != len(cls.RETURN_TYPES):
            raise PromptError(f"node {node_id}: {cls.__name__} returned {type(out).__name__} of "
                              f"{len(out) if isinstance(out, tuple) else '?'} outputs, "
                              f"RETURN_TYPES declares {len(cls.RETURN_TYPES)}")
        results[node_id] = out
        return out

    for node_id in prompt:
        execute(node_id)
    return run


def tensor_source(tensors: Mapping):
    """A stand-in for core image loaders: ``{"class_type": "TestSource", "inputs": {"key": "photos"}}``
    outputs ``tensors["photos"]`` as IMAGE (or MASK for 3-d tensors, on output 1)."""

    class TestSource:
        CATEGORY, FUNCTION = "testing", "load"
        RETURN_TYPES = ("IMAGE", "MASK")

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"key": (sorted(tensors), {"tooltip": "which test tensor"})}}

        def load(self, key):
            t = tensors[key]
            return (t, None) if t.ndim == 4 else (None, t)

    return TestSource
