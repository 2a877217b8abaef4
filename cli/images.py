"""Image inputs of ``cutout``: their output files (``<stem>_<role>.<ext>``, one set per frame) and writing a set.

Reading, naming and batching the inputs is :mod:`..utils.imageio`'s (``collect_inputs``, ``plan``, ``batches``);
this module adds what the command line writes for each frame of an image input.
"""

from __future__ import annotations

from pathlib import Path

from ..utils import imageio, saving
from .cut import settings_metadata


def target(out: Path, stem: str, role: str, fmt: str) -> Path:
    return out / f"{stem}_{role}{saving.FORMATS[fmt]}"  # the name saving.write_item gives the file


def targets(args, src: imageio.Source) -> list[Path]:
    """Every file ``src`` gets: a role per frame."""
    return [target(args.out, s, r, args.format) for s in src.item_stems for r in args.roles]


def clear(out: Path, stem: str, roles, fmt: str) -> None:
    """Remove the files about to be written again (write_item never replaces a file)."""
    for role in roles:
        path = target(out, stem, role, fmt)
        if path.is_file() or path.is_symlink():
            path.unlink()


def write_set(args, src: imageio.Source, k: int, tensors: dict, i: int) -> int:
    """Write frame ``k`` of ``src`` (item ``i`` of the batch's ``tensors``, by role) as its set of files, with the
    settings as metadata; the number of files written. Raises what ``saving.write_item`` raises."""
    stem = src.item_stems[k]
    meta = {"source": str(src.path), **({"frame": k + 1} if src.frames > 1 else {}), **settings_metadata(args)}
    clear(args.out, stem, args.roles, args.format)
    return len(saving.write_item(str(args.out), stem, tensors, i, args.format, {"cleancut": meta}))
