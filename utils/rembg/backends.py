"""Where the model runs: one backend per model file, runtime, device and dtype; a batch in, output 0 back.

Both runtimes read the same verified ``.onnx`` file (:func:`models.resolve`):

* ``onnxruntime``: an ``InferenceSession`` (:mod:`.sessions`): CUDA with onnxruntime-gpu on NVIDIA, else the
  CPU, where several single-image runs go side by side for small models;
* ``torch``: the graph converted once to a torch module (:mod:`.onnx_torch`) on ComfyUI's device (CUDA,
  ROCm, MPS, XPU or the CPU), whole runs of images as one batch, under ComfyUI's model management.

``auto`` is torch on a GPU and onnxruntime on the CPU, where it measured faster (``benchmarks/bench_rembg.py``);
torch on the CPU too when onnxruntime is not installed. A graph the converter cannot run falls back to
onnxruntime under ``auto`` (one log line naming the model and the operators) and is an error under ``torch``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading

import torch
from torch import Tensor

from .. import runtime
from . import models, sessions

log = logging.getLogger("cleancut")

RUNTIMES = ("auto", "torch", "onnxruntime")
ONNX_RUN_IMAGES = {320: 16, 1024: 2}  # images per onnxruntime run for models whose input takes a batch
# images per torch run; on the CPU one: batched convolutions measured slower per image there (bench_runtime)
TORCH_RUN_IMAGES = {"cpu": {320: 1, 1024: 1}, "gpu": {320: 16, 1024: 4}}
# Peak activation memory of a torch run per input pixel, asked of ComfyUI before each run so it offloads other
# models first: u2netp measured 1.6 KB (float32, peak RSS above the start at batch 1 and 4); rounded up.
ACTIVATION_BYTES_PER_PIXEL = 2048


def choose(requested: str, device: torch.device) -> str:
    """The runtime for ``requested`` (one of :data:`RUNTIMES`) on ``device``: the one place that decides."""
    if requested != "auto":
        return requested
    if device.type != "cpu":
        return "torch"
    return "onnxruntime" if _installed("onnxruntime") else "torch"


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module blocked or half-installed
        return False


class OnnxBackend:
    """An onnxruntime session for the model; ``parallel`` single-image runs side by side on the CPU."""

    runtime = "onnxruntime"

    def __init__(self, model: models.Model, batch: int):
        providers, self.parallel, threads = sessions.plan(model, batch)
        self.session = sessions.get_session(model, providers, threads)
        self._input = self.session.get_inputs()[0].name
        self._shrink = sessions.run_options()
        fixed = sessions.fixed_batch(self.session) or self.parallel > 1
        self.per_run = 1 if fixed else ONNX_RUN_IMAGES.get(model.spec.size, 1)

    def __call__(self, x: Tensor, shrink: bool = False) -> Tensor:
        """``x`` ``[b, 3, S, S]`` float32 -> output 0, channel 0, ``[b, S, S]`` float32 on the CPU; with ``shrink``
        the CPU arena hands back what the run used (for huge photos: measured 25 % slower per u2netp run with
        two runs side by side, so not for every run)."""
        options = self._shrink if shrink else None
        return torch.from_numpy(self.session.run(None, {self._input: x.cpu().numpy()}, options)[0][:, 0])


def torch_dtype(model: models.Model, device: torch.device) -> torch.dtype:
    """float32, except a half-precision model (birefnet-general-fp16) on a GPU."""
    half = getattr(model.spec, "half", False)
    return torch.float16 if half and device.type != "cpu" else torch.float32


class TorchBackend:
    """The model's graph as a torch module on the compute device: a run of images is one batch there."""

    runtime = "torch"
    parallel = 1

    def __init__(self, model: models.Model, device: torch.device):
        self.device, self.dtype = device, torch_dtype(model, device)
        self.managed = _managed(str(model.path), model.name, device, self.dtype)
        kind = "cpu" if device.type == "cpu" else "gpu"
        self.per_run = TORCH_RUN_IMAGES[kind].get(model.spec.size, 1)

    def __call__(self, x: Tensor, shrink: bool = False) -> Tensor:
        """``x`` ``[b, 3, S, S]`` float32 -> output 0, channel 0, ``[b, S, S]`` float32 on the compute device
        (``shrink``: onnxruntime's; torch's allocator is ComfyUI's to manage)."""
        self.managed.ready(x.shape[0] * x.shape[2] * x.shape[3] * ACTIVATION_BYTES_PER_PIXEL)
        with torch.no_grad():  # not inference_mode: callers may update the masks in place afterwards
            out = self.managed.module(x.to(self.device, self.dtype, non_blocking=True))
        return out[:, 0].to(torch.float32)


_MODULES: dict[tuple[str, str, torch.dtype], runtime.ManagedModule] = {}
_LOCK = threading.Lock()


def _managed(path: str, name: str, device: torch.device, dtype: torch.dtype) -> runtime.ManagedModule:
    """The converted module for ``(file, device, dtype)``, converted once and kept (:func:`clear` frees it)."""
    from . import onnx_torch  # the onnx package is needed on this path only

    key = (path, str(device), dtype)
    with _LOCK:
        if key not in _MODULES:
            module = onnx_torch.convert(path, dtype=dtype).eval()
            _MODULES[key] = runtime.ManagedModule(module, device)
            log.info("CleanCut: rembg model %s converted to torch (%s) on %s", name, dtype, device)
        return _MODULES[key]


def clear() -> None:
    """Free every cached torch module and onnxruntime session."""
    with _LOCK:
        _MODULES.clear()
    sessions.get_session.cache_clear()


@functools.cache  # once per model and operators: the fallback is said, not repeated on every run
def _say_fallback(name: str, operators: tuple[str, ...]) -> None:
    log.warning("CleanCut: rembg model %s runs on onnxruntime: its graph uses %s, which the torch runtime "
                "cannot convert", name, ", ".join(operators))


def get(model: models.Model, requested: str = "auto", batch: int = 1):
    """The backend for ``model`` under the runtime ``requested`` (:data:`RUNTIMES`), for runs of ``batch`` images.

    Raises:
        RuntimeError: ``torch`` was asked for a graph the converter cannot run (the message names the
            operators and says to choose ``onnxruntime``), or the chosen runtime is not installed.
    """
    device = runtime.compute_device()
    if choose(requested, device) == "torch":
        from .onnx_torch import UnsupportedOperator

        try:
            return TorchBackend(model, device)
        except UnsupportedOperator as exc:
            if requested == "torch":
                raise RuntimeError(f"rembg model '{model.name}' cannot run on the torch runtime: its graph uses "
                                   f"{', '.join(exc.operators)}, which the converter lacks. Choose runtime "
                                   "'onnxruntime' for this model.") from exc
            _say_fallback(model.name, tuple(exc.operators))
    return OnnxBackend(model, batch)
