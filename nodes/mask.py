"""Mask nodes: Refine Mask (grow, holes, islands, smooth, feather, levels, temporal) and Composite on Background."""

from __future__ import annotations

from ..utils import composite as cp
from ..utils import masks as mk
from . import widgets as w
from .base import Node

CATEGORY = "CleanCut/mask"


class CleanCutMask(Node):
    DISPLAY_NAME = "Refine Mask"
    SEARCH_ALIASES = ("grow mask", "shrink mask", "dilate", "erode", "expand mask", "feather", "fill holes",
                      "remove islands", "smooth mask", "blur mask", "invert mask", "mask levels", "temporal",
                      "flicker", "matte cleanup")
    DESCRIPTION = ("Fixes masks for a whole batch in one node, in this order: fill holes, remove islands, grow or "
                   "shrink (round), smooth, feather the edge, levels, smooth across video frames, invert. Every "
                   "step is off at its default. GPU when available.")
    CATEGORY = CATEGORY
    RETURN_TYPES, RETURN_NAMES = ("MASK",), ("mask",)
    OUTPUT_TOOLTIPS = ("The refined masks, 1 = subject: same count, order and size as the input.",)

    REQUIRED = {
        "mask": ("MASK", {"tooltip": (
            "Masks to refine, 1 = subject (Remove Background's mask). For an RGBA image's alpha use ComfyUI's "
            "Convert Image to Mask with channel 'alpha'; Load Image's mask is the opposite (1 = transparent): "
            "invert it first, or turn on invert and read the result the same way.")}),
        "grow": w.integer(0, -mk.MAX_GROW, mk.MAX_GROW, (
            "Pixels to grow the mask by (negative shrinks it), with a round brush: OpenCV's elliptical kernel, "
            "exactly. Soft edges move outwards (inwards) keeping their softness. A hard (0/1) mask takes the same "
            "time at any size.")),
        "fill_holes": ("BOOLEAN", {"default": False, "tooltip": (
            "Fill every hole: background enclosed by the subject (mask below 0.5) becomes subject (1).")}),
        "remove_islands": w.integer(0, 0, mk.MAX_ISLAND, (
            "Drop pieces of the subject smaller than this many pixels (specks set to 0); with fill_holes off, "
            "also fill holes smaller than this. 0 = off. Pieces are found on the mask thresholded at 0.5."),
            step=10),
        "smooth": w.floating(0.0, 0.0, mk.MAX_SMOOTH, 0.5, (
            "Gaussian blur of the mask, sigma in pixels: rounds jagged outlines and softens the edge. 0 = off. "
            "Follow with white/black point to harden the edge again.")),
        "feather": w.integer(0, 0, mk.MAX_FEATHER, (
            "Width in pixels of a linear fade across the mask's edge (not the image border). 0 = off. Replaces "
            "the edge's own softness with the ramp (see feather_mode).")),
        "feather_mode": w.advanced((list(mk.FEATHER_MODES), {"default": "both", "tooltip": (
            "Where the feather ramp lies. both: centred on the edge. inside: fades to 0 at the edge, within the "
            "subject (the subject looks smaller). outside: fades from 1 at the edge into the background (larger).")})),
        "black_point": w.advanced(w.floating(0.0, 0.0, 1.0, 0.01, (
            "Levels: mask values at or below this become 0. Higher cuts away faint, semi-transparent parts."))),
        "white_point": w.advanced(w.floating(1.0, 0.0, 1.0, 0.01, (
            "Levels: mask values at or above this become 1 (must be above black_point). Lower makes soft parts "
            "solid."))),
        "invert": ("BOOLEAN", {"default": False, "tooltip": (
            "Output 1 - mask (1 = background), the last step. For Load Image's / Join Image with Alpha's polarity.")}),
        "temporal": w.floating(0.0, 0.0, mk.MAX_TEMPORAL, 0.05, (
            "For a batch of video frames: smooth each frame's mask with its neighbours' to cut flicker (0 = off; "
            "higher = steadier, but moving edges trail more). Exponential smoothing forwards then backwards "
            "across the batch, so a still edge does not lag. Keep the frames in order in one batch.")),
    }

    def run(self, mask, grow=0, fill_holes=False, remove_islands=0, smooth=0.0, feather=0, feather_mode="both",
            black_point=0.0, white_point=1.0, invert=False, temporal=0.0):
        options = mk.MaskOptions(grow=grow, fill_holes=fill_holes, remove_islands=remove_islands, smooth=smooth,
                                 feather=feather, feather_mode=feather_mode, black_point=black_point,
                                 white_point=white_point, invert=invert, temporal=temporal)
        self.check_widgets(vars(options))
        return (mk.refine_mask(mask, options),)


class CleanCutComposite(Node):
    DISPLAY_NAME = "Composite on Background"
    SEARCH_ALIASES = ("replace background", "change background", "new background", "green screen",
                      "background color", "blur background", "paste", "alpha blend", "composite", "overlay")
    DESCRIPTION = ("Places cut-outs on a new background in one step: a colour, an image (fitted cover / contain / "
                   "stretch), the photo itself blurred (the portrait look), or transparent. Straight alpha, blended "
                   "once, optionally in linear light. Connect Refine Edges' foreground and mask for clean edges.")
    CATEGORY = CATEGORY
    RETURN_TYPES, RETURN_NAMES = ("IMAGE",), ("image",)
    OUTPUT_TOOLTIPS = ("The composites: RGB on an opaque background; RGBA (straight alpha) on a transparent or "
                       "translucent one. Same count and order as the largest input batch, the foreground's size.",)

    REQUIRED = {
        "foreground": w.image(
            "The subject's colours: an RGBA cut-out (Remove Background, Refine Edges' image), or RGB with a mask "
            "(Refine Edges' foreground: decontaminated colours)." + w.IMAGE_CLAMP_NOTE),
        "background": (list(cp.MODES), {"default": "color", "tooltip": (
            "color: the color below. image: background_image, fitted to the foreground. blurred original: the "
            "foreground's own photo blurred by blur (keeps the scene, softens it). transparent: RGBA out, alpha = "
            "the mask.")}),
        "color": ("STRING", {"default": "#FFFFFF", "tooltip": (
            "Background colour as '#RRGGBB', or '#RRGGBBAA' for a translucent one (then the output is RGBA), e.g. "
            "#FFFFFF white, #00FF00 green screen. Also the letterbox colour of fit 'contain'.")}),
        "fit": (list(cp.FITS), {"default": "cover", "tooltip": (
            "How background_image is fitted to the foreground's size. cover: scaled to fill, edges cropped "
            "(centred). contain: scaled to fit whole, centred on color. stretch: resized to the size exactly.")}),
        "blur": w.floating(20.0, 0.0, cp.MAX_BLUR, 0.5, (
            "blurred original: Gaussian blur sigma in pixels; higher = softer background. 0 = the photo unblurred.")),
        "linear_light": w.advanced(("BOOLEAN", {"default": False, "tooltip": (
            "Blend the soft edges in linear light (sRGB decoded, blended, encoded): brighter, more natural hair "
            "and fur edges between contrasting colours. Off: blend the sRGB values, as most editors do.")})),
    }
    OPTIONAL = {
        "mask": ("MASK", {"tooltip": (
            "Alpha of the foreground, 1 = subject (Remove Background's or Refine Mask's mask). Replaces an RGBA "
            "foreground's own alpha; needed when the foreground is RGB. One mask is used for every image.")}),
        "background_image": w.image("For background 'image': the new background, any size (fitted by fit). One "
                                    "image is used for every foreground."),
    }

    def run(self, foreground, background="color", color="#FFFFFF", fit="cover", blur=20.0, linear_light=False,
            mask=None, background_image=None):
        options = cp.CompositeOptions(background=background, color=color, fit=fit, blur=blur,
                                      linear_light=linear_light)
        self.check_widgets(vars(options))
        return (cp.composite(foreground, options, mask, background_image),)


NODES = [CleanCutMask, CleanCutComposite]
