"""Background removal with rembg's models, batched: the model table and files, sessions, Pillow's resize,
the model step, the cut-out steps and alpha matting. Nothing here imports rembg or onnxruntime at load."""

from . import cutout, inference, matting, models, resample, sessions
from .cutout import BACKGROUNDS, EDGES, RembgOptions, remove_background
from .models import MODEL_NAMES

__all__ = ["BACKGROUNDS", "EDGES", "MODEL_NAMES", "RembgOptions", "cutout", "inference", "matting", "models",
           "remove_background", "resample", "sessions"]
