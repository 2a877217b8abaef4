"""``cleancut cutout --engine ray``: the local pipeline on a Ray cluster, with Ray Data.

The driver does what the local engine does before any pixel is read (:func:`..gather`: inputs, output names,
the skip rule, the model check), then hands the inputs to Ray: a Dataset of ``(path, stem, frames)`` rows,
``map_batches`` over :class:`CutoutFiles`, a callable class of which each worker holds one instance, hence
one model session, for the whole run. A worker cuts out its inputs with the local engine's own code
(:class:`..Run`: same batches, nodes, names, metadata) and writes them to ``--out`` itself, so ``--out`` must
be a folder every worker reaches (one machine, or a shared file system); one result row per input comes
back, and the driver prints the local engine's summary.

Work is not lost: Ray restarts a worker that dies and retries its batch (``MAX_RETRIES`` times; a batch that
still fails fails its inputs, not the run), a re-run skips inputs whose outputs exist, and a corrupt input
fails alone, as locally.

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
import warnings
from pathlib import Path

import numpy as np

from ..utils import imageio, runtime
from .options import UsageError, as_flags, build_parser, canonical_flags, resolve

PACKAGE = "cleancut"  # the name workers import the pack by
MAX_RETRIES = 3  # a batch whose worker died is run again this many times
RAY_HINT = 'the ray engine needs Ray: pip install "cleancut[ray]" (or pip install "ray[data]")'


def require_ray():
    """The ``ray`` module (with Ray Data); a usage error that says what to install when it is missing."""
    try:
        import ray
        import ray.data  # noqa: F401
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
    """Ray Data callable class of the ray engine: cuts out a batch of input files and writes their outputs.

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
            from . import check_model

            check_model(self.args.options)  # each node has its own model folder: fetched or verified once

    def __call__(self, batch: dict) -> dict:
        from . import Run

        sources = [imageio.Source(Path(p), s, int(f))
                   for p, s, f in zip(batch["path"], batch["stem"], batch["frames"], strict=True)]
        if self.fault and not os.path.exists(self.fault[0]) and self.fault[1] in {s.stem for s in sources}:
            Path(self.fault[0]).touch()
            os._exit(1)  # a worker lost mid-run (a crash, a pre-empted node): Ray must redo this batch
        run = Run(self.args, {s.path: s.frames for s in sources}, [])
        for items, images, errors in imageio.batches(sources, self.args.batch_size, self.args.max_pixels):
            run.take(items, images, errors)
        return {"path": [str(s.path) for s in sources],
                "failed": [run.reasons.get(s.path, "") for s in sources],
                "written": [run.files.get(s.path, 0) for s in sources],
                "frames": [s.frames for s in sources]}


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
    """The ``cutout`` command on Ray: ``todo`` (from :func:`..gather`) cut out by workers; the local summary."""
    from tqdm import tqdm

    from . import Run, report

    ray = require_ray()
    run = Run(args, {src.path: src.frames for src in todo}, failed)
    if not todo:
        return report(args, found, skipped, run)
    cls = worker_class()
    args.out.mkdir(parents=True, exist_ok=True)
    started = _start(ray, args.address)
    try:
        workers, cpus, gpus = _pool(ray, args)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver's own bar below
        context.max_errored_blocks = -1  # a batch that keeps failing fails its inputs, not the run
        rows = [{"path": str(s.path), "stem": s.stem, "frames": s.frames} for s in todo]
        per_call = min(args.batch_size, math.ceil(len(rows) / workers))  # every worker gets a share
        blocks = math.ceil(len(rows) / per_call)
        with warnings.catch_warnings():
            # Bounded retries are still only reachable through ray_remote_args (deprecated for the named
            # parameters, which do not include them); Ray Data's own default would retry a crashing batch forever.
            warnings.simplefilter("ignore", DeprecationWarning)
            results = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
                cls, fn_constructor_kwargs={"flags": canonical_flags(args), "out": str(args.out.resolve()),
                                            "cpus": cpus, "fault": fault},
                batch_size=per_call, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus,
                num_gpus=gpus or None, batch_format="numpy", max_restarts=-1, max_task_retries=MAX_RETRIES)
        by_path = {src.path: src for src in todo}
        with tqdm(total=sum(run.left.values()), unit="img", disable=args.quiet) as bar:
            for row in results.iter_rows():
                _take(run, by_path[Path(row["path"])], row)
                bar.update(int(row["frames"]))
    except KeyboardInterrupt:  # the workers stop with Ray; what they had not finished is redone by a re-run
        return report(args, found, skipped, run, len(run.left))
    finally:
        if started:
            ray.shutdown()  # disconnects; a cluster given by --address keeps running
    for src in [by_path[p] for p in list(run.left)]:  # no result: its batch failed every retry
        run.give_up(src, f"{src.path}: its worker failed {MAX_RETRIES + 1} times (see the Ray logs); run again")
    return report(args, found, skipped, run)


def _take(run, src: imageio.Source, row: dict) -> None:
    """One worker result into the driver's :class:`..Run`."""
    run.written += int(row["written"])
    if row["failed"]:
        run.give_up(src, str(row["failed"]))
    elif run.left.pop(src.path, None) is not None:
        run.done += 1


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
            from . import check_model

            check_model(self.args.options)

    def __call__(self, batch: dict) -> dict:
        from ..utils.bridges import np2tensor, to_uint8
        from . import cut_out

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
