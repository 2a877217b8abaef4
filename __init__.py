"""CleanCut: batched image preprocessing and background removal nodes for ComfyUI.

ComfyUI imports this folder by path under a generated module name, so every import is relative.
``NODES`` lists the node classes; each declares its own display name, and both mapping dicts derive
from the list (ids and names checked unique).
"""

from .nodes import background, mask, preprocess, save
from .nodes.base import registry

NODES = [*preprocess.NODES, *save.NODES, *background.NODES, *mask.NODES]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = registry(NODES)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
