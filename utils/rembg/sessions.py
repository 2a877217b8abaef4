"""ONNX Runtime sessions for rembg models: imported lazily, created once per key, providers decided here.

``onnxruntime`` is imported on first use, never when ComfyUI loads the pack. The execution providers are
chosen in one place, :func:`default_providers`: CUDA when onnxruntime offers it *and* torch works on a
GPU, else CPU. When torch has a GPU but onnxruntime offers only the CPU, one warning says why (the CPU
``onnxruntime`` wheel shadows ``onnxruntime-gpu``) and how to fix it.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import tempfile
import threading
from pathlib import Path

from .. import runtime
from . import models

log = logging.getLogger("cleancut")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
GPU_FIX = ("pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu  "
           "(with ComfyUI's Python; the CPU wheel 'onnxruntime' and 'onnxruntime-gpu' share one folder, so "
           "whichever was installed last wins)")
MAX_PARALLEL = 4  # concurrent single-image runs on the CPU (each holds its own activations)


def onnxruntime():
    """The ``onnxruntime`` module, imported on first use.

    Raises:
        RuntimeError: it is not installed (rembg itself would ``sys.exit(1)`` here); says what to install.
    """
    try:
        return importlib.import_module("onnxruntime")
    except ImportError as exc:
        raise RuntimeError("onnxruntime is not installed, and rembg models need it. Install one of: "
                           "'pip install onnxruntime-gpu' (NVIDIA GPU) or 'pip install onnxruntime' (CPU), "
                           "with ComfyUI's Python, then restart ComfyUI.") from exc


@functools.cache  # once per process
def _warn_cpu_only_once() -> None:
    log.warning("CleanCut: torch sees a GPU but onnxruntime offers only the CPU, so rembg models run on the "
                "CPU (10-50x slower). Fix: %s.", GPU_FIX)


def default_providers() -> tuple[str, ...]:
    """Execution providers for new sessions: ``(CUDA, CPU)`` when both onnxruntime and torch have a GPU.

    The only place that decides. Torch's view comes from :func:`runtime.compute_device`, so ComfyUI's
    ``--cpu`` keeps rembg on the CPU too. Warns once when torch has a GPU but onnxruntime has no CUDA.
    """
    available = onnxruntime().get_available_providers()
    if runtime.compute_device().type != "cuda":
        return (CPU,)
    if CUDA in available:
        return (CUDA, CPU)
    _warn_cpu_only_once()
    return (CPU,)


_SESSIONS: dict[tuple, tuple[int, object]] = {}  # (file, half, providers) -> (threads, session)
_LOCK = threading.Lock()


def get_session(model: models.Model, providers: tuple[str, ...], threads: int = 0):
    """The ``onnxruntime.InferenceSession`` for ``(model, providers)``, created once and reused.

    One session per model file and providers, whatever the batch: ``threads`` only applies when the session is
    first made, and :func:`plan` then keeps to it (a second session per thread count doubled the memory of
    big models). ``get_session.cache_clear()`` frees them all.

    Args:
        model: a resolved model (:func:`models.resolve`: its file is already found and verified).
        providers: execution providers, normally :func:`default_providers`.
        threads: intra-op threads on the CPU for a new session (0 = onnxruntime's default, one per core).
    Raises:
        RuntimeError: onnxruntime is missing.
    """
    key = (str(model.path), model.spec.half, tuple(providers))  # half: a float16 copy of the same file
    with _LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = (threads, _create(model, key[2], threads))
        return _SESSIONS[key][1]


def session_threads(model: models.Model, providers: tuple[str, ...]) -> int | None:
    """The thread count of the cached session for ``(model, providers)``, or ``None`` when there is none."""
    entry = _SESSIONS.get((str(model.path), model.spec.half, tuple(providers)))
    return None if entry is None else entry[0]


def _clear() -> None:
    with _LOCK:
        _SESSIONS.clear()


get_session.cache_clear = _clear  # the functools spelling callers know


def _create(model: models.Model, providers: tuple[str, ...], threads: int):
    """A new session for the verified file, CPU threads pinned when ``threads`` is set."""
    ort = onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if threads:  # pinned threads must not spin while a sibling run or torch needs the core
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    # flush denormal floats to zero: a few % faster on the CPU, masks unchanged (tests compare with rembg's)
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    provider_list = [(p, {"device_id": runtime.compute_device().index or 0}) if p == CUDA else p
                     for p in providers]
    session = ort.InferenceSession(str(onnx_file(model)), sess_options=opts, providers=provider_list)
    if CUDA in providers and CUDA not in session.get_providers():
        log.warning("CleanCut: onnxruntime could not start CUDA for '%s' (usually missing or mismatched CUDA / "
                    "cuDNN libraries for this onnxruntime-gpu build; see its log above); running on the CPU.",
                    model.name)
    log.info("CleanCut: loaded rembg model %s from %s on %s", model.name, model.path,
             ", ".join(session.get_providers()))
    return session


def onnx_file(model: models.Model) -> Path:
    """The ONNX file onnxruntime loads for ``model``: its own file, or for a half-precision model a float16 copy.

    For birefnet-general-fp16 that is rembg's converted file when there is one (``<rembg home>/models/<name>/``
    or rembg's flat folder; rembg does not checksum it either), else one converted now from the verified
    source as rembg does (``convert_float_to_float16(..., keep_io_types=True)``), saved atomically into
    :func:`default_dir`.

    Raises:
        RuntimeError: the conversion needs onnx and onnxconverter-common, which are not installed.
    """
    s = model.spec
    if not s.half:
        return model.path
    for folder in models.search_dirs(s.name):
        if (folder / s.filename).is_file():
            return folder / s.filename
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError as exc:
        raise RuntimeError(f"rembg model '{s.name}' on the onnxruntime runtime converts {s.source}'s file to float16 "
                           "once, and that needs 'pip install onnx onnxconverter-common', or choose runtime "
                           "'torch'.") from exc
    dest = models.default_dir()
    dest.mkdir(parents=True, exist_ok=True)
    converted = float16.convert_float_to_float16(onnx.load(str(model.path)), keep_io_types=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{s.name}-", suffix=".part", dir=dest)
    os.close(fd)
    try:
        onnx.save(converted, tmp)
        os.replace(tmp, dest / s.filename)  # same folder: atomic, a half-written file is never picked up
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("CleanCut: rembg model %s: %s converted to float16, saved to %s", s.name, model.path, dest / s.filename)
    return dest / s.filename


def run_options():
    """The ``RunOptions`` of every run: the CPU arena hands back what a run used once it ends. An idle session
    otherwise keeps its largest run's activations (u2netp: ~0.3-0.5 GB, held beside a 48 MP photo's
    buffers); measured no slower per run (320 px, 1 and 2 threads)."""
    options = onnxruntime().RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def fixed_batch(session) -> bool:
    """True when the model's input has a fixed batch dimension of 1 (u2netp: ``[1, 3, 320, 320]``)."""
    dim = session.get_inputs()[0].shape[0]
    return isinstance(dim, int) and dim == 1


def plan(model: models.Model, batch: int) -> tuple[tuple[str, ...], int, int]:
    """How to run ``batch`` images of ``model``: ``(providers, parallel runs, threads per run)``.

    On the CPU, small models (320 px) run several images at once, one single-threaded run per core:
    u2netp's convolutions are too small to keep 2+ threads busy, so image-level parallelism does more
    work per second than onnxruntime's intra-op threads. Big models (1024 px) run one image at a time
    with every core. On a GPU, one run at a time. Once a session exists its thread count decides (one
    session per model): a single image after a batch then runs on one core's share.
    """
    providers = default_providers()
    if CUDA in providers or model.spec.size > 320:
        return providers, 1, 0
    cores = runtime.cpu_count()
    threads = session_threads(model, providers)
    if threads is not None:  # a session exists: keep to its threads rather than make a second one
        return providers, (max(1, min(batch, cores // threads, MAX_PARALLEL)) if threads else 1), threads
    parallel = max(1, min(batch, cores, MAX_PARALLEL))
    return providers, parallel, (0 if parallel == 1 else max(1, cores // parallel))
