"""``cleancut demo``: the whole chain on scikit-image's sample photos, and a contact sheet to judge it by."""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from PIL import Image

from ..utils import imageio, saving
from ..utils.bridges import pil2tensor, tensor2np
from ..utils.compare import caption_strip
from .cut import call, check_model, cut_out, settings_metadata
from .images import clear
from .options import EXIT_OK

SAMPLES = ("astronaut", "chelsea", "coffee", "rocket")
CONTACT_SHEET = "contact_sheet.jpg"


def sample_batch(size: int = 512):
    """The scikit-image sample photos, resized to ``size`` square, as one IMAGE batch."""
    from skimage import data  # only the demo needs the sample photos

    images = [Image.fromarray(np.asarray(getattr(data, n)())).convert("RGB").resize((size, size), Image.LANCZOS)
              for n in SAMPLES]
    return pil2tensor(images)


def demo_command(args) -> int:
    """The whole chain on the sample photos: download set per photo plus a contact sheet."""
    if args.method == "rembg":
        check_model(args.options)
    batch = sample_batch(args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    items = cut_out(batch, args)
    saved = {r: t for r, t in items.items() if r in args.roles}
    written, meta = 0, settings_metadata(args)
    for i, name in enumerate(SAMPLES):
        clear(args.out, name, args.roles, args.format)  # the demo replaces its own files
        written += len(saving.write_item(str(args.out), name, saved, i, args.format,
                                         {"cleancut": {"source": f"skimage.data.{name}", **meta}}))
    write_contact_sheet(args.out / CONTACT_SHEET, batch, items, meta)
    sys.stdout.write(f"cleancut demo: {len(SAMPLES)} sample photos, {written + 1} files in {args.out} "
                     f"({CONTACT_SHEET} shows original | preprocessed | cut-out on a checkerboard)\n")
    return EXIT_OK


def checkerboard(height: int, width: int, square: int = 16) -> torch.Tensor:
    """``[height, width, 1]`` light and mid grey squares: what image editors show behind transparency."""
    y, x = torch.arange(height).view(-1, 1) // square, torch.arange(width).view(1, -1) // square
    return torch.where((y + x) % 2 == 0, 0.8, 0.6).unsqueeze(-1)


def write_contact_sheet(path, batch: torch.Tensor, items: dict, meta: dict) -> None:
    """One row per photo: original | preprocessed | cut-out (on a checkerboard, so edges can be judged),
    each column captioned; a JPEG that later folder scans recognise as ours (EXIF) and skip."""
    cut = items["cutout"]
    if cut.shape[-1] == 4:  # composite over the checkerboard: transparency visible, edges judged
        a = cut[..., 3:]
        cut = cut[..., :3] * a + checkerboard(*cut.shape[1:3]) * (1 - a)
    pair = call("CleanCutCompare", image_a=batch, image_b=items["processed"])["comparison"]
    rows = call("CleanCutCompare", image_a=pair, image_b=cut)["comparison"]  # [B, H, 3W', 3]
    width = batch.shape[2]
    strip = caption_strip("original | preprocessed | cut-out", [width, width, rows.shape[2] - 2 * width], 3)
    page = np.concatenate([strip, *tensor2np(rows)], axis=0)
    image = Image.fromarray(page, "RGB")
    exif = image.getexif()
    exif[0x010E] = f"{imageio.OUTPUT_KEY}:{json.dumps({'source': 'contact sheet', **meta})}"  # ImageDescription
    image.save(path, quality=88, exif=exif)
