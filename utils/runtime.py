"""The only adapter to ComfyUI: compute device, chunking, progress, cancel, folders.

Every ComfyUI module is optional: outside ComfyUI (tests, the CLI) each service falls back to plain
behaviour (CUDA if torch sees it, no progress bar, no cancel, folders given by the caller).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from functools import cache

import numpy as np
import torch
from torch import Tensor

from .checks import fail

log = logging.getLogger("cleancut")

# "torch": batched tensor ops on any device (the GPU path). "native": the library an op is defined by,
# on the CPU, where it is faster (OpenCV for the filters and CLAHE, Pillow for the threshold cut).
BACKENDS = ("auto", "torch", "native")
BACKEND_ALIASES = {"opencv": "native", "pillow": "native"}  # older spellings of CLEANCUT_BACKEND
BACKEND_ENV = "CLEANCUT_BACKEND"  # force "torch" or "native" for every node, e.g. to test both paths
PIXELS_PER_CHUNK = 8 * 1024 * 1024  # ~100 MB of float RGB per chunk: bounds peak memory on big batches


@cache
def comfy(module: str):
    """The ComfyUI module ``module`` (e.g. ``"comfy.utils"``), or ``None`` outside ComfyUI."""
    try:
        return importlib.import_module(module)
    except Exception:  # not installed, or half-initialised outside a server: behave as standalone
        return None


def compute_device() -> torch.device:
    """Where batched work runs: ComfyUI's torch device when loaded, else CUDA if present, else CPU."""
    mm = comfy("comfy.model_management")
    if mm is not None:
        return torch.device(mm.get_torch_device())
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def raise_if_cancelled() -> None:
    """Honour ComfyUI's Cancel button between chunks; a no-op outside ComfyUI."""
    mm = comfy("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


_LISTENERS: list[Callable[[int, int], None]] = []  # outside ComfyUI: who hears progress (the CLI's bar)


@contextlib.contextmanager
def progress_listener(listener: Callable[[int, int], None]):
    """Within the block, every :class:`Progress` also calls ``listener(done, total)`` on each update."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


class Progress:
    """ComfyUI's node progress bar when available; otherwise it only counts (and tells any listener)."""

    def __init__(self, total: int):
        self.total, self.done = total, 0
        cu = comfy("comfy.utils")
        self._bar = cu.ProgressBar(total) if cu is not None and hasattr(cu, "ProgressBar") else None

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        if self._bar is not None:
            self._bar.update_absolute(self.done, self.total)
        for listener in _LISTENERS:
            listener(self.done, self.total)

    def reach(self, done: int) -> None:
        """Advance to ``done`` unless finer updates got there already (a chunk loop around per-item updates)."""
        done = min(done, self.total)
        if done > self.done:
            self.update(done - self.done)


def pick_backend(device: torch.device, requested: str = "auto") -> str:
    """``"native"`` on the CPU (faster there), ``"torch"`` elsewhere; ``requested`` or the env var can force one."""
    choice = requested if requested != "auto" else os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    choice = BACKEND_ALIASES.get(choice, choice)
    if choice not in BACKENDS:
        fail("backend", f"{choice!r} is not one of {', '.join(BACKENDS)} (check ${BACKEND_ENV}).")
    if choice == "auto":
        choice = "native" if device.type == "cpu" else "torch"
    log.debug("CleanCut: %s backend on %s", choice, device)  # said in the log, never in the result
    return choice


CPUS_ENV = "CLEANCUT_CPUS"  # cores this process may use, when it shares a machine (a Ray worker sets it)


def cpu_count() -> int:
    """CPU cores this process may use: ``$CLEANCUT_CPUS`` if set, else the affinity mask (as containers set it)."""
    share = os.environ.get(CPUS_ENV, "").strip()
    if share.isdigit() and int(share) > 0:
        return int(share)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def per_image(fn: Callable[[np.ndarray], np.ndarray], batch: Tensor, dtype=np.float32) -> Tensor:
    """``fn`` on each item of ``batch`` (``[B, H, W(, C)]``, as NumPy arrays on the CPU) for the libraries that
    take one image per call (OpenCV), a thread per core (they release the GIL). Results of ``batch``'s item
    shape go into one NumPy array of ``dtype`` (fewer first-touch page faults than torch's allocator); the
    tensor is made on the calling thread (ComfyUI's inference mode is per thread), on ``batch``'s device."""
    from concurrent.futures import ThreadPoolExecutor

    arrays = batch.cpu().numpy()
    out = np.empty(arrays.shape, dtype)

    def one(i: int) -> None:
        out[i] = fn(arrays[i])

    with ThreadPoolExecutor(max_workers=max(1, min(len(arrays), cpu_count()))) as pool:
        list(pool.map(one, range(len(arrays))))
    return torch.from_numpy(out).to(batch.device)


def chunk_size(image: Tensor, pixels: int | None = None) -> int:
    """Images per chunk so that one chunk holds about ``pixels`` (default ``PIXELS_PER_CHUNK``), at least one."""
    return max(1, (pixels or PIXELS_PER_CHUNK) // max(1, image.shape[1] * image.shape[2]))


def empty(shape: Sequence[int], like: Tensor) -> Tensor:
    """Uninitialised tensor with ``like``'s dtype and device. On the CPU through NumPy, which madvises huge
    pages: first-touch page faults then cost a quarter of ``torch.empty``'s (a third of a cheap op's time)."""
    if like.device.type == "cpu" and like.dtype in (torch.float32, torch.float16, torch.float64):
        return torch.from_numpy(np.empty(tuple(shape), dtype=str(like.dtype).removeprefix("torch.")))
    return torch.empty(tuple(shape), dtype=like.dtype, device=like.device)


def map_batches(image: Tensor, fn: Callable[..., Tensor | tuple[Tensor, ...]], *, chunk: int | None = None,
                device: torch.device | None = None, outputs: Sequence[Sequence[int]] | None = None,
                progress: Progress | None = None, pass_start: bool = False,
                **params) -> Tensor | tuple[Tensor, ...]:
    """Apply ``fn`` chunk by chunk on the compute device; results on ``image.device``, in order.

    The one chunk loop of the pack: Cancel is honoured and the progress bar advances between chunks, and
    peak memory is the outputs plus one chunk's working set, whatever the batch size.

    Args:
        image: IMAGE ``[B, H, W, C]`` (any tensor batched along dim 0).
        fn: ``fn(part, **params)`` for a chunk ``part`` ``[b, ...]`` on the compute device; returns a
            tensor or a tuple of tensors, each ``[b, ...]``.
        chunk: images per chunk (default :func:`chunk_size`). device: where ``fn`` runs.
        outputs: the shapes after the batch dim of ``fn``'s results, when ``fn`` can write into
            ``out=`` (a tuple of tensors it receives): then results are written in place wherever the
            compute device is ``image.device``, with no second copy. ``None``: one output shaped as ``image``.
        progress: a :class:`Progress` to advance (one spanning several passes); default a new one. It
            reaches each chunk's end when the chunk is done; ``fn`` may advance it finer meanwhile.
        pass_start: also pass ``start=``, the batch index of the chunk's first image.
    Returns:
        One tensor, or a tuple as ``fn`` returns, each ``[B, ...]`` with ``image``'s dtype and device.
    """
    device = compute_device() if device is None else device
    n, step = image.shape[0], chunk or chunk_size(image)
    progress = Progress(n) if progress is None else progress
    base = progress.done
    in_place = outputs is not None and torch.device(device) == image.device
    results = None
    if outputs is not None:
        results = tuple(empty((n, *shape), image) for shape in outputs)
    for start in range(0, n, step):
        raise_if_cancelled()
        part = image[start:start + step]
        stop = start + part.shape[0]
        extra = {"start": start} if pass_start else {}
        if in_place:
            extra["out"] = tuple(r[start:stop] for r in results)
        # detached: a tensor that requires grad (a direct call outside ComfyUI) must not reach the ops
        got = fn(part.detach().to(device, non_blocking=True), **params, **extra)
        progress.reach(base + stop)
        if in_place:
            continue
        got = got if isinstance(got, tuple) else (got,)
        if results is None and stop == n:  # one chunk: its results are the outputs, no copy
            results = tuple(g.to(image.device, image.dtype) for g in got)
            break
        if results is None:
            results = tuple(empty((n, *g.shape[1:]), image) for g in got)
        for r, g in zip(results, got, strict=True):
            r[start:stop] = g
    single = len(results) == 1 if outputs is None else len(outputs) == 1
    return results[0] if single else results


class ManagedModule:
    """A torch model on the compute device, under ComfyUI's model management when it is loaded.

    Inside ComfyUI the module is wrapped in a ModelPatcher (``CoreModelPatcher`` where the server has it, as
    core's ``comfy/bg_removal_model.py``) with ComfyUI's offload device, and :meth:`ready` hands it to
    ``load_models_gpu`` before each run: ComfyUI then loads it, frees memory for it, or offloads it later when
    another model needs the room. Outside ComfyUI the module is moved to ``device`` once and stays there.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device):
        self.module, self.device = module, torch.device(device)
        mm, mp = comfy("comfy.model_management"), comfy("comfy.model_patcher")
        self.patcher = None
        if mm is not None and mp is not None:
            patcher = getattr(mp, "CoreModelPatcher", None) or mp.ModelPatcher
            self.patcher = patcher(module, load_device=self.device, offload_device=mm.text_encoder_offload_device())
        else:
            module.to(self.device)

    def ready(self, memory_required: int = 0) -> None:
        """Before a run: under ComfyUI, load the weights onto the device and free ``memory_required`` bytes of
        room for the activations (other models are offloaded as ComfyUI sees fit)."""
        if self.patcher is not None:
            comfy("comfy.model_management").load_models_gpu([self.patcher], memory_required=memory_required)


def model_dirs(kind: str) -> list[str]:
    """Folders ComfyUI registers for ``kind`` (e.g. ``"rembg"``: ``models/rembg``), or ``[]`` outside ComfyUI.

    The folder is registered on first use, so users can drop model files into ``ComfyUI/models/<kind>``.
    """
    fp = comfy("folder_paths")
    if fp is None:
        return []
    path = os.path.join(fp.models_dir, kind)
    entry = fp.folder_names_and_paths.get(kind)
    if entry is None:
        fp.folder_names_and_paths[kind] = ([path], {".onnx"})
    elif path not in entry[0]:  # extra_model_paths.yaml registered the kind first: keep both
        entry[0].append(path)
    return list(fp.get_folder_paths(kind))


def output_directory() -> str:
    """ComfyUI's output folder; outside ComfyUI ``$CLEANCUT_OUTPUT_DIR`` or ``./output``."""
    fp = comfy("folder_paths")
    if fp is not None:
        return fp.get_output_directory()
    return os.environ.get("CLEANCUT_OUTPUT_DIR", "output")


def provide_input_files(files: Iterable[str | os.PathLike]) -> list[str]:
    """Copy each file into ComfyUI's input folder where no file of its name is; the names copied.

    The example workflows' Load Image nodes name the pack's sample photos, which a fresh ComfyUI lacks. A file
    already there (the user's, or an earlier copy) is never replaced. Never raises: a read-only input folder
    only logs a warning, and the workflows then say which file is missing. Outside ComfyUI: nothing, ``[]``.
    """
    fp = comfy("folder_paths")
    if fp is None or not hasattr(fp, "get_input_directory"):
        return []
    copied, folder = [], fp.get_input_directory()
    for src in map(os.fspath, files):
        dest = os.path.join(folder, os.path.basename(src))
        try:
            os.makedirs(folder, exist_ok=True)
            with open(src, "rb") as source, open(dest, "xb") as target:  # "x": fails if the name exists, no race
                try:
                    shutil.copyfileobj(source, target)
                except OSError:
                    os.remove(dest)  # ours, half written: leave no broken image behind
                    raise
        except FileExistsError:
            continue
        except OSError as e:
            log.warning("CleanCut: could not copy the sample image %s into ComfyUI's input folder %s (%s); the "
                        "example workflows need it there (see the README).", os.path.basename(src), folder, e)
            continue
        copied.append(os.path.basename(src))
    if copied:
        log.info("CleanCut: copied the example workflows' sample images into %s: %s", folder, ", ".join(copied))
    return copied


def metadata_disabled() -> bool:
    """True when ComfyUI was started with ``--disable-metadata`` (then saved files carry no workflow)."""
    cli = comfy("comfy.cli_args")
    return bool(cli is not None and getattr(cli.args, "disable_metadata", False))
