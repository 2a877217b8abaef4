"""CleanCut's library: pure batched torch functions. Nothing here imports ComfyUI."""

from . import (
    adjust,
    bridges,
    checks,
    clahe,
    color,
    compare,
    filters,
    foreground,
    kernels,
    pipeline,
    rembg,
    runtime,
    saving,
)

__all__ = ["adjust", "bridges", "checks", "clahe", "color", "compare", "filters", "foreground", "kernels",
           "pipeline", "rembg", "runtime", "saving"]
