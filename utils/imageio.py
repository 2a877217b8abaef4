"""Reading image files for the command line: inputs, output names, decoding by content, pixel-budget batches.

* :func:`collect_inputs`: files, folders and globs -> paths, plus what failed (a path or pattern that finds
  nothing) and what was skipped (non-image names in folders, earlier CleanCut outputs).
* :func:`plan`: one :class:`Source` per path, with its frame count and an output stem that depends only on
  the set of inputs (see :func:`output_stems`).
* :func:`decode.read_frames`: decode by content (never by file name), EXIF orientation for every format,
  16-bit precision and alpha kept, every frame of an animated file.
* :func:`batches`: same-size frames stacked, at most ``batch_size`` images and ``max_pixels`` pixels each.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from .decode import quiet_pil, read_frames, read_image  # noqa: F401  (read_image re-exported)
from .video_read import EXTENSIONS as VIDEO_EXTENSIONS
from .video_read import tagged

log = logging.getLogger("cleancut")

# Read in folder scans (files named explicitly are decoded whatever their name: by content).
EXTENSIONS = (".png", ".apng", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MAX_PIXELS = 16_000_000  # per batch: ~16 MP, about 190 MB of float32 RGB before the nodes' own buffers
OUTPUT_KEY = "cleancut"  # the PNG text chunk (WebP: EXIF "cleancut:...") the command line writes


@dataclass
class Collected:
    """What :func:`collect_inputs` found: ``paths`` (resolved, unique, in order), ``failed`` lines for the
    arguments that found nothing, ``notes`` on what was skipped and why."""

    paths: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    """One input file: ``stem`` names its outputs; an animated file has ``frames`` > 1."""

    path: Path
    stem: str
    frames: int = 1

    @property
    def item_stems(self) -> list[str]:
        """The stem of each frame's outputs: ``<stem>``, or ``<stem>_f0001``, ``<stem>_f0002``, ..."""
        return [self.stem] if self.frames == 1 else [frame_stem(self.stem, k) for k in range(self.frames)]


def frame_stem(stem: str, k: int) -> str:
    return f"{stem}_f{k + 1:04d}"


def collect_inputs(patterns: Iterable[str]) -> Collected:
    """Files, folders (their image files, sorted) and globs -> unique paths, in the order given.

    A path that does not exist, a glob that matches no file and a folder without images are ``failed``.
    Folders and globs leave out earlier CleanCut outputs (their metadata says so), so an output folder
    can also be an input folder; a file named explicitly is always taken.
    """
    found, result = [], Collected()
    for pattern in patterns:
        p = Path(pattern)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            images = [f for f in files if f.suffix.lower() in EXTENSIONS + VIDEO_EXTENSIONS]  # (and videos)
            others = sorted({f.suffix.lower() or f.name for f in files} - set(EXTENSIONS + VIDEO_EXTENSIONS))
            if others:
                result.notes.append(f"{p}: {len(files) - len(images)} file(s) skipped, not image or video names "
                                    f"({', '.join(others)}); name them explicitly to read them anyway")
            kept = _drop_outputs(images, p, result.notes)
            if not kept:
                result.failed.append(f"{p}: no image or video files in this folder" if not images else
                                     f"{p}: holds only earlier CleanCut outputs")
            found += kept
        elif p.is_file():
            found.append(p)
        elif p.exists():
            result.failed.append(f"{p}: not a file or folder")
        else:
            matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True) if os.path.isfile(m))
            kept = _drop_outputs(matches, pattern, result.notes)
            if not matches:
                has_magic = glob.has_magic(pattern)
                result.failed.append(f"{pattern}: {'the pattern matches no file' if has_magic else 'no such file'}")
            elif not kept:
                result.failed.append(f"{pattern}: matches only earlier CleanCut outputs")
            found += kept
    result.paths = list(dict.fromkeys(f.resolve() for f in found))
    return result


def _drop_outputs(files: list[Path], where, notes: list[str]) -> list[Path]:
    kept = [f for f in files if not probe(f).cleancut_output]
    if len(kept) < len(files):
        notes.append(f"{where}: {len(files) - len(kept)} earlier CleanCut output(s) skipped, not processed again")
    return kept


@dataclass(frozen=True)
class Probe:
    """What a file's header says: PIL's format name (``None`` if PIL cannot open it), frames, and whether
    it is a CleanCut output."""

    format: str | None = None
    frames: int = 1
    cleancut_output: bool = False


def probe(path: Path) -> Probe:
    """Read only the header of ``path`` (cached per path, size and modification time)."""
    st = os.stat(path)
    return _probe(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=4096)
def _probe(path: str, size: int, mtime_ns: int) -> Probe:
    try:
        with quiet_pil(), Image.open(path) as im:
            return Probe(im.format, max(1, int(getattr(im, "n_frames", 1))), _is_output(im))
    except Exception:  # noqa: BLE001  PIL cannot read it: OpenCV decides when the file is read (or PyAV: a video)
        return Probe(cleancut_output=tagged(path, OUTPUT_KEY))  # a video the command line wrote


def _is_output(im: Image.Image) -> bool:
    if im.format == "PNG":
        return OUTPUT_KEY in im.info  # a text chunk before the pixels: read at open
    if im.format in ("WEBP", "JPEG") and "exif" in im.info:  # the contact sheet is a JPEG
        return any(isinstance(v, str) and v.startswith(OUTPUT_KEY + ":") for v in im.getexif().values())
    return False


NAMING = """\
output names: <stem>_<role>.<ext>, roles original, cutout (RGBA), extracted (RGBA), mask (255 = subject),
  the settings in a "cleancut" PNG text chunk. Names depend only on the set of inputs, never on their
  order: inputs that share a stem (in any case) keep their extension (cat.png -> cat_png_cutout.png,
  cat.jpg -> cat_jpg_cutout.png); if that is still ambiguous, the path from the inputs' common folder
  (sub/cat.png -> sub_cat_png_...), and as a last resort a short hash of the path. The frames of an
  animated GIF / WebP / PNG or a multi-page TIFF are <stem>_f0001_<role>, <stem>_f0002_<role>, ...
"""  # the rule of output_stems, as cleancut cutout --help states it


def output_stems(paths: Iterable[Path], frames: dict[Path, int] | None = None) -> dict[Path, str]:
    """An output stem per input, a function of the set of inputs only (never of their order).

    Each input is named after its file stem (``cat.png`` -> ``cat``). Inputs whose names would collide
    (case-insensitively, frame suffixes ``_f0001`` included) step up, together, to the next rule until
    none collide: the extension kept (``cat_png``), then the path from the inputs' common folder
    (``sub_cat_png``), then that path and a short hash of the full path.
    """
    paths = sorted(set(paths))
    frames = frames or {}
    if not paths:
        return {}
    try:
        root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    except ValueError:  # inputs on several drives (Windows): paths from each drive's root
        root = None
    level = dict.fromkeys(paths, 0)
    while True:
        owners: dict[str, set[Path]] = {}
        for p in paths:
            stem = _stem_at(p, level[p], root)
            n = frames.get(p, 1)
            for name in [stem] if n == 1 else [frame_stem(stem, k) for k in range(n)]:
                owners.setdefault(name.casefold(), set()).add(p)
        clashing = {p for group in owners.values() if len(group) > 1 for p in group if level[p] < 3}
        if not clashing:
            return {p: _stem_at(p, level[p], root) for p in paths}
        for p in clashing:
            level[p] += 1


def _stem_at(p: Path, level: int, root: Path | None) -> str:
    if level == 0:
        return p.stem
    if level == 1:
        return f"{p.stem}_{p.suffix[1:]}" if p.suffix else p.stem
    parts = p.with_suffix("").relative_to(root).parts if root else p.with_suffix("").parts[1:]
    rel = "_".join(parts) + (f"_{p.suffix[1:]}" if p.suffix else "")
    if level == 2:
        return rel
    return f"{rel}_{hashlib.md5(str(p).encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def plan(paths: list[Path]) -> list[Source]:
    """One :class:`Source` per path, in order, with its frame count and output stem."""
    frames = {p: probe(p).frames for p in paths}
    stems = output_stems(paths, frames)
    return [Source(p, stems[p], frames[p]) for p in paths]


@dataclass
class _Group:
    items: list[tuple[Source, int]] = field(default_factory=list)
    images: list[Tensor] = field(default_factory=list)

    @property
    def pixels(self) -> int:
        return sum(t.shape[1] * t.shape[2] for t in self.images)

    def without(self, source: Source) -> _Group:
        keep = [i for i, (s, _) in enumerate(self.items) if s is not source]
        return _Group([self.items[i] for i in keep], [self.images[i] for i in keep])


def batches(sources: list[Source], batch_size: int, max_pixels: int = MAX_PIXELS
            ) -> Iterator[tuple[list[tuple[Source, int]], Tensor | None, list[tuple[Source, str]]]]:
    """Read the frames of ``sources`` and yield ``(items, batch, errors)``; ``items`` are ``(source, frame)``.

    Frames of one (height, width, channels) are stacked in first-seen order, at most ``batch_size`` of
    them and at most ``max_pixels`` pixels (height x width, summed) per batch; a frame larger than the
    budget goes alone. Frames waiting for company of their size hold at most ``max_pixels`` in all (and
    ``4 * batch_size`` frames); past that the oldest group goes out early. A file that cannot be decoded
    comes back as ``([], None, [(source, reason)])``, and none of its frames are processed.
    """
    groups: dict[tuple, _Group] = {}
    for source in sources:
        try:
            for k, image in enumerate(read_frames(source.path)):
                yield from _add(groups, (source, k), image, batch_size, max_pixels)
        except (ValueError, OSError, MemoryError) as exc:
            for key in list(groups):  # none of a failed file's frames are processed
                groups[key] = groups[key].without(source)
                if not groups[key].items:
                    del groups[key]
            yield [], None, [(source, _reason(exc, source.path))]
    while groups:
        yield _pop(groups, next(iter(groups)))


def _add(groups: dict[tuple, _Group], item: tuple[Source, int], image: Tensor, batch_size: int, max_pixels: int):
    """Put one frame into its size's group; yield the batches that this makes full."""
    key, pixels = tuple(image.shape[1:]), image.shape[1] * image.shape[2]
    if key in groups and groups[key].pixels + pixels > max_pixels:
        yield _pop(groups, key)
    g = groups.setdefault(key, _Group())
    g.items.append(item)
    g.images.append(image)
    if len(g.items) >= batch_size:
        yield _pop(groups, key)
    while groups and (sum(g.pixels for g in groups.values()) > max_pixels
                      or sum(len(g.items) for g in groups.values()) > 4 * batch_size):
        yield _pop(groups, next(iter(groups)))  # many sizes: bound what waits in memory


def _pop(groups: dict[tuple, _Group], key: tuple) -> tuple[list[tuple[Source, int]], Tensor, list]:
    g = groups.pop(key)
    return g.items, (g.images[0] if len(g.images) == 1 else torch.cat(g.images)), []  # one frame: no copy


def _reason(exc: BaseException, path: Path) -> str:
    if isinstance(exc, MemoryError):
        return f"{path}: out of memory while decoding; lower --max-pixels or free memory."
    text = str(exc)
    return text if str(path) in text else f"{path}: {text}"
