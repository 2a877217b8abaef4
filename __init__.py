"""CleanCut: batched image preprocessing and background removal nodes for ComfyUI.

ComfyUI imports this folder by path under a generated module name, so every import is relative.
One table, ``NODES``, gives each node id its class and display name; both mapping dicts derive from it.
"""

from .nodes import background, preprocess, rembg, save

NODES = {**preprocess.NODES, **save.NODES, **background.NODES, **rembg.NODES}

NODE_CLASS_MAPPINGS = {node_id: cls for node_id, (cls, _) in NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {node_id: name for node_id, (_, name) in NODES.items()}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
