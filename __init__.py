"""CleanCut: batched image preprocessing and background removal nodes for ComfyUI.

ComfyUI imports this folder by path under a generated module name, so every import is relative.
``NODES`` lists the node classes; each declares its own display name, and both mapping dicts derive
from the list (ids and names checked unique). On import inside ComfyUI, the sample photos the example
workflows load are copied into its input folder when missing.
"""

from pathlib import Path

from .nodes import background, mask, preprocess, save, video
from .nodes.base import registry
from .utils import runtime

NODES = [*preprocess.NODES, *save.NODES, *background.NODES, *mask.NODES, *video.NODES]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = registry(NODES)

# The example workflows' photos, copied into ComfyUI's input folder where missing (never over a user's file)
SAMPLE_INPUTS = sorted((Path(__file__).parent / "assets").glob("cleancut_*"))
runtime.provide_input_files(SAMPLE_INPUTS)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
