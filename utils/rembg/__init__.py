"""Background removal with rembg's models, batched: the model table and files, sessions, Pillow's resize,
the model step and where it runs (onnxruntime or torch), the cut-out steps and alpha matting. Nothing here
imports rembg, onnxruntime or onnx at load."""

from . import backends, cutout, download, inference, matting, models, resample, sessions
from .backends import RUNTIMES
from .cutout import BACKGROUNDS, EDGES, RembgOptions, remove_background
from .models import MODEL_NAMES

__all__ = ["BACKGROUNDS", "EDGES", "MODEL_NAMES", "RUNTIMES", "RembgOptions", "backends", "cutout", "download",
           "inference", "matting", "models", "remove_background", "resample", "sessions"]
