"""Background removal with rembg models: a thin wrapper over ``utils.rembg_batch.remove_background``.

Nothing here imports rembg or onnxruntime: the session is created when the node first runs.
"""

from __future__ import annotations

from ..utils import rembg_batch
from ..utils.models import MODEL_NAMES
from . import widgets as w


class CleanCutRembg:
    DESCRIPTION = ("Removes the background of every image with a rembg model (same results as rembg.remove), "
                   "with optional alpha matting of the edges. The model session is loaded once and reused.")
    CATEGORY, FUNCTION = "CleanCut/background", "run"
    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE")
    RETURN_NAMES = ("image", "mask", "extracted")
    OUTPUT_TOOLTIPS = (
        "The cut-out: RGBA when background is transparent, else RGB on that colour (see edges); the mask as "
        "a grey image when only_mask is on. Same count and order as the input.",
        "Alpha of the cut-out, 1 = subject kept, 0 = background; soft at the edges (binary with "
        "post_process_mask).",
        "RGBA: the original pixels (or images when original is not connected) with rembg's post-processed, "
        "binary mask as alpha: the subject cut out with hard edges.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": w.image("Images to cut out (RGB or RGBA; an alpha channel is kept: transparent stays "
                              "transparent)." + w.IMAGE_CLAMP_NOTE),
            "model": (list(MODEL_NAMES), {"default": MODEL_NAMES[0], "tooltip": (
                "rembg model. u2netp: small (5 MB), fast; u2net / silueta: general; u2net_human_seg: people; "
                "isnet-*: 1024 px, finer detail; birefnet-*: best quality, slow on CPU. The file is looked up "
                "in ComfyUI/models/rembg, then ~/.u2net (see the README).")}),
            "alpha_matting": ("BOOLEAN", {"default": False, "tooltip": (
                "Refine the edge with closed-form matting (hair, fur, soft edges). Slower: seconds per image.")}),
            "alpha_matting_foreground_threshold": w.integer(240, 0, 255, (
                "Matting: mask values (0-255) above this count as sure subject. Higher = fewer sure-subject "
                "pixels, a wider edge band to solve.")),
            "alpha_matting_background_threshold": w.integer(10, 0, 255, (
                "Matting: mask values (0-255) below this count as sure background. Lower = fewer "
                "sure-background pixels, a wider edge band to solve.")),
            "alpha_matting_erode_size": w.integer(10, 0, 40, (
                "Matting: shrink both sure regions by a square of this many pixels before solving. Larger = "
                "a wider band left to the matting (0 = a 3x3 cross, as rembg).")),
            "only_mask": ("BOOLEAN", {"default": False, "tooltip": (
                "Output the mask as the image instead of the cut-out (as rembg: alpha matting is then not "
                "applied).")}),
            "post_process_mask": ("BOOLEAN", {"default": False, "tooltip": (
                "rembg's post-processing: opening, blur (sigma 2 px) and threshold at 127: a smoother but "
                "binary (hard-edged) mask.")}),
            "background": (list(rembg_batch.BACKGROUNDS), {"default": "transparent", "tooltip": (
                "transparent: RGBA cut-out. white / black: RGB, composited on that colour.")}),
        }, "optional": {
            "original": w.image("Optional: the same images before preprocessing. 'extracted' then takes its "
                                "pixels from here (same size; same count, or one image)."),
            "edges": (list(rembg_batch.EDGES), {"default": "rembg", "tooltip": (
                "Colours of the cut-out's soft edges (without alpha matting). rembg: rembg.remove's pixels, "
                "the photo times the mask, blended with the mask a second time onto white/black (darker "
                "fringes). straight: the photo's own colours under straight alpha, blended once: cleaner "
                "edges, best when a later node composites with the mask.")}),
        }}

    def run(self, images, model, alpha_matting, alpha_matting_foreground_threshold,
            alpha_matting_background_threshold, alpha_matting_erode_size, only_mask, post_process_mask,
            background, original=None, edges="rembg"):
        w.check_inputs(self, locals())  # the images are checked by remove_background, first thing
        return rembg_batch.remove_background(
            images, model, alpha_matting, alpha_matting_foreground_threshold, alpha_matting_background_threshold,
            alpha_matting_erode_size, only_mask, post_process_mask, background, original, edges)


NODES = {"CleanCutRembg": (CleanCutRembg, "Remove Background (rembg)")}
