"""Command line, outside ComfyUI: ``cleancut demo | cutout | models``.

The commands drive the same node classes ComfyUI runs, so a CLI result equals a graph's result.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from . import NODE_CLASS_MAPPINGS
from .utils import imageio, saving
from .utils import rembg as rb
from .utils.bridges import pil2tensor, tensor2pil
from .utils.rembg import models

log = logging.getLogger("cleancut")
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket")
PREPROCESS = ("bilateral_strength", "saturation", "clip_limit", "tile_grid", "sharpness", "gamma", "gain",
              "sharpen_radius")


def call(node_id: str, **inputs) -> dict:
    """Run a node with ``inputs``; its outputs by ``RETURN_NAMES``."""
    cls = NODE_CLASS_MAPPINGS[node_id]
    out = getattr(cls(), cls.FUNCTION)(**inputs)
    return dict(zip(cls.RETURN_NAMES, out, strict=True))


def widget_default(node_id: str, name: str):
    spec = NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["required"][name]
    return spec[1].get("default", spec[0][0] if isinstance(spec[0], list) else None)


def sample_batch(size: int = 512):
    """The scikit-image sample photos, resized to ``size`` square, as one IMAGE batch."""
    from skimage import data  # only the demo needs the sample photos

    images = [Image.fromarray(np.asarray(getattr(data, n)())).convert("RGB").resize((size, size), Image.LANCZOS)
              for n in SAMPLES]
    return pil2tensor(images)


def cut_out(batch, args) -> dict:
    """Preprocess (if asked), then remove the background of one IMAGE batch; tensors by save role
    (plus ``processed``, which is not saved)."""
    processed = batch
    settings = {k: getattr(args, k) for k in PREPROCESS}
    if any(settings[k] != widget_default("CleanCutPreprocess", k) for k in PREPROCESS):
        processed = call("CleanCutPreprocess", image=batch, **settings)["image"]
    if args.method == "threshold":
        out = call("CleanCutAlphaThreshold", images=processed, mode=args.mode, threshold=args.threshold,
                   threshold_tolerance=args.tolerance)
        return {"original": batch, "processed": processed, "cutout": out["images"], "extracted": out["images"],
                "mask": out["mask"]}
    out = call("CleanCutRembg", images=processed, model=args.model, alpha_matting=args.alpha_matting,
               alpha_matting_foreground_threshold=args.foreground_threshold,
               alpha_matting_background_threshold=args.background_threshold,
               alpha_matting_erode_size=args.erode_size, only_mask=args.only_mask,
               post_process_mask=args.post_process_mask, background=args.background, original=batch,
               edges=args.edges)
    return {"original": batch, "processed": processed, "cutout": out["image"], "extracted": out["extracted"],
            "mask": out["mask"]}


class StopAfterBatch:
    """First Ctrl-C: finish the current batch, then stop. Second Ctrl-C: stop at once."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, *_):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        sys.stderr.write("\nstopping after the current batch (Ctrl-C again to stop now)\n")


def cutout_command(args) -> int:
    from tqdm import tqdm

    paths = imageio.collect_inputs(args.inputs)
    if not paths:
        sys.stderr.write("cleancut cutout: no input files found\n")
        return 2
    roles = [r.strip() for r in args.save.split(",") if r.strip()]
    bad = set(roles) - set(saving.ROLES)
    if bad:
        sys.stderr.write(f"--save: unknown {sorted(bad)}; choose from {', '.join(saving.ROLES)}\n")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("inputs", "out", "command", "quiet")}
    stop, failed, written, stems = StopAfterBatch(), [], 0, set()
    with tqdm(total=len(paths), unit="img", disable=args.quiet) as bar:
        for group, batch, errors in imageio.batches(paths, args.batch_size):
            if errors:
                failed += errors
            else:
                try:
                    items = {r: t for r, t in cut_out(batch, args).items() if r in roles}
                    for i, path in enumerate(group):
                        stem = unique_stem(path.stem, stems)
                        meta = {"cleancut": {"source": str(path), **settings}}
                        written += len(saving.write_item(str(args.out), stem, items, i, args.format, meta))
                except (ValueError, RuntimeError) as exc:
                    failed += [f"{p}: {exc}" for p in group]
            bar.update(len(group))
            if stop.requested:
                break
    for line in failed:
        sys.stderr.write(f"failed: {line}\n")
    sys.stdout.write(f"cleancut cutout: {written} files written to {args.out}, {len(failed)} inputs failed"
                     f"{', interrupted' if stop.requested else ''}\n")
    return 130 if stop.requested else (1 if failed else 0)


def unique_stem(stem: str, taken: set) -> str:
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}"
    taken.add(candidate)
    return candidate


def demo_command(args) -> int:
    """The whole chain on the sample photos: download set per photo plus a contact sheet."""
    batch = sample_batch(args.size)
    if args.method == "rembg":
        models.ensure(args.model)  # a fresh machine has no model yet: fetch it, md5-verified
    args.out.mkdir(parents=True, exist_ok=True)
    items = cut_out(batch, args)
    written = 0
    for i, name in enumerate(SAMPLES):
        written += len(saving.write_item(str(args.out), name, items, i, args.format))
    sheet = call("CleanCutCompare", image_a=batch, image_b=items["processed"], caption="original | preprocessed")
    rows = call("CleanCutCompare", image_a=sheet["comparison"], image_b=items["cutout"], caption="")
    contact = tensor2pil(rows["comparison"])
    w, h = contact[0].size
    page = Image.new("RGBA", (w, h * len(contact)), (255, 255, 255, 255))
    for i, im in enumerate(contact):
        page.alpha_composite(im.convert("RGBA"), (0, i * h))
    page.save(args.out / "contact_sheet.png")
    sys.stdout.write(f"cleancut demo: {len(SAMPLES)} sample photos, {written + 1} files in {args.out} "
                     f"(contact_sheet.png shows original | preprocessed | cut-out)\n")
    return 0


def models_command(args) -> int:
    if args.action == "list":
        for row in models.status_rows():
            sys.stdout.write(row + "\n")
        return 0
    path = models.fetch(args.name)
    sys.stdout.write(f"{args.name}: verified, at {path}\n")
    return 0


def add_cutout_options(p: argparse.ArgumentParser, out: Path | None = None) -> None:
    p.add_argument("--out", type=Path, required=out is None, default=out, help="output folder")
    p.add_argument("--method", choices=["rembg", "threshold"], default="rembg")
    p.add_argument("--model", default="u2netp", help="rembg model (see: cleancut models list)")
    p.add_argument("--alpha-matting", action="store_true", help="refine edges with closed-form matting")
    p.add_argument("--foreground-threshold", type=int, default=240, help="matting: mask above = sure subject")
    p.add_argument("--background-threshold", type=int, default=10, help="matting: mask below = sure background")
    p.add_argument("--erode-size", type=int, default=10, help="matting: erosion of the sure regions, pixels")
    p.add_argument("--only-mask", action="store_true", help="the cut-out is the mask as an image")
    p.add_argument("--post-process-mask", action="store_true", help="smooth the mask (rembg's post-process)")
    p.add_argument("--background", choices=list(rb.BACKGROUNDS), default="transparent")
    p.add_argument("--edges", choices=rb.EDGES, default="rembg",
                   help="soft-edge colours: rembg's (photo x mask) or the photo's own under straight alpha")
    p.add_argument("--mode", choices=["background", "foreground"], default="background",
                   help="threshold method: which side of the threshold is removed")
    p.add_argument("--threshold", type=int, default=127, help="threshold method: grey level 0-255")
    p.add_argument("--tolerance", type=int, default=2, help="threshold method: blur radius 1-24")
    p.add_argument("--save", default="original,cutout,extracted,mask", help="roles to write, comma-separated")
    p.add_argument("--format", choices=["png", "webp (lossless)"], default="png")
    p.add_argument("--batch-size", type=int, default=8, help="same-size images processed together")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("preprocessing (the all-in-one node; defaults = off)")
    for name in PREPROCESS:
        kind = int if name == "tile_grid" else float
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind,
                       default=widget_default("CleanCutPreprocess", name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cleancut", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run the whole chain on built-in sample photos")
    add_cutout_options(p_demo, out=Path("demo_out"))
    p_demo.set_defaults(clip_limit=2.0, saturation=1.2, sharpness=0.5)
    p_demo.add_argument("--size", type=int, default=512, help="side of the square sample images")
    p_cut = sub.add_parser("cutout", help="remove backgrounds of files, folders or globs")
    p_cut.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    add_cutout_options(p_cut)
    p_models = sub.add_parser("models", help="list or fetch rembg models")
    p_models.add_argument("action", choices=["list", "fetch"])
    p_models.add_argument("name", nargs="?", default="u2netp")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "demo":
            return demo_command(args)
        if args.command == "cutout":
            return cutout_command(args)
        return models_command(args)
    except (ValueError, RuntimeError) as exc:
        sys.stderr.write(f"cleancut {args.command}: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
