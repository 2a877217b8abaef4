"""Small builders for input declarations, so every widget carries a tooltip and its bounds."""

from __future__ import annotations

IMAGE_CLAMP_NOTE = " Values above 1 (16-bit-like data) are clamped to 1, never wrapped."


def image(tooltip: str) -> tuple:
    return ("IMAGE", {"tooltip": tooltip})


def number(kind: str, default, low, high, step, tooltip: str) -> tuple:
    return (kind, {"default": default, "min": low, "max": high, "step": step, "tooltip": tooltip})


def floating(default: float, low: float, high: float, step: float, tooltip: str) -> tuple:
    return number("FLOAT", default, low, high, step, tooltip)


def integer(default: int, low: int, high: int, tooltip: str, step: int = 1) -> tuple:
    return number("INT", default, low, high, step, tooltip)


def advanced(spec: tuple) -> tuple:
    """``spec`` marked as an expert setting: front ends that support it fold the widget away until the user asks
    for advanced inputs. Only a display hint: the widget keeps its place and value in saved workflows."""
    kind, *rest = spec
    return (kind, {**(rest[0] if rest else {}), "advanced": True})
