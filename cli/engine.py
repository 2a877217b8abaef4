"""The ``cutout`` engine: the work items of a run, the local engine that does them, and the summary.

:func:`gather` turns the inputs into work items: an :class:`..utils.imageio.Source` per image file (its frames
batched with other images of their size) and a :class:`.videos.Clip` per video (one item, streamed). A
:class:`Run` does the items and counts what it wrote; both engines use it (the ray engine in its workers) and
end with :func:`report`, so their files, summaries and exit codes are the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from ..utils import imageio, saving
from . import cut, images, videos
from .options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from .stopping import INTERRUPTED, STALE_TEMP_S, StopAfterBatch, disk_full, file_id, say
from .videos import Clip

VIDEO_ERRORS = (ValueError, RuntimeError, OSError, MemoryError)  # a clip's failure: that clip only


@dataclasses.dataclass
class Found(imageio.Collected):
    """:class:`..utils.imageio.Collected`, and which of the paths are videos."""

    videos: list[Path] = dataclasses.field(default_factory=list)


def count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def plan(paths: list[Path]) -> list[imageio.Source | Clip]:
    """A work item per path, in order: images as ``imageio.plan`` names them, videos as :class:`Clip`."""
    return [Clip(s.path, s.stem) if videos.is_clip(s.path) else s for s in imageio.plan(paths)]


def targets(args, src: imageio.Source | Clip) -> list[Path]:
    """Every output of ``src``: a set per image frame, or the videos of a clip."""
    return videos.targets(args, src) if isinstance(src, Clip) else images.targets(args, src)


def finished(src: imageio.Source | Clip, path: Path) -> bool:
    return videos.exists(path) if isinstance(src, Clip) else path.is_file()


def gather(args) -> tuple[Found, list, list[str], int]:
    """The inputs: what was found, what is left to do, what failed, and how many are skipped as done."""
    collected = imageio.collect_inputs(args.inputs)
    found = Found(collected.paths, collected.failed, collected.notes)
    for note in found.notes:
        say(f"note: {note}")
    if not found.paths:
        for line in found.failed:
            say(f"failed: {line}")
        raise UsageError("no input files found")
    todo, failed, skipped, inputs = [], list(found.failed), 0, set(found.paths)
    for src in plan(found.paths):
        if isinstance(src, Clip):
            found.videos.append(src.path)
        paths = targets(args, src)
        clash = next((t for t in paths if t.resolve() in inputs), None)
        if not paths:
            failed.append(f"{src.path}: a video; --save names no role written for videos ({', '.join(videos.ROLES)})")
        elif clash is not None:
            failed.append(f"{src.path}: its output {clash.name} would replace an input file; write to another --out")
        elif not args.overwrite and all(finished(src, t) for t in paths):  # the skip rule
            skipped += 1
        else:
            todo.append(src)
    return found, _estimate(todo, failed), failed, skipped


def _estimate(todo: list, failed: list[str]) -> list:
    """``todo`` with each clip's frame count (or estimate) for the progress bar; a clip that cannot be read fails
    here, named, and the others run."""
    out = []
    for src in todo:
        if isinstance(src, Clip):
            try:
                src = dataclasses.replace(src, frames=videos.video_read.probe(src.path).frame_estimate)
            except ValueError as exc:
                failed.append(reason(exc, src.path))
                continue
        out.append(src)
    return out


def reason(exc: BaseException, path: Path) -> str:
    """``exc`` as a failure line that names ``path`` once."""
    text = str(exc) or type(exc).__name__
    return text if str(path) in text else f"{path}: {text}"


def on_disk(args, todo: list) -> dict[Path, tuple[int, int]]:
    """The output files of ``todo`` that exist before the run (an incomplete set, or --overwrite)."""
    found = {p: file_id(p) for src in todo for p in targets(args, src)}
    return {p: i for p, i in found.items() if i is not None}


def units(todo: list) -> dict[Path, int]:
    """What is left of each item: its image frames still to write, or 1 for a clip (its videos, together)."""
    return {src.path: 1 if isinstance(src, Clip) else src.frames for src in todo}


@dataclasses.dataclass
class Run:
    """The progress of ``cutout``: units still to write per input (:func:`units`), failures, files (a video or a
    PNG sequence's folder counts as one) and video frames written, and why the run stopped before its end
    (``stopped``: the summary's "<why>: N inputs not processed")."""

    args: argparse.Namespace
    left: dict[Path, int]
    failed: list[str]
    done: int = 0
    written: int = 0
    frames: int = 0  # video frames written
    reasons: dict[Path, str] = dataclasses.field(default_factory=dict)  # per input: why it failed
    files: dict[Path, int] = dataclasses.field(default_factory=dict)  # per input: files written
    stopped: str = ""

    def give_up(self, src, reason: str) -> None:
        if self.left.pop(src.path, None) is not None:
            self.failed.append(reason)
            self.reasons[src.path] = reason

    def take(self, items, batch, errors, on_progress=None) -> None:
        """One result of ``imageio.batches``: cut out, then write every frame whose input has not failed."""
        for src, why in errors:
            self.give_up(src, why)
        if batch is None:
            return
        try:
            tensors = {r: t for r, t in cut.cut_out(batch, self.args, on_progress).items() if r in self.args.roles}
        except (ValueError, RuntimeError, OSError, MemoryError) as exc:
            for src, _ in items:
                self.give_up(src, f"{src.path}: {str(exc) or type(exc).__name__}")
            return
        for i, (src, k) in enumerate(items):
            if src.path in self.left and not self.stopped:  # a full disk: the rest is not processed
                self.write(src, k, tensors, i)

    def write(self, src: imageio.Source, k: int, tensors: dict, i: int) -> None:
        try:
            n = images.write_set(self.args, src, k, tensors, i)
        except (ValueError, OSError) as exc:
            self.fail_write(src, f"{src.path}: {exc}", exc)
            return
        self.wrote(src, n)

    def take_clip(self, clip: Clip, on_frames=None, should_stop=lambda: False) -> None:
        """Cut out and write one video input; a stop between its chunks leaves it not processed (no file)."""
        try:
            frames, n = videos.cut_clip(self.args, clip, on_frames, should_stop)
        except videos.Stopped:
            return
        except VIDEO_ERRORS as exc:
            self.fail_write(clip, reason(exc, clip.path), exc)
            return
        self.frames += frames
        self.wrote(clip, n)

    def fail_write(self, src, why: str, exc: BaseException) -> None:
        self.give_up(src, why)
        full = disk_full(exc)
        if full is not None:  # every later write would fail the same way, after decoding and cutting out
            self.stopped = f"stopped ({full.strerror or 'no space left on the device'})"

    def wrote(self, src, n: int) -> None:
        """``n`` files of ``src`` are written: one unit of it is done."""
        self.written += n
        self.files[src.path] = self.files.get(src.path, 0) + n
        self.left[src.path] -= 1
        if not self.left[src.path]:
            del self.left[src.path]
            self.done += 1

    def settle(self, todo: list, before: dict[Path, tuple[int, int]]) -> None:
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


def progress_bar(args, todo: list):
    """The run's bar: images, or frames when a video is among the inputs (a clip's estimate until it is done)."""
    from tqdm import tqdm

    unit = "frame" if any(isinstance(src, Clip) for src in todo) else "img"
    return tqdm(total=sum(src.frames for src in todo), unit=unit, disable=args.quiet)


def run_local(run: Run, todo: list, stop: StopAfterBatch) -> None:
    """The local engine: the image batches, then each clip, until all are done, Ctrl-C or a full disk."""
    with progress_bar(run.args, todo) as bar:
        run_batches(run, [s for s in todo if not isinstance(s, Clip)], stop, bar)
        for clip in (s for s in todo if isinstance(s, Clip)):
            if stop.requested or run.stopped:
                break
            start = bar.n
            run.take_clip(clip, bar.update, lambda: stop.requested or bool(run.stopped))
            if clip.path in run.left:  # stopped or failed: the rest of its frames will not come
                bar.update(max(0, clip.frames - (bar.n - start)))
            else:
                bar.total += bar.n - start - clip.frames  # the estimate made exact
                bar.refresh()


def run_batches(run: Run, todo: list[imageio.Source], stop: StopAfterBatch, bar) -> None:
    """Each image batch cut out and written in turn."""
    for items, batch, errors in imageio.batches(todo, run.args.batch_size, run.args.max_pixels):
        start, size = bar.n, len(items)

        def follow(fraction, start=start, size=size):  # per image, not per batch
            bar.n = start + int(fraction * size)
            bar.refresh()

        run.take(items, batch, errors, follow)
        bar.n = start
        bar.update(len(items) + sum(src.frames for src, _ in errors))
        if stop.requested or run.stopped:
            break


def guarded(run: Run, todo: list, stop: StopAfterBatch, work) -> None:
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


def report(args, found: imageio.Collected, skipped: int, run: Run) -> int:
    """The failures on stderr, the one-line summary on stdout; the exit code. Both engines end here."""
    for line in run.failed:
        say(f"failed: {line}")
    clips = len(getattr(found, "videos", ()))
    kinds = (f" ({count(len(found.paths) - clips, 'image')}, {count(clips, 'video')}; "
             f"{count(run.frames, 'video frame')} cut out)") if clips else ""
    summary = (f"cleancut cutout: {count(len(found.paths) + len(found.failed), 'input')}{kinds}: {run.done} done, "
               f"{skipped} skipped{' (outputs exist; --overwrite redoes them)' if skipped else ''}, "
               f"{len(run.failed)} failed; {count(run.written, 'file')} written to {args.out}")
    if run.stopped:
        summary += f"; {run.stopped}: {count(len(run.left), 'input')} not processed"
    sys.stdout.write(summary + "\n")
    sys.stdout.flush()  # before the interpreter's teardown, which may take a while
    if run.stopped == INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if run.failed or run.stopped else EXIT_OK


def run_cutout(args, found: Found, todo: list, failed: list[str], skipped: int) -> int:
    """The ``cutout`` command on this machine: the items of :func:`gather` done, then the summary; the exit code."""
    run = Run(args, units(todo), failed)
    with StopAfterBatch(getattr(args, "for_process", False)) as stop:
        guarded(run, todo, stop, lambda: run_local(run, todo, stop))
        return report(args, found, skipped, run)
