"""CleanCut's library: pure batched torch functions. Nothing here imports ComfyUI."""

from . import adjust, bridges, checks, color, runtime

__all__ = ["adjust", "bridges", "checks", "color", "runtime"]
