"""Preprocessing nodes: one per filter, each a thin wrapper over a batched ``utils`` function."""

from __future__ import annotations

from ..utils import adjust, clahe, compare, filters, pipeline, runtime
from ..utils.checks import SettingError, check_image
from . import widgets as w
from .base import Node

CATEGORY = "CleanCut/preprocess"
IMAGE_IN = w.image("Images to process (batch of RGB or RGBA; alpha is passed through untouched)."
                   + w.IMAGE_CLAMP_NOTE)
IMAGE_OUT_TIP = ("Processed images: same count, order, size and device as the input.",)


class _Filter(Node):
    """A one-IMAGE-in, one-IMAGE-out node: subclasses declare ``WIDGETS`` and the ``utils`` core ``OP``.

    ``run`` checks the image once and every widget (direct calls skip ComfyUI's own checks; the node's
    ranges lie inside the library's), then runs the unchecked ``OP`` chunk by chunk on the compute device
    with progress and cancel (``runtime.map_batches``).
    """

    CATEGORY = CATEGORY
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = ("IMAGE",), ("image",), IMAGE_OUT_TIP
    OP = None
    WIDGETS: dict = {}  # the inputs after ``image``, in order

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.REQUIRED = {"image": IMAGE_IN, **cls.WIDGETS}

    def run(self, image, *args, **params):
        if len(args) > len(self.WIDGETS):
            raise SettingError("", f"expected at most {len(self.WIDGETS)} widget values "
                               f"({', '.join(self.WIDGETS)}), got {len(args)}.")
        positional = dict(zip(list(self.WIDGETS)[:len(args)], args, strict=True))  # INPUT_TYPES order
        twice = sorted(set(positional) & set(params))
        if twice:
            raise SettingError(twice[0], "given both by position and by keyword; pass it once.")
        params.update(positional)
        check_image(image, "image")  # once, before any transfer to the GPU
        self.check_widgets(params)
        return (runtime.map_batches(image, type(self).OP, **params),)


class CleanCutGammaGain(_Filter):
    DISPLAY_NAME = "Gamma / Gain"
    SEARCH_ALIASES = ("brightness", "exposure", "brighten", "darken", "midtones", "curve", "levels")
    DESCRIPTION = "Gamma curve, then gain, on every image of the batch: out = gain * in^(1/gamma), clamped to 0..1."
    OP = staticmethod(adjust.gamma_gain_core)
    WIDGETS = {
        "gamma": w.floating(1.0, 0.1, 5.0, 0.01, "Above 1 brightens mid-tones, below 1 darkens them; "
                            "1 leaves the image unchanged. Black and white stay put."),
        "gain": w.floating(1.0, 0.0, 4.0, 0.01, "Brightness multiplier applied after the gamma curve; "
                           "1 leaves the image unchanged, results above 1 are clipped."),
    }


class CleanCutSaturation(_Filter):
    DISPLAY_NAME = "Colour Saturation"
    SEARCH_ALIASES = ("color saturation", "vibrance", "desaturate", "grayscale", "greyscale", "colorfulness")
    DESCRIPTION = "Colour saturation like PIL's ImageEnhance.Color: blends each pixel with its grey value."
    OP = staticmethod(adjust.saturation_core)
    WIDGETS = {
        "saturation": w.floating(1.0, 0.0, 3.0, 0.01, "0 = greyscale, 1 = unchanged, above 1 = more vivid "
                                 "colours (grey = ITU-R 601 luma, as PIL)."),
    }


class CleanCutCLAHE(_Filter):
    DISPLAY_NAME = "CLAHE (Local Contrast)"
    SEARCH_ALIASES = ("contrast", "histogram equalization", "histogram equalisation", "equalize", "adaptive contrast",
                      "detail enhance", "shadows")
    DESCRIPTION = ("Contrast Limited Adaptive Histogram Equalisation on lightness only (L of CIELAB), as "
                   "OpenCV's createCLAHE: brings out detail in dark and bright regions while keeping hue.")
    OP = staticmethod(clahe.clahe_core)
    WIDGETS = {
        "clip_limit": w.floating(2.0, 0.1, 40.0, 0.1, "OpenCV clip limit: how far a tile's histogram may "
                                 "exceed flat before it is clipped. Higher = stronger local contrast; "
                                 "1-4 is typical."),
        "tile_grid": w.integer(8, 1, 64, "Tiles per side (OpenCV tileGridSize = tile_grid x tile_grid). "
                               "More tiles = more local equalisation."),
    }


class CleanCutBilateral(_Filter):
    DISPLAY_NAME = "Bilateral Filter"
    SEARCH_ALIASES = ("denoise", "noise reduction", "smooth", "edge-preserving blur", "blur", "skin smoothing")
    DESCRIPTION = "Edge-preserving smoothing as OpenCV's bilateralFilter: removes noise, keeps edges sharp."
    OP = staticmethod(filters.bilateral_core)
    WIDGETS = {
        "diameter": w.integer(9, 1, 31, "Neighbourhood diameter in pixels (OpenCV d). Larger is slower "
                              "and smooths wider areas."),
        "sigma_color": w.floating(75.0, 0.0, 255.0, 1.0, "How different two colours may be (0-255 scale, "
                                  "summed over R, G, B) and still be averaged. Higher = flatter regions."),
        "sigma_space": w.floating(75.0, 0.0, 255.0, 1.0, "Spatial falloff in pixels: how strongly distant "
                                  "pixels inside the diameter count."),
    }


class CleanCutSharpen(_Filter):
    DISPLAY_NAME = "Sharpen (Unsharp Mask)"
    SEARCH_ALIASES = ("unsharp mask", "usm", "sharpness", "detail", "crisp", "enhance edges")
    DESCRIPTION = ("Unsharp-mask sharpening as scikit-image's unsharp_mask: adds back the detail a Gaussian "
                   "blur removes, scaled by amount.")
    OP = staticmethod(filters.unsharp_core)
    WIDGETS = {
        "radius": w.floating(2.0, 0.1, 50.0, 0.1, "Gaussian sigma in pixels: small sharpens fine detail, "
                             "large sharpens broader edges."),
        "amount": w.floating(1.0, 0.0, 10.0, 0.05, "Strength: 1.0 = 100 % (detail added once); 0 = off."),
        "threshold": w.integer(0, 0, 255, "Sharpen only where the detail exceeds this many 8-bit levels; "
                               "0 = everywhere. Raise it to leave smooth skin and sky alone."),
    }


class CleanCutPreprocess(Node):
    DISPLAY_NAME = "Preprocess (all-in-one)"
    SEARCH_ALIASES = ("preprocessing", "enhance", "photo enhance", "color correction", "denoise", "contrast",
                      "sharpen", "saturation", "gamma", "unraphael")
    DESCRIPTION = ("The unraphael app's preprocessing in one node, in this order: bilateral -> CLAHE -> saturation "
                   "-> sharpen -> gamma -> gain. Neutral values skip a step; the defaults return the input.")
    CATEGORY = CATEGORY
    RETURN_TYPES, RETURN_NAMES = ("IMAGE", "IMAGE"), ("image", "comparison")
    OUTPUT_TOOLTIPS = (IMAGE_OUT_TIP[0], "Original (left) and processed (right) side by side, captioned.")

    REQUIRED = {
        "image": IMAGE_IN,
        "bilateral_strength": w.floating(0.0, 0.0, 150.0, 1.0, "Step 1, noise smoothing that keeps edges: "
                                         "bilateral filter with diameter 9 and sigma_color = sigma_space = "
                                         "this value. 0 = off; 75 is OpenCV's example."),
        "saturation": w.floating(1.0, 0.0, 3.0, 0.01, "Step 3, colour saturation (PIL ImageEnhance.Color): "
                                 "0 = grey, 1 = unchanged (off), above 1 = more vivid."),
        "clip_limit": w.floating(0.0, 0.0, 40.0, 0.1, "Step 2, CLAHE clip limit on lightness (OpenCV "
                                 "meaning). 0 = CLAHE off; 2 is a common start."),
        "tile_grid": w.advanced(w.integer(8, 1, 64, "Step 2, CLAHE tiles per side (used when clip_limit > 0).")),
        "sharpness": w.floating(0.0, 0.0, 5.0, 0.05, "Step 4, the unraphael app's 'Sharpness Sigma': unsharp-mask "
                                "amount (1 = 100 %). 0 = off."),
        "gamma": w.floating(1.0, 0.1, 5.0, 0.01, "Step 5, gamma: out = in^(1/gamma). Above 1 brightens "
                            "mid-tones, 1 = off."),
        "gain": w.floating(1.0, 0.0, 4.0, 0.01, "Step 6, brightness multiplier after gamma; 1 = off."),
        "sharpen_radius": w.advanced(w.floating(2.0, 0.1, 50.0, 0.1, "Step 4, the unraphael app's 'Sharpening "
                                                "Radius': Gaussian sigma of the unsharp mask in pixels (used when "
                                                "sharpness > 0).")),
    }

    def run(self, image, **controls):
        check_image(image, "image")  # once: the chain's steps trust it
        self.check_widgets(controls)
        settings = pipeline.Settings(**controls)
        processed = runtime.map_batches(image, pipeline.preprocess_core, settings=settings)
        # both batches are known good (checked above, made by the chain): no second scan
        return (processed, compare.side_by_side_core(image, processed, "original | processed"))


class CleanCutCompare(Node):
    DISPLAY_NAME = "Compare Side by Side"
    SEARCH_ALIASES = ("before after", "before and after", "compare images", "split view", "comparison", "stack images",
                      "concatenate images")
    DESCRIPTION = ("Two image batches side by side (b resized to a's height), with an optional caption; "
                   "a batch of 1 pairs with every image of the other batch.")
    CATEGORY = CATEGORY
    RETURN_TYPES, RETURN_NAMES = ("IMAGE",), ("comparison",)
    OUTPUT_TOOLTIPS = ("image_a | image_b side by side; RGBA if either input has alpha.",)

    REQUIRED = {
        "image_a": w.image("Left images; they set the height of the result."),
        "image_b": w.image("Right images, resized to image_a's height keeping their aspect ratio."),
    }
    OPTIONAL = {
        "caption": ("STRING", {"default": "", "multiline": False, "tooltip": "Text drawn above; 'before | "
                               "after' puts one part over each side. Empty = no caption strip."}),
    }

    def run(self, image_a, image_b, caption=""):
        return (compare.side_by_side(image_a, image_b, caption or ""),)


NODES = [CleanCutGammaGain, CleanCutSaturation, CleanCutCLAHE, CleanCutBilateral, CleanCutSharpen,
         CleanCutPreprocess, CleanCutCompare]
