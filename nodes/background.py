"""Background removal nodes: WAS's threshold cut-out and rembg, thin wrappers over batched ``utils``.

Nothing here imports rembg or onnxruntime: the session is created when the rembg node first runs.
"""

from __future__ import annotations

from ..utils import edges as ed
from ..utils import rembg as rb
from ..utils import threshold as th
from . import widgets as w
from .base import Node

CATEGORY = "CleanCut/background"


def trimap_widgets(prefix: str, scope: str) -> dict:
    """rembg's three trimap widgets (thresholds and erosion), named ``prefix + name``, tooltips led by ``scope``;
    expert settings (advanced): the defaults are rembg's and suit most photos."""
    return {name: w.advanced(spec) for name, spec in {
        prefix + "foreground_threshold": w.integer(240, 0, 255, (
            f"{scope}: mask values (0-255) above this count as sure subject. Higher = fewer sure-subject "
            "pixels, a wider edge band to solve.")),
        prefix + "background_threshold": w.integer(10, 0, 255, (
            f"{scope}: mask values (0-255) below this count as sure background. Lower = fewer "
            "sure-background pixels, a wider edge band to solve.")),
        prefix + "erode_size": w.integer(10, 0, 40, (
            f"{scope}: shrink both sure regions by a square of this many pixels before solving. Larger = "
            "a wider band left to the matting (0 = a 3x3 cross, as rembg).")),
    }.items()}


class CleanCutAlphaThreshold(Node):
    DISPLAY_NAME = "Remove Background (Alpha Threshold)"
    SEARCH_ALIASES = ("remove bg", "background removal", "cutout", "threshold", "alpha", "transparent background",
                      "image remove background (alpha)", "was node suite", "binarize")
    DESCRIPTION = ("Drop-in replacement for WAS Node Suite's 'Image Remove Background (Alpha)': greyscale, "
                   "Pillow Gaussian blur, fixed threshold, alpha. Same widgets, same cut as WAS on every image "
                   "(bit-exact), but batched (GPU when available), with MASK outputs, and without WAS's bug "
                   "that cuts every second image of a batch with 255 - threshold in background mode.")
    CATEGORY = CATEGORY
    RETURN_TYPES, RETURN_NAMES = ("IMAGE", "MASK", "MASK"), ("images", "mask", "inverted_mask")
    OUTPUT_TOOLTIPS = (
        "RGBA cut-outs (what WAS returns): the input RGB with straight alpha = mask. Same count, order, size "
        "and device as the input. RGB is passed through at full precision; with legacy_alternating it is "
        "truncated to 8 bits, as WAS does.",
        "MASK, 1 = kept subject (opaque), 0 = removed background. For Image Composite Masked and masks "
        "that mean 'keep this'.",
        "Inverted mask, 1 - mask: 1 = removed (transparent). ComfyUI's alpha polarity: what Load Image "
        "outputs and what Join Image with Alpha expects.",
    )

    REQUIRED = {
        "images": w.image("Images to cut out (batch of RGB or RGBA; an existing alpha is replaced)."),
        "mode": (list(th.MODES), {"default": "background", "tooltip": (
            "WAS's modes. background: removes dark areas, keeps pixels whose blurred grey is above "
            "threshold. foreground: removes light areas, keeps pixels darker than threshold.")}),
        "threshold": w.integer(127, 0, 255, "Cut level on the 8-bit grey scale (0-255), as in WAS. "
                               "Higher keeps less in background mode and more in foreground mode."),
        "threshold_tolerance": w.integer(2, 1, 24, "Blur radius (Pillow GaussianBlur radius) applied "
                                         "to the grey before the cut: larger gives smoother edges and "
                                         "drops small specks. 1-24, as in WAS."),
    }
    OPTIONAL = {  # optional: WAS workflows and API prompts that lack it still run unchanged
        "legacy_alternating": w.advanced(("BOOLEAN", {"default": False, "tooltip": (
            "Off (recommended): every image is cut as WAS cuts a single image, RGB kept at full "
            "precision. On: WAS's batch output byte for byte, bug included: in background mode the "
            "2nd, 4th, 6th... image of a batch is cut at 255 - threshold; RGB truncated to 8 bits.")})),
    }

    def run(self, images, mode="background", threshold=127, threshold_tolerance=2, legacy_alternating=False):
        options = th.ThresholdOptions(mode=mode, threshold=threshold, threshold_tolerance=threshold_tolerance,
                                      legacy_alternating=legacy_alternating)
        return th.alpha_threshold_batches(images, options)  # checks everything before any transfer to the GPU


class CleanCutRembg(Node):
    DISPLAY_NAME = "Remove Background (rembg)"
    SEARCH_ALIASES = ("remove bg", "background removal", "cutout", "cut out", "matting", "alpha matting", "alpha",
                      "transparent background", "segment subject", "u2net", "birefnet", "isnet", "bria")
    DESCRIPTION = ("Removes the background of every image with a rembg model (same results as rembg.remove), "
                   "with optional alpha matting of the edges. The model session is loaded once and reused.")
    CATEGORY = CATEGORY
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

    REQUIRED = {
        "images": w.image("Images to cut out (RGB or RGBA; an alpha channel is kept: transparent stays "
                          "transparent)." + w.IMAGE_CLAMP_NOTE),
        "model": (list(rb.MODEL_NAMES), {"default": rb.MODEL_NAMES[0], "tooltip": (
            "rembg model. u2netp: small (5 MB), fast; u2net / silueta: general; u2net_human_seg: people; "
            "isnet-*: 1024 px, finer detail; birefnet-*: best quality, slow on CPU; birefnet-general-fp16: "
            "birefnet-general's file in float16 on a GPU; bria-rmbg: " + rb.models.MODELS["bria-rmbg"].use +
            "; u2net_custom / dis_custom / ben_custom: your own ONNX file, named in model_file. The file is "
            "looked up in ComfyUI/models/rembg, then ~/.u2net (see the README).")}),
        "alpha_matting": ("BOOLEAN", {"default": False, "tooltip": (
            "Refine the edge with closed-form matting (hair, fur, soft edges). Slower: seconds per image.")}),
        **trimap_widgets("alpha_matting_", "Matting"),
        "only_mask": ("BOOLEAN", {"default": False, "tooltip": (
            "Output the mask as the image instead of the cut-out (as rembg: alpha matting is then not "
            "applied).")}),
        "post_process_mask": ("BOOLEAN", {"default": False, "tooltip": (
            "rembg's post-processing: opening, blur (sigma 2 px) and threshold at 127: a smoother but "
            "binary (hard-edged) mask.")}),
        "background": (list(rb.BACKGROUNDS), {"default": "transparent", "tooltip": (
            "transparent: RGBA cut-out. white / black: RGB, composited on that colour.")}),
    }
    OPTIONAL = {
        "original": w.image("Optional: the same images before preprocessing. 'extracted' then takes its "
                            "pixels from here (same size; same count, or one image)."),
        "edges": w.advanced((list(rb.EDGES), {"default": "rembg", "tooltip": (
            "Colours of the cut-out's soft edges (without alpha matting). rembg: rembg.remove's pixels, "
            "the photo times the mask, blended with the mask a second time onto white/black (darker "
            "fringes). straight: the photo's own colours under straight alpha, blended once: cleaner "
            "edges, best when a later node composites with the mask.")})),
        "decontaminate": ("BOOLEAN", {"default": False, "tooltip": (
            "Estimate the subject's own colours in the soft edge pixels (rembg's decontaminate=True, "
            "pymatting's estimate_foreground_ml) instead of keeping the old background's colour there. "
            "Without alpha matting only (matting estimates them already); about 0.3 s per 1024² image on a "
            "CPU. For refined edges as well, use Refine Edges after this node.")}),
        "runtime": w.advanced((list(rb.RUNTIMES), {"default": "auto", "tooltip": (
            "Where the model runs. auto: torch on a GPU (NVIDIA, AMD, Apple, Intel: ComfyUI's device, batched, "
            "offloaded by ComfyUI like its own models), onnxruntime on the CPU (faster there). torch: always "
            "torch (needs the onnx package). onnxruntime: always onnxruntime (a GPU only with onnxruntime-gpu "
            "on NVIDIA). Masks agree within 0.5/255 on average.")})),
        "model_file": w.advanced(("STRING", {"default": "", "tooltip": (
            "Only for the *_custom models (u2net_custom, dis_custom, ben_custom): the file name of your own "
            "ONNX model in ComfyUI/models/rembg (or ~/.u2net); files outside the model folders are refused. "
            "Input size and normalisation come from the chosen name (u2net_custom: 320 px, ImageNet; "
            "dis_custom / ben_custom: 1024 px, mean 0.5, std 1). Leave empty for every other model.")})),
    }

    def run(self, images, model, alpha_matting, alpha_matting_foreground_threshold,
            alpha_matting_background_threshold, alpha_matting_erode_size, only_mask, post_process_mask,
            background, original=None, edges="rembg", decontaminate=False, runtime="auto", model_file=""):
        options = rb.RembgOptions(
            model=model, alpha_matting=alpha_matting,
            alpha_matting_foreground_threshold=alpha_matting_foreground_threshold,
            alpha_matting_background_threshold=alpha_matting_background_threshold,
            alpha_matting_erode_size=alpha_matting_erode_size, only_mask=only_mask,
            post_process_mask=post_process_mask, background=background, edges=edges, decontaminate=decontaminate,
            runtime=runtime, model_file=model_file)
        self.check_widgets(vars(options))  # the node's ranges; remove_background checks the images, once
        return rb.remove_background(images, options, original)


class CleanCutRefineEdges(Node):
    DISPLAY_NAME = "Refine Edges"
    SEARCH_ALIASES = ("matting", "alpha matting", "refine mask edge", "edge refinement", "hair", "fur", "despill",
                      "decontaminate", "color decontamination", "foreground estimation", "guided filter",
                      "closed-form matting", "trimap", "alpha")
    DESCRIPTION = ("Refines any mask's edge against its image (hair, fur, soft outlines); with decontaminate, "
                   "also estimates the subject's own colours in the edge pixels. Connect the image and a mask "
                   "from Remove Background, the threshold node or any segmenter. Whole batches at once, GPU when "
                   "available.")
    CATEGORY = CATEGORY
    RETURN_TYPES, RETURN_NAMES = ("IMAGE", "MASK", "IMAGE"), ("image", "mask", "foreground")
    OUTPUT_TOOLTIPS = (
        "RGBA cut-out: the foreground colours with the refined mask as straight alpha. Same count and order "
        "as the larger of the two input batches.",
        "The refined mask, 1 = subject, soft at the edges.",
        "RGB: the estimated foreground colours (the photo's own where decontaminate is off). Paste it with "
        "the mask onto any background (e.g. Image Composite Masked).",
    )

    REQUIRED = {
        "image": w.image("The photo the mask belongs to (RGB or RGBA; its own alpha is ignored: the mask "
                         "decides). One image is used for every mask." + w.IMAGE_CLAMP_NOTE),
        "mask": ("MASK", {"tooltip": (
            "The mask to refine, 1 = subject (Remove Background's mask). Load Image's mask is the opposite "
            "(1 = transparent): pass it through Invert Mask first. Same size as the image; one mask is used "
            "for every image.")}),
        "method": (list(ed.METHODS), {"default": ed.METHODS[0], "tooltip": (
            "guided filter (recommended): the mask follows the photo's own edges near its outline, "
            "milliseconds per image. closed-form: rembg's alpha matting on the trimap below, seconds per "
            "image on the CPU. none: keep the mask (decontaminate only).")}),
        "band_width": w.integer(32, 1, ed.MAX_BAND, (
            "Guided filter: how far, in pixels, on either side of the mask's edge the alpha may change; also "
            "the filter's window radius. Larger reaches longer strands but can give some alpha to nearby "
            "background of a similar colour; smaller stays closer to the mask.")),
        "decontaminate": ("BOOLEAN", {"default": False, "tooltip": (
            "Estimate the subject's own colours in the partly transparent pixels (multi-level foreground "
            "estimation, as pymatting / rembg's decontaminate) instead of the photo's. Helps most when the "
            "alpha is accurate (closed-form on a good trimap); from a model's mask it measured slightly worse "
            "on our ground-truth set, hence off by default. About 0.1-0.3 s per 1024² image on a CPU.")}),
        **trimap_widgets("", "Closed-form only"),
    }

    def run(self, image, mask, method="guided filter", band_width=32, decontaminate=False, foreground_threshold=240,
            background_threshold=10, erode_size=10):
        options = ed.RefineOptions(method=method, band_width=band_width, decontaminate=decontaminate,
                                   foreground_threshold=foreground_threshold,
                                   background_threshold=background_threshold, erode_size=erode_size)
        self.check_widgets(vars(options))
        return ed.refine_edges(image, mask, options)


NODES = [CleanCutAlphaThreshold, CleanCutRembg, CleanCutRefineEdges]
