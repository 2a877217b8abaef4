"""``cleancut cutout --engine ray``: the local pipeline on a Ray cluster, in a pool of Ray actors.

The driver does what the local engine does before any pixel is read (:func:`.engine.gather`: inputs, output names,
the skip rule, the model check), then starts ``--workers`` :class:`CutoutFiles` actors, each holding one model
session for the whole run, and hands each idle actor the next batch of ``(path, stem, frames, kind)`` rows: up to
``--batch-size`` images, or one video (a worker streams the whole clip, as the local engine does). A worker
cuts out its inputs with the local engine's own code (:class:`.engine.Run`: same batches, nodes, names,
metadata) and writes them to ``--out`` itself, so ``--out`` must be a folder every worker reaches (one machine,
or a shared file system); one small result per input comes back, and the driver prints the local engine's summary.

Work is not lost: Ray restarts a worker that dies and retries its batch (``MAX_RETRIES`` times; a batch that
still fails fails its inputs, not the run), a re-run skips inputs whose outputs exist, and a corrupt input
fails alone, as locally. Ctrl-C works as locally: the first lets the batches in progress finish, the second
stops the workers at once; the summary then counts what is on disk.

The actors are plain Ray actors rather than a Ray Data pool: Ray Data passes its pool actors their settings as
object-store references, and Ray Core logs an ERROR ("constructor arguments in the object store and
max_restarts > 0", ray-project/ray#53727) for every restartable actor made so; these take theirs by value.

Ray is imported here only, when the engine runs: the pack and the local CLI never need it
(``pip install "cleancut[ray]"``). Workers import the pack as the package ``cleancut``.

:class:`CutoutImages` is the library entry point: a callable class for users' own
``ray.data.Dataset.map_batches`` over images already in a dataset (README, "More than one machine").
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from ..utils import imageio, runtime, saving
from .options import UsageError, as_flags, build_parser, canonical_flags, resolve
from .videos import Clip

PACKAGE = "cleancut"  # the name workers import the pack by
MAX_RETRIES = 3  # a batch whose worker died is run again this many times
WAIT_S = 0.1  # ray.wait holds Ctrl-C back (two presses in one wait count once): the driver looks up this often
STOP_WAIT_S = 30.0  # at most this long for stopped workers to be gone (their files with them)
RAY_HINT = 'the ray engine needs Ray: pip install "cleancut[ray]" (or pip install "ray[data]")'


def require_ray():
    """The ``ray`` module; a usage error that says what to install when it is missing."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError(RAY_HINT) from exc
    return ray


def _worker_args(flags: list[str], cpus: int):
    """The cut-out settings in a worker, rebuilt from the driver's flags with the same checks."""
    if cpus:  # this worker's share of the machine: torch and the rembg runs keep to it
        os.environ[runtime.CPUS_ENV] = str(cpus)
        import torch

        torch.set_num_threads(cpus)
    args = build_parser().parse_args(["cutout", "-", "--out", ".", "--quiet", *flags])
    resolve(args)
    return args


class CutoutFiles:
    """The ray engine's actor: cuts out batches of input files and writes their outputs (:meth:`cut`).

    Args:
        flags: the driver's resolved settings as flags (:func:`.options.canonical_flags`); ``out`` the folder.
        cpus: CPU cores this worker may use (0: all it sees).
        fault: for fault tests only: ``(marker, stem)``; the worker process dies (once: while ``marker`` does
            not exist, which it creates) when a batch holds the input of that output stem.
    """

    def __init__(self, flags: list[str], out: str, cpus: int = 0, fault: tuple[str, str] | None = None):
        self.args = _worker_args(flags, cpus)
        self.args.out = Path(out)
        self.fault = fault
        if self.args.method == "rembg":
            from .cut import check_model

            check_model(self.args.options)  # each node has its own model folder: fetched or verified once

    def cut(self, rows: list[tuple[str, str, int, str]]) -> list[dict]:
        """``(path, stem, frames, kind)`` per input (kind ``"video"`` or ``"image"``) -> per input: ``failed`` (the
        reason, or ""), ``written`` (files), ``frames`` (video frames written), ``done``, and ``stopped`` (why the
        batch stopped early: a full disk; "" when it did not)."""
        from .engine import Run, units

        sources = [(Clip if k == "video" else imageio.Source)(Path(p), s, int(f)) for p, s, f, k in rows]
        if self.fault and not os.path.exists(self.fault[0]) and self.fault[1] in {s.stem for s in sources}:
            Path(self.fault[0]).touch()
            os._exit(1)  # a worker lost mid-run (a crash, a pre-empted node): Ray must redo this batch
        run, frames = Run(self.args, units(sources), []), {}
        stills = [s for s in sources if not isinstance(s, Clip)]
        for items, images, errors in imageio.batches(stills, self.args.batch_size, self.args.max_pixels):
            run.take(items, images, errors)
            if run.stopped:
                break
        for clip in (s for s in sources if isinstance(s, Clip) and not run.stopped):
            before = run.frames
            run.take_clip(clip)
            frames[clip.path] = run.frames - before
        return [{"failed": run.reasons.get(s.path, ""), "written": run.files.get(s.path, 0),
                 "frames": frames.get(s.path, 0), "done": s.path not in run.left and s.path not in run.reasons,
                 "stopped": run.stopped} for s in sources]


def _start(ray, address: str | None) -> bool:
    """Connect to ``address`` (or start a local instance); False when this process was connected already."""
    if ray.is_initialized():  # a script or a test that called ray.init itself: use it, leave it running
        return False
    quiet = ("ray", "ray.data", "ray._private")  # the driver's own bar and summary say what happens
    for name in quiet:
        logging.getLogger(name).setLevel(logging.ERROR)
    ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    for name in quiet:  # ray.init configures its loggers again; its full logs stay in its session folder
        logging.getLogger(name).setLevel(logging.ERROR)
    return True


def _pool(ray, args) -> tuple[int, int, float]:
    """``(workers, cpus per worker, gpus per worker)`` from the flags and what the cluster has."""
    have = ray.cluster_resources()
    gpus = args.gpus_per_worker or 0.0
    cpus_total = int(have.get("CPU", 1))
    if gpus:
        if have.get("GPU", 0) < gpus:  # a worker that can never be placed would wait forever
            raise UsageError(f"--gpus-per-worker: the Ray cluster has {have.get('GPU', 0):g} GPUs, fewer than one "
                             f"worker's {gpus:g}; start the GPU nodes first (ray start on them), or drop the flag "
                             "for CPU workers")
        workers = args.workers or max(1, int(have.get("GPU", 0) / gpus))
        return workers, 1, gpus
    # default: a worker per two cores, each running two single-threaded model runs side by side as the local
    # engine does, with room left for Ray's own processes (measured: 2 workers of 1 core on 2 cores were slower)
    workers = args.workers or max(1, cpus_total // 2)
    return workers, max(1, cpus_total // workers), 0.0


def worker_class():
    """:class:`CutoutFiles` as workers import it: from the package ``cleancut``, whatever this module's name."""
    if __package__ == f"{PACKAGE}.cli":
        return CutoutFiles
    try:
        return importlib.import_module(f"{PACKAGE}.cli.ray_engine").CutoutFiles
    except ImportError as exc:
        raise UsageError(f"the ray engine needs the pack installed as the package {PACKAGE!r} (pip install "
                         f"\"{PACKAGE}[ray]\", or pip install -e . in its folder): workers import it by that name"
                         ) from exc


def run_on_ray(args, found, todo, failed, skipped, fault: tuple[str, str] | None = None) -> int:
    """The ``cutout`` command on Ray: ``todo`` (from :func:`.engine.gather`) cut out by workers; the local summary."""
    from .engine import Run, StopAfterBatch, guarded, report, units

    ray = require_ray()
    run = Run(args, units(todo), failed)
    with StopAfterBatch(getattr(args, "for_process", False)) as stop:
        guarded(run, todo, stop, lambda: _run(ray, run, todo, stop, fault))
        return report(args, found, skipped, run)


def _run(ray, run, todo: list[imageio.Source], stop, fault) -> None:
    """Start Ray and the workers, hand out the batches, then stop the workers (and Ray, if this run started it)."""
    cls, began = worker_class(), time.time()
    started, actors, running = _start(ray, run.args.address), [], {}
    try:
        actors = _actors(ray, cls, run.args, fault)
        _drive(ray, actors, running, run, todo, stop)
    finally:
        _stop_workers(ray, actors, running)
        if stop.requested:  # a worker stopped mid-write leaves its temporary file: not ours to keep
            saving.remove_temps(str(run.args.out), modified_after=began - 1)
        if started:
            ray.shutdown()  # disconnects; a cluster given by --address keeps running


def _actors(ray, cls, args, fault) -> list:
    """One :class:`CutoutFiles` actor per worker, its arguments by value: restarted when it dies, its batch
    retried ``MAX_RETRIES`` times."""
    workers, cpus, gpus = _pool(ray, args)
    remote = ray.remote(cls).options(num_cpus=cpus, num_gpus=gpus, max_restarts=-1, max_task_retries=MAX_RETRIES)
    flags, out = canonical_flags(args), str(args.out.resolve())
    return [remote.remote(flags, out, cpus, fault) for _ in range(workers)]


def _drive(ray, actors: list, running: dict, run, todo: list[imageio.Source], stop) -> None:
    """Hand each idle actor the next batch until every batch is back; none after Ctrl-C or a full disk.
    ``running``: the batches out, by result reference (for :func:`_stop_workers`)."""
    from .engine import progress_bar

    stills, clips = [s for s in todo if not isinstance(s, Clip)], [s for s in todo if isinstance(s, Clip)]
    per_call = min(run.args.batch_size, math.ceil(len(stills) / len(actors))) or 1  # every worker gets a share
    queue = [stills[i:i + per_call] for i in range(0, len(stills), per_call)] + [[clip] for clip in clips]
    idle, gone = list(actors), ""

    def more() -> bool:
        return bool(queue and idle) and not (stop.requested or run.stopped)

    with progress_bar(run.args, todo) as bar:
        while running or more():
            while more():
                actor, batch = idle.pop(), queue.pop(0)
                rows = [(str(s.path), s.stem, s.frames, "video" if isinstance(s, Clip) else "image") for s in batch]
                running[actor.cut.remote(rows)] = (actor, batch)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
            if not ready:
                continue
            actor, batch = running.pop(ready[0])
            rows, why = _result(ray, ready[0], batch)
            if why:  # this actor is gone for good: the others carry on
                gone = why
            else:
                idle.append(actor)
            for src, row in zip(batch, rows, strict=True):
                _take(run, src, row)
            bar.update(sum(src.frames for src in batch))
    if queue and not idle and not (stop.requested or run.stopped):  # no worker could start: the rest fails
        for src in (s for batch in queue for s in batch):
            run.give_up(src, f"{src.path}: not processed: no worker could start ({gone})")


def _result(ray, ref, batch: list[imageio.Source]) -> tuple[list[dict], str]:
    """A batch's rows, or a failure row per input; and why its actor is gone for good ("" while it lives)."""
    try:
        return ray.get(ref), ""
    except ray.exceptions.RayActorError as exc:
        if getattr(exc, "actor_init_failed", False):  # not restarted by Ray: e.g. no model on that node
            why = _last_line(exc)
            return [_failure(src, f"its worker could not start: {why}") for src in batch], why
        why = f"its worker failed {MAX_RETRIES + 1} times (see the Ray logs); run again"
    except ray.exceptions.RayTaskError as exc:  # an error the engine does not expect: this batch only
        why = _last_line(exc.cause if exc.cause is not None else exc)
    except ray.exceptions.RayError as exc:  # e.g. its result lost with a node
        why = f"{_last_line(exc)}; run again"
    return [_failure(src, why) for src in batch], ""


def _failure(src: imageio.Source, why: str) -> dict:
    return {"failed": f"{src.path}: {why}", "written": 0, "frames": 0, "done": False, "stopped": ""}


def _last_line(exc: BaseException) -> str:
    """The gist of a Ray error (its text ends with the original exception, after a traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _take(run, src: imageio.Source, row: dict) -> None:
    """One worker result into the driver's :class:`.engine.Run`."""
    run.written += int(row["written"])
    run.frames += int(row["frames"])
    run.files[src.path] = run.files.get(src.path, 0) + int(row["written"])
    if row["failed"]:
        run.give_up(src, str(row["failed"]))
    elif row["done"] and run.left.pop(src.path, None) is not None:
        run.done += 1
    run.stopped = run.stopped or str(row["stopped"])  # a full disk: no more batches


def _stop_workers(ray, actors: list, running: dict) -> None:
    """Stop the actors (the batches still ``running`` are dropped) and wait until Ray reports them gone, so that
    no file of theirs appears after the summary."""
    for ref in running:
        ray.cancel(ref)  # first: a cancelled batch is not retried (nor announced as retried) when its actor dies
    for actor in actors:
        ray.kill(actor, no_restart=True)
    deadline = time.monotonic() + STOP_WAIT_S
    for actor in actors:
        while time.monotonic() < deadline:
            try:
                probe = actor.__ray_ready__.options(max_task_retries=0).remote()  # no retry warning
                ray.get(probe, timeout=max(0.1, deadline - time.monotonic()))
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                break
            time.sleep(0.05)  # the kill has not reached it yet


class CutoutImages:
    """Cut out images already in a Ray Dataset: ``ds.map_batches(CutoutImages, fn_constructor_kwargs=...)``.

    Each worker builds the pipeline once (one model session) from ``cleancut cutout`` flags given as keywords,
    e.g. ``CutoutImages(model="u2netp", refine="guided filter")``. A batch's ``"image"`` column (uint8 RGB or
    RGBA, ``[N, H, W, C]`` or a list of arrays of any sizes) gains ``"cutout"`` (uint8, RGBA unless a
    background colour was asked for) and ``"mask"`` (uint8, 255 = subject); other columns pass through.
    """

    def __init__(self, **flags):
        self.args = _worker_args(as_flags(flags), 0)
        if self.args.method == "rembg":
            from .cut import check_model

            check_model(self.args.options)

    def __call__(self, batch: dict) -> dict:
        from ..utils.bridges import np2tensor, to_uint8
        from .cut import cut_out

        images = list(batch["image"])
        cutouts: list = [None] * len(images)
        masks: list = [None] * len(images)
        shapes: dict[tuple, list[int]] = {}
        for i, im in enumerate(images):  # same-size images go through the nodes as one batch
            shapes.setdefault(np.asarray(im).shape, []).append(i)
        for idx in shapes.values():
            out = cut_out(np2tensor([np.asarray(images[i]) for i in idx]), self.args)
            for j, i in enumerate(idx):
                cutouts[i], masks[i] = to_uint8(out["cutout"][j]), to_uint8(out["mask"][j])
        same = len(shapes) == 1  # one shape: proper ndarray columns; else a list per row
        return {**batch, "cutout": np.stack(cutouts) if same else cutouts,
                "mask": np.stack(masks) if same else masks}
