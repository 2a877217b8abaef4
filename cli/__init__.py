"""Command line, outside ComfyUI: ``cleancut demo | cutout | models``.

The commands drive the same node classes ComfyUI runs, so a CLI result equals a graph's result. Every
choice, default and range comes from the library (``pipeline.Settings``, ``RembgOptions``,
``ThresholdOptions``, ``saving``) and the nodes' declarations; the CLI adds only its own flags' names.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import NODE_CLASS_MAPPINGS
from ..utils import imageio, pipeline, runtime, saving
from ..utils import rembg as rb
from ..utils.bridges import pil2tensor, tensor2np
from ..utils.compare import caption_strip
from ..utils.rembg import models
from .options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    METHODS,
    PREPROCESS,
    REFINE_NODE,
    REMBG_FLAGS,
    THRESHOLD_FLAGS,
    UsageError,
    build_parser,
    resolve,
)
from .stopping import INTERRUPTED, STALE_TEMP_S, StopAfterBatch, ctrl_c_ignored_after, disk_full, file_id, say

log = logging.getLogger("cleancut")
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket")
def call(node_id: str, **inputs) -> dict:
    """Run a node with ``inputs``; its outputs by ``RETURN_NAMES``. Library prints stay off stdout (the summary's):
    pymatting's "PERFORMANCE WARNING" (ichol retried with a larger shift: slower, not wrong) is dropped."""
    cls = NODE_CLASS_MAPPINGS[node_id]
    with contextlib.redirect_stdout(io.StringIO()) as printed:  # pymatting prints from worker threads
        out = getattr(cls(), cls.FUNCTION)(**inputs)
    text = printed.getvalue()
    if "PERFORMANCE WARNING" in text:
        log.debug("pymatting: %s", text.strip())
    elif text.strip():
        log.info("%s", text.rstrip())
    return dict(zip(cls.RETURN_NAMES, out, strict=True))


def sample_batch(size: int = 512):
    """The scikit-image sample photos, resized to ``size`` square, as one IMAGE batch."""
    from skimage import data  # only the demo needs the sample photos

    images = [Image.fromarray(np.asarray(getattr(data, n)())).convert("RGB").resize((size, size), Image.LANCZOS)
              for n in SAMPLES]
    return pil2tensor(images)


def cut_out(batch, args, on_progress=None) -> dict:
    """Preprocess (if asked), then remove the background of one IMAGE batch; tensors by save role
    (plus ``processed``, which is not saved). ``on_progress(fraction)`` hears the cut-out's progress."""
    processed = batch
    if args.settings != pipeline.Settings():  # neutral settings: the node would return a copy
        processed = call("CleanCutPreprocess", image=batch, **dataclasses.asdict(args.settings))["image"]
    extra = {"original": batch} if args.method == "rembg" else {}  # extracted: the pixels before preprocessing
    listen = runtime.progress_listener(lambda done, total: on_progress(done / total)) if on_progress else \
        contextlib.nullcontext()
    with listen:  # the cut-out is the slow part: the bar follows it image by image
        out = call(METHODS[args.method], images=processed, **dataclasses.asdict(args.options), **extra)
    cut, extracted = (out["image"], out["extracted"]) if args.method == "rembg" else (out["images"], out["images"])
    mask = out["mask"]
    if args.refine_options is not None:  # Refine Edges on the image the mask was made from
        del out, cut  # its cut-out is replaced: freed before Refine Edges makes its own (768 MB at 48 MP)
        refined = call(REFINE_NODE, image=processed, mask=mask, **dataclasses.asdict(args.refine_options))
        cut, mask = refined["image"], refined["mask"]
        colour = rb.BACKGROUNDS.get(getattr(args.options, "background", "transparent"))
        if colour is not None:  # the rembg method's white / black background, composited once, in place
            cut = rb.cutout.apply_background(refined["foreground"], mask.unsqueeze(-1), colour)  # (not saved)
    return {"original": batch, "processed": processed, "cutout": cut, "extracted": extracted, "mask": mask}


def settings_metadata(args) -> dict:
    """What a run's files record about how they were made (the options that applied)."""
    flags = REMBG_FLAGS if args.method == "rembg" else THRESHOLD_FLAGS
    refine = {"refine": args.refine, "band_width": args.band_width,  # Refine Edges' decontaminate, either method
              "decontaminate": args.decontaminate} if args.refine else {}
    return {"method": args.method, **{k: getattr(args, k) for k in (*flags, *PREPROCESS)}, **refine}


def count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_model(options) -> None:
    """The verified model file, before anything is read: the default one is fetched if missing; for any other (a
    ``*_custom`` model's ``model_file`` included) the RuntimeError of ``models.resolve`` says where to put it."""
    if options.model == rb.RembgOptions().model and not options.model_file:
        models.ensure(options.model)  # a fresh machine has no model yet: fetch it, checksum-verified
    else:
        models.resolve(options.model, options.model_file)


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


def gather(args) -> tuple[imageio.Collected, list[imageio.Source], list[str], int]:
    """The inputs: what was found, what is left to do, what failed, and how many are skipped as done."""
    found = imageio.collect_inputs(args.inputs)
    for note in found.notes:
        say(f"note: {note}")
    if not found.paths:
        for line in found.failed:
            say(f"failed: {line}")
        raise UsageError("no input files found")
    todo, failed, skipped, inputs = [], list(found.failed), 0, set(found.paths)
    for src in imageio.plan(found.paths):
        paths = targets(args, src)
        clash = next((t for t in paths if t.resolve() in inputs), None)
        if clash is not None:
            failed.append(f"{src.path}: its output {clash.name} would replace an input file; write to another --out")
        elif not args.overwrite and all(t.is_file() for t in paths):  # the skip rule
            skipped += 1
        else:
            todo.append(src)
    return found, todo, failed, skipped


def on_disk(args, todo: list[imageio.Source]) -> dict[Path, tuple[int, int]]:
    """The output files of ``todo`` that exist before the run (an incomplete set, or --overwrite)."""
    found = {p: file_id(p) for src in todo for p in targets(args, src)}
    return {p: i for p, i in found.items() if i is not None}


@dataclasses.dataclass
class Run:
    """The progress of ``cutout``: frames still to write per input, failures, files written, and why the run
    stopped before its end (``stopped``: the summary's "<why>: N inputs not processed")."""

    args: argparse.Namespace
    left: dict[Path, int]
    failed: list[str]
    done: int = 0
    written: int = 0
    reasons: dict[Path, str] = dataclasses.field(default_factory=dict)  # per input: why it failed
    files: dict[Path, int] = dataclasses.field(default_factory=dict)  # per input: files written
    stopped: str = ""

    def give_up(self, src: imageio.Source, reason: str) -> None:
        if self.left.pop(src.path, None) is not None:
            self.failed.append(reason)
            self.reasons[src.path] = reason

    def take(self, items, batch, errors, on_progress=None) -> None:
        """One result of ``imageio.batches``: cut out, then write every frame whose input has not failed."""
        for src, reason in errors:
            self.give_up(src, reason)
        if batch is None:
            return
        try:
            tensors = {r: t for r, t in cut_out(batch, self.args, on_progress).items() if r in self.args.roles}
        except (ValueError, RuntimeError, OSError, MemoryError) as exc:
            for src, _ in items:
                self.give_up(src, f"{src.path}: {str(exc) or type(exc).__name__}")
            return
        for i, (src, k) in enumerate(items):
            if src.path in self.left and not self.stopped:  # a full disk: the rest is not processed
                self.write(src, k, tensors, i)

    def write(self, src: imageio.Source, k: int, tensors: dict, i: int) -> None:
        args, stem = self.args, src.item_stems[k]
        meta = {"source": str(src.path), **({"frame": k + 1} if src.frames > 1 else {}), **settings_metadata(args)}
        try:
            clear(args.out, stem, args.roles, args.format)
            n = len(saving.write_item(str(args.out), stem, tensors, i, args.format, {"cleancut": meta}))
            self.written += n
            self.files[src.path] = self.files.get(src.path, 0) + n
        except (ValueError, OSError) as exc:
            self.give_up(src, f"{src.path}: {exc}")
            full = disk_full(exc)
            if full is not None:  # every later write would fail the same way, after decoding and cutting out
                self.stopped = f"stopped ({full.strerror or 'no space left on the device'})"
            return
        self.left[src.path] -= 1
        if not self.left[src.path]:
            del self.left[src.path]
            self.done += 1

    def settle(self, todo: list[imageio.Source], before: dict[Path, tuple[int, int]]) -> None:
        """After an interrupt, count what is on disk for the inputs whose end was not reported (a write or a
        worker's batch cut short): the files written since ``before``, and an input done when its whole set
        was (what the skip rule of a re-run goes by)."""
        for src in todo:
            if src.path not in self.left:
                continue
            paths = targets(self.args, src)
            new = sum(file_id(p) not in (None, before.get(p)) for p in paths)
            self.written += max(0, new - self.files.get(src.path, 0))
            self.files[src.path] = max(new, self.files.get(src.path, 0))
            if new == len(paths):
                del self.left[src.path]
                self.done += 1


def make_out(run: Run) -> bool:
    """Create --out (and clean up what a killed run left there); False, the run stopped, when it cannot be."""
    out = run.args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        say(f"failed: cannot create the output folder {out} ({exc.strerror or exc}); choose a writable --out")
        run.stopped = "stopped (no output folder)"
        return False
    saving.remove_temps(str(out), modified_before=time.time() - STALE_TEMP_S)
    return True


def run_batches(run: Run, todo: list[imageio.Source], stop: StopAfterBatch) -> None:
    """The local engine: each batch cut out and written in turn, until all are done, Ctrl-C or a full disk."""
    from tqdm import tqdm

    args = run.args
    with tqdm(total=sum(run.left.values()), unit="img", disable=args.quiet) as bar:
        for items, batch, errors in imageio.batches(todo, args.batch_size, args.max_pixels):
            start, size = bar.n, len(items)

            def follow(fraction, start=start, size=size):  # per image, not per batch
                bar.n = start + int(fraction * size)
                bar.refresh()

            run.take(items, batch, errors, follow)
            bar.n = start
            bar.update(len(items) + sum(src.frames for src, _ in errors))
            if stop.requested or run.stopped:
                break


def guarded(run: Run, todo: list[imageio.Source], stop: StopAfterBatch, work) -> None:
    """``work()`` (either engine's batches) in --out, under Ctrl-C: after an interrupt the run counts what is on
    disk, so its summary matches the files whenever it stops."""
    before = None
    try:
        if todo and make_out(run):
            before = on_disk(run.args, todo)
            work()
        stop.finish()
    except KeyboardInterrupt:  # the second Ctrl-C, once (StopAfterBatch)
        say("cleancut cutout: stopped at once (second Ctrl-C); the rest of the batches in progress was dropped")
    stop.finish()
    if stop.requested:
        run.stopped = INTERRUPTED
        if before is not None:
            run.settle(todo, before)


def cutout_command(args) -> int:
    if args.engine == "ray":  # Ray is imported only here: the pack and the local CLI never need it
        from .ray_engine import require_ray, run_on_ray

        require_ray()  # before any input is read or the output folder made
    found, todo, failed, skipped = gather(args)
    if todo and args.method == "rembg":
        check_model(args.options)
    if args.engine == "ray":
        return run_on_ray(args, found, todo, failed, skipped)
    run = Run(args, {src.path: src.frames for src in todo}, failed)
    with StopAfterBatch(getattr(args, "for_process", False)) as stop:
        guarded(run, todo, stop, lambda: run_batches(run, todo, stop))
        return report(args, found, skipped, run)


def report(args, found: imageio.Collected, skipped: int, run: Run) -> int:
    """The failures on stderr, the one-line summary on stdout; the exit code. Both engines end here."""
    for line in run.failed:
        say(f"failed: {line}")
    summary = (f"cleancut cutout: {count(len(found.paths) + len(found.failed), 'input')}: {run.done} done, "
               f"{skipped} skipped{' (outputs exist; --overwrite redoes them)' if skipped else ''}, "
               f"{len(run.failed)} failed; {count(run.written, 'file')} written to {args.out}")
    if run.stopped:
        summary += f"; {run.stopped}: {count(len(run.left), 'input')} not processed"
    sys.stdout.write(summary + "\n")
    sys.stdout.flush()  # before the interpreter's teardown, which may take a while
    if run.stopped == INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if run.failed or run.stopped else EXIT_OK


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


CONTACT_SHEET = "contact_sheet.jpg"


def checkerboard(height: int, width: int, square: int = 16) -> torch.Tensor:
    """``[height, width, 1]`` light and mid grey squares: what image editors show behind transparency."""
    y, x = torch.arange(height).view(-1, 1) // square, torch.arange(width).view(1, -1) // square
    return torch.where((y + x) % 2 == 0, 0.8, 0.6).unsqueeze(-1)


def write_contact_sheet(path: Path, batch: torch.Tensor, items: dict, meta: dict) -> None:
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


def models_command(args) -> int:
    if args.action == "list":
        sys.stdout.write("".join(row + "\n" for row in models.status_rows()))
    else:
        sys.stdout.write(f"{args.name}: verified, at {models.fetch(args.name)}\n")
    return EXIT_OK


class _Say(logging.Handler):
    """The library's log lines (a model download, a decoder's warning) on stderr, above the progress bar."""

    def emit(self, record):
        say(self.format(record))


@contextlib.contextmanager
def _logging():
    handler, previous = _Say(logging.INFO), (log.level, log.propagate)  # default format: the message alone
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the lines go to stderr once, whatever the root logger does
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.level, log.propagate = previous


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see ``EXIT_CODES``). Errors are one line on stderr.

    ``argv`` ``None``: the process's own command line (the console script, ``python -m cleancut``); Ctrl-C is
    then ignored once the command is over, as only the process's exit follows (see :class:`StopAfterBatch`).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported in one line
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    commands = {"demo": demo_command, "cutout": cutout_command, "models": models_command}
    with _logging(), ctrl_c_ignored_after(argv is None):
        try:
            if args.command != "models":
                resolve(args)
            args.for_process = argv is None
            return commands[args.command](args)
        except UsageError as exc:
            say(f"cleancut {args.command}: {exc}")
            return EXIT_USAGE
        except KeyboardInterrupt:
            say(f"cleancut {args.command}: interrupted")
            return EXIT_INTERRUPTED
        except (ValueError, RuntimeError, OSError) as exc:
            say(f"cleancut {args.command}: {exc}")
            return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
