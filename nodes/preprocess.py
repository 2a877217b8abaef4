"""Preprocessing nodes: one per filter, each a thin wrapper over a batched ``utils`` function."""

from __future__ import annotations

from ..utils import adjust, compose, runtime
from ..utils.checks import check_image
from . import widgets as w

CATEGORY = "CleanCut/preprocess"
IMAGE_IN = w.image("Images to process (batch of RGB or RGBA; alpha is passed through untouched)."
                   + w.IMAGE_CLAMP_NOTE)
IMAGE_OUT_TIP = ("Processed images: same count, order, size and device as the input.",)


class _Filter:
    """Shared declaration of a one-IMAGE-in, one-IMAGE-out filter node."""

    CATEGORY, FUNCTION = CATEGORY, "run"
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = ("IMAGE",), ("image",), IMAGE_OUT_TIP


class CleanCutGammaGain(_Filter):
    DESCRIPTION = "Gamma curve, then gain, on every image of the batch: out = gain * in^(1/gamma), clamped to 0..1."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": IMAGE_IN,
            "gamma": w.floating(1.0, 0.1, 5.0, 0.01, "Above 1 brightens mid-tones, below 1 darkens them; "
                                "1 leaves the image unchanged. Black and white stay put."),
            "gain": w.floating(1.0, 0.0, 4.0, 0.01, "Brightness multiplier applied after the gamma curve; "
                               "1 leaves the image unchanged, results above 1 are clipped."),
        }}

    def run(self, image, gamma, gain):
        check_image(image, "image")
        w.check_inputs(self, locals())
        return (runtime.map_batches(image, adjust.gamma_gain, gamma=gamma, gain=gain),)


class CleanCutSaturation(_Filter):
    DESCRIPTION = "Colour saturation like PIL's ImageEnhance.Color: blends each pixel with its grey value."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": IMAGE_IN,
            "saturation": w.floating(1.0, 0.0, 3.0, 0.01, "0 = greyscale, 1 = unchanged, above 1 = more vivid "
                                     "colours (grey = ITU-R 601 luma, as PIL)."),
        }}

    def run(self, image, saturation):
        check_image(image, "image")
        w.check_inputs(self, locals())
        return (runtime.map_batches(image, adjust.saturation, saturation=saturation),)


class CleanCutCompare:
    DESCRIPTION = ("Two image batches side by side (b resized to a's height), with an optional caption; "
                   "a batch of 1 pairs with every image of the other batch.")
    CATEGORY, FUNCTION = CATEGORY, "run"
    RETURN_TYPES, RETURN_NAMES = ("IMAGE",), ("comparison",)
    OUTPUT_TOOLTIPS = ("image_a | image_b side by side; RGBA if either input has alpha.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image_a": w.image("Left images; they set the height of the result."),
            "image_b": w.image("Right images, resized to image_a's height keeping their aspect ratio."),
        }, "optional": {
            "caption": ("STRING", {"default": "", "multiline": False, "tooltip": "Text drawn above; 'before | "
                                   "after' puts one part over each side. Empty = no caption strip."}),
        }}

    def run(self, image_a, image_b, caption=""):
        return (compose.side_by_side(image_a, image_b, caption or ""),)


NODES = {
    "CleanCutGammaGain": (CleanCutGammaGain, "Gamma / Gain"),
    "CleanCutSaturation": (CleanCutSaturation, "Colour Saturation"),
    "CleanCutCompare": (CleanCutCompare, "Compare Side by Side"),
}
