"""Command line: ``cleancut demo`` runs the pack on built-in sample photos, outside ComfyUI."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

SAMPLES = ("astronaut", "chelsea", "coffee", "rocket")


def sample_batch(size: int = 512):
    """The scikit-image sample photos, resized to ``size`` square, as one IMAGE batch."""
    import numpy as np
    from PIL import Image
    from skimage import data

    from .utils.bridges import pil2tensor

    images = []
    for name in SAMPLES:
        arr = getattr(data, name)()
        images.append(Image.fromarray(np.asarray(arr)).convert("RGB").resize((size, size), Image.LANCZOS))
    return pil2tensor(images)


def demo(out: Path, size: int) -> int:
    from .utils import adjust
    from .utils.bridges import tensor2pil

    out.mkdir(parents=True, exist_ok=True)
    batch = sample_batch(size)
    processed = adjust.saturation(adjust.gamma_gain(batch, gamma=1.2, gain=1.0), saturation=1.3)
    for name, before, after in zip(SAMPLES, tensor2pil(batch), tensor2pil(processed), strict=True):
        before.save(out / f"{name}_original.png")
        after.save(out / f"{name}_processed.png")
    logging.getLogger("cleancut").info("wrote %d images to %s", 2 * len(SAMPLES), out)
    sys.stdout.write(f"cleancut demo: {len(SAMPLES)} sample photos processed, results in {out}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cleancut", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run the whole chain on built-in sample photos")
    p_demo.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for the results")
    p_demo.add_argument("--size", type=int, default=512, help="side of the square sample images")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "demo":
        return demo(args.out, args.size)
    return 2


if __name__ == "__main__":
    sys.exit(main())
