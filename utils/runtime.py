"""The only adapter to ComfyUI: compute device, chunking, progress, cancel, folders.

Every ComfyUI module is optional: outside ComfyUI (tests, the CLI) each service falls back to plain
behaviour (CUDA if torch sees it, no progress bar, no cancel, folders given by the caller).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from functools import cache

import torch
from torch import Tensor

log = logging.getLogger("cleancut")

BACKENDS = ("auto", "torch", "opencv")
BACKEND_ENV = "CLEANCUT_BACKEND"  # force "torch" or "opencv" for every node, e.g. to test both paths
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


class Progress:
    """ComfyUI's node progress bar when available; otherwise it only counts."""

    def __init__(self, total: int):
        self.total, self.done = total, 0
        cu = comfy("comfy.utils")
        self._bar = cu.ProgressBar(total) if cu is not None and hasattr(cu, "ProgressBar") else None

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        if self._bar is not None:
            self._bar.update_absolute(self.done, self.total)


def pick_backend(device: torch.device, requested: str = "auto") -> str:
    """``"opencv"`` on the CPU (faster there), ``"torch"`` elsewhere; ``requested`` or the env var can force one."""
    choice = requested if requested != "auto" else os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(f"backend: {choice!r} is not one of {', '.join(BACKENDS)} (check ${BACKEND_ENV}).")
    if choice == "auto":
        choice = "opencv" if device.type == "cpu" else "torch"
    log.debug("CleanCut: %s backend on %s", choice, device)  # said in the log, never in the result
    return choice


def chunk_size(image: Tensor, pixels: int | None = None) -> int:
    """Images per chunk so that one chunk holds about ``pixels`` (default ``PIXELS_PER_CHUNK``), at least one."""
    return max(1, (pixels or PIXELS_PER_CHUNK) // max(1, image.shape[1] * image.shape[2]))


def map_batches(image: Tensor, fn: Callable[..., Tensor], *, chunk: int | None = None,
                device: torch.device | None = None, **params) -> Tensor:
    """Apply ``fn`` chunk by chunk on the compute device into a preallocated output on ``image.device``.

    ``fn`` takes a ``[b,H,W,C]`` chunk and returns a tensor of the same shape. Order is kept; the
    progress bar advances and Cancel is honoured between chunks. Peak memory is the output plus one
    chunk's working set, whatever the batch size.
    """
    device = compute_device() if device is None else device
    step = chunk or chunk_size(image)
    if step >= image.shape[0]:  # one chunk: no preallocated copy needed
        raise_if_cancelled()
        result = fn(image.to(device, non_blocking=True), **params).to(image.device)
        Progress(image.shape[0]).update(image.shape[0])
        return result
    out = torch.empty_like(image)
    progress = Progress(image.shape[0])
    for start in range(0, image.shape[0], step):
        raise_if_cancelled()
        part = image[start:start + step]
        out[start:start + part.shape[0]] = fn(part.to(device, non_blocking=True), **params)
        progress.update(part.shape[0])
    return out


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


def metadata_disabled() -> bool:
    """True when ComfyUI was started with ``--disable-metadata`` (then saved files carry no workflow)."""
    cli = comfy("comfy.cli_args")
    return bool(cli is not None and getattr(cli.args, "disable_metadata", False))
