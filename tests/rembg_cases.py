"""Shared by the rembg tests: the node called with its defaults, and the modules under test."""

from __future__ import annotations

from conftest import PACK

rb = PACK.utils.rembg
sessions, models, download = rb.sessions, rb.models, rb.download
NODE = PACK.NODE_CLASS_MAPPINGS["CleanCutRembg"]
DEFAULTS = dict(model="u2netp", alpha_matting=False, alpha_matting_foreground_threshold=240,
                alpha_matting_background_threshold=10, alpha_matting_erode_size=10, only_mask=False,
                post_process_mask=False, background="transparent")


def run(images, **options):
    """The node, with rembg's defaults overridden by ``options``."""
    return NODE().run(images, **{**DEFAULTS, **options})
