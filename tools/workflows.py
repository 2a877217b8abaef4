"""UI-format workflows (what users drag into ComfyUI) -> API-format prompts, plus stand-ins for core nodes.

The conversion follows the front end: widget values are listed in ``INPUT_TYPES`` order (required,
then optional), skipping inputs that only take links; a widget converted to an input and linked takes
the link. A workflow saved before an optional widget was added lists fewer values: the front end keeps
the new widgets' defaults, and so does this (they are left out of the prompt). Any other count mismatch
is an error here, because in ComfyUI it would silently shift every value into the wrong widget.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from executor import PromptError
from PIL import Image, ImageSequence

WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
VIRTUAL = {"Note", "MarkdownNote", "Reroute"}
UPLOAD_VALUES = {"image"}  # LoadImage saves the upload button's value after the file name


def widget_names(cls) -> list[str]:
    spec = cls.INPUT_TYPES()
    names = []
    for section in ("required", "optional"):
        for name, (kind, *rest) in spec.get(section, {}).items():
            opts = rest[0] if rest else {}
            if (isinstance(kind, (list, tuple)) or kind in WIDGET_KINDS) and not opts.get("forceInput"):
                names.append(name)
    return names


# Node geometry as the front end computes it (LGraphNode.computeSize, ComfyUI_frontend 1.27): a node's saved size
# excludes its title bar; on load the front end grows any node smaller than this, into its neighbours.
TITLE_HEIGHT, SLOT_HEIGHT, WIDGET_HEIGHT, WIDGET_GAP = 30, 20, 20, 4
IMAGE_PREVIEW_HEIGHT = 220  # the picture Load Image shows, and Preview / Save nodes after a run
MIN_WIDTH, MIN_WIDTH_WITH_WIDGETS = 140, 210


def socket_inputs(cls) -> list[str]:
    """Inputs that only take links (IMAGE, MASK, ...): one slot row each, no widget."""
    spec = cls.INPUT_TYPES()
    names = set(widget_names(cls))
    return [n for section in ("required", "optional") for n in spec.get(section, {}) if n not in names]


def has_upload(cls) -> bool:
    """An ``image_upload`` combo (Load Image): the front end adds an upload button and shows the picture."""
    spec = cls.INPUT_TYPES()
    return any(len(s) > 1 and isinstance(s[1], dict) and s[1].get("image_upload")
               for section in ("required", "optional") for s in spec.get(section, {}).values())


def shows_images(cls) -> bool:
    """Load Image and output nodes (Preview, Save) draw pictures below their widgets."""
    return has_upload(cls) or bool(getattr(cls, "OUTPUT_NODE", False))


def drawn_widgets(cls) -> int:
    """Widgets the front end draws: one per widget input, plus an upload button."""
    return len(widget_names(cls)) + has_upload(cls)


def min_size(cls) -> tuple[int, int]:
    """The smallest (width, height) the front end gives a node of this class, title bar excluded."""
    rows = max(len(socket_inputs(cls)), len(cls.RETURN_TYPES), 1)
    widgets = drawn_widgets(cls) * (WIDGET_HEIGHT + WIDGET_GAP)
    if shows_images(cls):
        widgets += IMAGE_PREVIEW_HEIGHT + WIDGET_GAP
    height = rows * SLOT_HEIGHT + (widgets + 8 if widgets else 0) + 6
    return (MIN_WIDTH_WITH_WIDGETS if drawn_widgets(cls) else MIN_WIDTH), height


def ui_to_api(workflow: dict, classes: dict) -> dict:
    links = {link[0]: (str(link[1]), link[2]) for link in workflow["links"]}
    api = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL or node.get("mode") in (2, 4):
            continue
        cls = classes.get(node["type"])
        if cls is None:
            raise PromptError(f"node {node['id']}: unknown node type {node['type']!r}")
        names = widget_names(cls)
        values = [v for v in node.get("widgets_values", []) if not (isinstance(v, str) and v in UPLOAD_VALUES
                                                                    and node["type"] == "LoadImage")]
        later = set(names[len(values):])  # widgets added after the workflow was saved
        if len(values) > len(names) or not later <= set(cls.INPUT_TYPES().get("optional", {})):
            raise PromptError(f"node {node['id']} ({node['type']}): {len(values)} widget values for "
                              f"{len(names)} widgets {names}")
        inputs = dict(zip(names, values, strict=False))  # later optional widgets: their defaults
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                inputs[inp.get("widget", {}).get("name", inp["name"])] = list(links[inp["link"]])
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return api


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def load_frames(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Core Load Image's outputs: every frame of an animated file (of the first frame's size) is one image of
    the batch; the mask is ``1 - alpha``."""
    rgbs, masks = [], []
    for frame in ImageSequence.Iterator(Image.open(path)):
        if rgbs and frame.size != (rgbs[0].shape[1], rgbs[0].shape[0]):
            continue
        rgbs.append(np.asarray(frame.convert("RGB"), dtype=np.float32) / 255)
        masks.append(1 - np.asarray(frame.convert("RGBA"))[..., 3].astype(np.float32) / 255)
    return torch.from_numpy(np.stack(rgbs)), torch.from_numpy(np.stack(masks))


def core_stand_ins(input_dir: Path) -> dict:
    """The few core nodes the example workflows use, with core's INPUT_TYPES (widgets in core's order)."""

    class LoadImage:
        CATEGORY, FUNCTION, RETURN_TYPES = "image", "load_image", ("IMAGE", "MASK")

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": (sorted(p.name for p in input_dir.iterdir()), {"image_upload": True})}}

        def load_image(self, image):
            return load_frames(input_dir / image)

    class EmptyImage:
        CATEGORY, FUNCTION, RETURN_TYPES = "image", "generate", ("IMAGE",)

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"width": ("INT", {"default": 512, "min": 1, "max": 16384}),
                                 "height": ("INT", {"default": 512, "min": 1, "max": 16384}),
                                 "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                                 "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF})}}

        def generate(self, width, height, batch_size=1, color=0):
            rgb = torch.tensor([(color >> 16) & 255, (color >> 8) & 255, color & 255]) / 255
            return (rgb.expand(batch_size, height, width, 3).clone(),)

    class RepeatImageBatch:
        CATEGORY, FUNCTION, RETURN_TYPES = "image/batch", "repeat", ("IMAGE",)

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",), "amount": ("INT", {"default": 1, "min": 1, "max": 4096})}}

        def repeat(self, image, amount):
            return (image.repeat((amount, 1, 1, 1)),)

    class SaveImage:
        CATEGORY, FUNCTION, RETURN_TYPES, OUTPUT_NODE = "image", "save_images", (), True
        saved: list = []

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})},
                    "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

        def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
            type(self).saved.append(images)
            return {"ui": {"images": [{"filename": f"{filename_prefix}_{i}"} for i in range(len(images))]}}

    class PreviewImage(SaveImage):
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"images": ("IMAGE",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo":
                                                                    "EXTRA_PNGINFO"}}

    return {c.__name__: c for c in (LoadImage, EmptyImage, RepeatImageBatch, SaveImage, PreviewImage)}
