"""Output node: save the unraphael app's download set (original, cut-out, extracted, mask) losslessly."""

from __future__ import annotations

from collections.abc import Mapping

from ..utils import runtime, saving
from ..utils.checks import fail
from . import widgets as w
from .base import Node


class CleanCutSave(Node):
    DISPLAY_NAME = "Save Cut-outs"
    SEARCH_ALIASES = ("save", "save image", "save png", "save mask", "save alpha", "save transparent", "export",
                      "cutout", "download")
    DESCRIPTION = ("Saves each batch item's original, cut-out, extracted subject and mask under one shared "
                   "name (<prefix>_<counter>_<role>.png), losslessly with alpha, never overwriting a file.")
    CATEGORY, FUNCTION, OUTPUT_NODE = "CleanCut/output", "save", True
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = (), (), ()

    REQUIRED = {
        "filename_prefix": ("STRING", {"default": "cleancut/cutout", "tooltip": "File name prefix inside "
                                       "ComfyUI's output folder; 'folder/name' makes a sub-folder. Files "
                                       "are <prefix>_<counter>_<role>.png. As in Save Image, %year%, "
                                       "%month%, %day%, %hour%, %minute%, %second%, %width%, %height% and "
                                       "%date:yyyy-MM-dd% are filled in."}),
        "format": (list(saving.FORMATS), {"default": "png", "tooltip": "Both are lossless and keep alpha. "
                                          "PNG embeds the workflow; WebP is smaller."}),
    }
    OPTIONAL = {
        "original": w.image("Original images (saved as _original)."),
        "cutout": w.image("Cut-outs, RGBA or composited (saved as _cutout)."),
        "extracted": w.image("Extracted subjects, RGBA (saved as _extracted)."),
        "mask": ("MASK", {"tooltip": "Masks, 1 = subject (saved as 8-bit grey _mask, 255 = subject)."}),
    }
    HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}

    def save(self, filename_prefix, format="png", original=None, cutout=None, extracted=None, mask=None,
             prompt=None, extra_pnginfo=None):
        self.check_widgets({"filename_prefix": filename_prefix, "format": format})  # saving checks the prefix
        if extra_pnginfo is not None and not isinstance(extra_pnginfo, Mapping):
            fail("extra_pnginfo", f"expected a dict of metadata entries, got {type(extra_pnginfo).__name__}.")
        metadata = None
        if not runtime.metadata_disabled():
            metadata = {**({"prompt": prompt} if prompt is not None else {}), **(extra_pnginfo or {})}
        items = {"original": original, "cutout": cutout, "extracted": extracted, "mask": mask}
        saved = saving.save_set(runtime.output_directory(), filename_prefix, items, format,
                                metadata or None)
        previews = [{k: s[k] for k in ("filename", "subfolder", "type")} for s in saved if s["role"] != "mask"]
        return {"ui": {"images": previews}, "result": ()}


NODES = [CleanCutSave]
