"""Output node: save a batch of cut-outs as one video with alpha (WebM VP9, ProRes 4444, animated WebP, PNG frames)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from ..utils import runtime
from ..utils.checks import fail
from ..utils.video_save import save_video
from ..utils.video_write import DEFAULT_QUALITY, FORMATS
from . import widgets as w
from .base import Node


class CleanCutSaveVideo(Node):
    DISPLAY_NAME = "Save Cut-out Video"
    SEARCH_ALIASES = ("save video", "video with alpha", "transparent video", "webm alpha", "prores 4444",
                      "animated webp", "png sequence")
    DESCRIPTION = ("Saves the batch as one video that keeps the transparency: WebM (VP9 with alpha), MOV (ProRes "
                   "4444), animated WebP or a folder of PNG frames, as <prefix>_<counter>_.<ext>, never "
                   "overwriting a file. Optional sound track (WebM, MOV).")
    CATEGORY, FUNCTION, OUTPUT_NODE = "CleanCut/output", "save", True
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = (), (), ()

    REQUIRED = {
        "images": w.image("Frames in order: RGBA cut-outs (their alpha is kept), or RGB with a mask connected."),
        "fps": w.floating(24.0, 0.01, 1000.0, 0.01, "Frames per second of the video (> 0). 23.976, 29.97 and "
                          "59.94 are stored exactly as 24000/1001, 30000/1001 and 60000/1001."),
        "format": (list(FORMATS), {"default": "webm", "tooltip": (
            "webm: VP9 with alpha, for web pages (Chrome, Firefox, Edge; not Safari) and OBS. mov: ProRes 4444 "
            "with alpha, for editors (Premiere, Final Cut, DaVinci Resolve, After Effects); large files. webp: "
            "animated WebP, for browsers, no sound. png: a folder of numbered RGBA PNGs, lossless, for any "
            "compositor, no sound.")}),
        "quality": w.integer(DEFAULT_QUALITY, 0, 100, (
            "0-100, higher = better and larger; 100 = lossless where the format can. webm: VP9 CRF = 63 x (100 - "
            "quality) / 100 (80 -> CRF 13), 100 = lossless VP9 (colour still at half resolution). mov: 90 and "
            "above ProRes 4444 XQ, below ProRes 4444 (both near-lossless). webp: 100 = lossless, else lossy at "
            "this quality (alpha stays lossless). png: always lossless.")),
        "filename_prefix": ("STRING", {"default": "cleancut/video", "tooltip": (
            "File name prefix inside ComfyUI's output folder; 'folder/name' makes a sub-folder. The file is "
            "<prefix>_<counter>_.<ext> (png: a folder of that name). As in Save Image, %year%, %month%, %day%, "
            "%hour%, %minute%, %second%, %width%, %height% and %date:yyyy-MM-dd% are filled in.")}),
    }
    OPTIONAL = {
        "mask": ("MASK", {"tooltip": "The alpha, 1 = subject (opaque): replaces the images' own alpha; needed "
                          "for RGB images. One mask goes with every frame; else one per frame, at the images' "
                          "size."}),
        "audio": ("AUDIO", {"tooltip": "Sound track (one clip), cut to the video's length: Opus in webm, PCM in "
                            "mov. webp and png hold no sound: connecting it there is an error."}),
    }
    HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}

    def save(self, images, fps=24.0, format="webm", quality=DEFAULT_QUALITY, filename_prefix="cleancut/video",
             mask=None, audio=None, prompt=None, extra_pnginfo=None):
        self.check_widgets({"fps": fps, "format": format, "quality": quality, "filename_prefix": filename_prefix})
        if extra_pnginfo is not None and not isinstance(extra_pnginfo, Mapping):
            fail("extra_pnginfo", f"expected a dict of metadata entries, got {type(extra_pnginfo).__name__}.")
        metadata = {}
        if not runtime.metadata_disabled():  # as core's Save WEBM: one JSON text tag per entry
            entries = {**({"prompt": prompt} if prompt is not None else {}), **(extra_pnginfo or {})}
            metadata = {str(k): json.dumps(v) for k, v in entries.items()}
        saved = save_video(runtime.output_directory(), filename_prefix, images, fps, format, quality, mask=mask,
                           audio=audio, metadata=metadata or None)
        return {"ui": {"images": saved["previews"], "animated": (format != "png",)}, "result": ()}


NODES = [CleanCutSaveVideo]
