"""Background removal nodes: thin wrappers over batched ``utils`` functions."""

from __future__ import annotations

from ..utils import threshold as th
from . import widgets as w

CATEGORY = "CleanCut/background"


class CleanCutAlphaThreshold:
    DESCRIPTION = ("Drop-in replacement for WAS Node Suite's 'Image Remove Background (Alpha)': greyscale, "
                   "Pillow Gaussian blur, fixed threshold, alpha. Same widgets, same cut as WAS on every image "
                   "(bit-exact), but batched (GPU when available), with MASK outputs, and without WAS's bug "
                   "that cuts every second image of a batch with 255 - threshold in background mode.")
    CATEGORY, FUNCTION = CATEGORY, "run"
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

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": w.image("Images to cut out (batch of RGB or RGBA; an existing alpha is replaced)."),
                "mode": (list(th.MODES), {"default": "background", "tooltip": (
                    "WAS's modes. background: removes dark areas, keeps pixels whose blurred grey is above "
                    "threshold. foreground: removes light areas, keeps pixels darker than threshold.")}),
                "threshold": w.integer(127, 0, 255, "Cut level on the 8-bit grey scale (0-255), as in WAS. "
                                       "Higher keeps less in background mode and more in foreground mode."),
                "threshold_tolerance": w.integer(2, 1, 24, "Blur radius (Pillow GaussianBlur radius) applied "
                                                 "to the grey before the cut: larger gives smoother edges and "
                                                 "drops small specks. 1-24, as in WAS."),
            },
            "optional": {  # optional: WAS workflows and API prompts that lack it still run unchanged
                "legacy_alternating": ("BOOLEAN", {"default": False, "tooltip": (
                    "Off (recommended): every image is cut as WAS cuts a single image, RGB kept at full "
                    "precision. On: WAS's batch output byte for byte, bug included: in background mode the "
                    "2nd, 4th, 6th... image of a batch is cut at 255 - threshold; RGB truncated to 8 bits.")}),
            },
        }

    def run(self, images, mode="background", threshold=127, threshold_tolerance=2, legacy_alternating=False):
        # alpha_threshold_batches validates every input before any transfer to the GPU.
        return th.alpha_threshold_batches(images, mode, threshold, threshold_tolerance, legacy_alternating)


NODES = {
    "CleanCutAlphaThreshold": (CleanCutAlphaThreshold, "Remove Background (Alpha Threshold)"),
}
