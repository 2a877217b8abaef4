"""Small builders for INPUT_TYPES entries, so every widget carries a tooltip and its bounds."""

from __future__ import annotations

from ..utils.checks import check_choice, check_number

IMAGE_CLAMP_NOTE = " Values above 1 (16-bit-like data) are clamped to 1, never wrapped."


def image(tooltip: str) -> tuple:
    return ("IMAGE", {"tooltip": tooltip})


def number(kind: str, default, low, high, step, tooltip: str) -> tuple:
    return (kind, {"default": default, "min": low, "max": high, "step": step, "tooltip": tooltip})


def floating(default: float, low: float, high: float, step: float, tooltip: str) -> tuple:
    return number("FLOAT", default, low, high, step, tooltip)


def integer(default: int, low: int, high: int, tooltip: str, step: int = 1) -> tuple:
    return number("INT", default, low, high, step, tooltip)


def check_inputs(node: object, values: dict) -> None:
    """Check widget values passed straight to a node's function against its own ``INPUT_TYPES``.

    ComfyUI enforces ``min``/``max`` and combo lists only for queued graphs; a direct call (a script,
    another node pack) gets the same rule here, as a ``ValueError`` that names the input.
    """
    spec = type(node).INPUT_TYPES()
    for section in ("required", "optional"):
        for name, (kind, *rest) in spec.get(section, {}).items():
            if name not in values or values[name] is None:
                continue
            opts = rest[0] if rest else {}
            if isinstance(kind, (list, tuple)):
                check_choice(values[name], name, kind)
            elif kind in ("INT", "FLOAT"):
                check_number(values[name], name, opts.get("min"), opts.get("max"), integer=kind == "INT")
            elif kind == "BOOLEAN" and not isinstance(values[name], bool):
                raise ValueError(f"{name}: expected True or False, got {values[name]!r}.")
