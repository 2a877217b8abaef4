"""rembg's model step for a batch: the model input, the runs, and the mask back at the photo's size.

Per image, ``rembg.remove(img, session=new_session(model), ...)`` does:

1. ``img.convert("RGB").resize((S, S), LANCZOS)`` on 8 bits, divide by the image's own maximum,
   subtract ``mean`` and divide by ``std`` (float64, then float32) -> model input ``[1, 3, S, S]``;
2. model output 0 channel 0 (BiRefNet: through a sigmoid), min-max normalised per image, times 255,
   truncated to uint8, resized back to the photo's size with LANCZOS on 8 bits -> the mask.

Both are tensor ops over the batch on the compute device (``resample`` reproduces Pillow's 8-bit resize
exactly). The model runs in the backend :mod:`.backends` gives (onnxruntime or torch), a run of images
at a time; the masks stay on the compute device from the photo to the mask.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from .. import runtime
from . import backends, models, resample


def uint8_values(image: Tensor) -> Tensor:
    """IMAGE ``[B, H, W, C]`` 0..1 -> float32 holding the rounded 8-bit values 0..255 (what rembg receives)."""
    return image.to(torch.float32).clamp(0, 1).mul_(255.0).round_()


def model_input(images: Tensor, spec: models.ModelSpec) -> Tensor:
    """rembg's ``normalize`` for a batch: IMAGE ``[b, H, W, C]`` (0..1) -> ``[b, 3, S, S]`` float32 model input.

    The image is rounded to 8 bits (what rembg receives), resized as Pillow does, divided by its own
    maximum, then ``(x - mean) / std`` in float64 and cast to float32, as rembg. On a device without float64
    (MPS) this runs on the CPU and the model input goes to the device.
    """
    exact = resample.exact_device(images.device)
    if exact != images.device:
        return model_input(images.to(exact), spec).to(images.device)
    small = resample.resize_uint8(images[..., :3], spec.size, spec.size, unit=True).to(torch.float64)
    peak = small.amax(dim=(1, 2, 3), keepdim=True).clamp_min_(1e-6)  # each image's own maximum
    mean = torch.tensor(spec.mean, dtype=torch.float64, device=small.device)
    std = torch.tensor(spec.std, dtype=torch.float64, device=small.device)
    return small.div_(peak).sub_(mean).div_(std).permute(0, 3, 1, 2).to(torch.float32).contiguous()


def mask_from_output(pred: Tensor, spec: models.ModelSpec, height: int, width: int) -> Tensor:
    """Model output ``[b, S, S]`` (float32) -> mask ``[b, height, width]`` of 8-bit values, as rembg's ``predict``."""
    pred = pred.to(torch.float32)
    if spec.sigmoid:
        pred = 1 / (1 + torch.exp(-pred))  # rembg's formula, float32
    lo = pred.amin(dim=(1, 2), keepdim=True)
    span = pred.amax(dim=(1, 2), keepdim=True) - lo
    # a constant output (span 0) gives NaN in rembg, which uint8 turns into 0: an empty mask here too
    norm = torch.where(span > 0, (pred - lo) / span.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
    mask8 = norm.clamp_(0, 1).mul_(255).trunc_()  # numpy's astype(uint8) truncates
    return resample.resize_uint8(mask8, height, width)


SHRINK_PIXELS = 16_000_000  # photos this large hand the model's working memory back after each run


class Predictor:
    """A model resolved once, its backend, and rembg's masks of chunks: ``masks(chunk)``.

    Use as a context manager: it owns the threads that run several single-image onnxruntime runs side by
    side on the CPU. Torch ops never overlap those runs: its OpenMP threads spin after each op and would
    take the cores from onnxruntime (measured 20 % slower).
    """

    def __init__(self, model: str, batch: int, runtime_choice: str = "auto", model_file: str = ""):
        self.model = models.resolve(model, model_file)  # model_file: the *_custom models' own file
        self.spec = self.model.spec
        self.backend = backends.get(self.model, runtime_choice, batch)
        self.parallel, self.per_run = self.backend.parallel, self.backend.per_run
        self._pool = ThreadPoolExecutor(max_workers=self.parallel) if self.parallel > 1 else None

    @property
    def chunk(self) -> int:
        """Images per chunk: one round of runs, so the progress bar moves every round."""
        return max(self.per_run, self.parallel)

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _runs(self, x: Tensor, shrink: bool):
        """Each run's output ``[b, S, S]``, in order: futures of the thread pool, or runs made when asked for."""
        parts = [x[i:i + self.per_run] for i in range(0, x.shape[0], self.per_run)]
        if self._pool is None:
            return [functools.partial(self.backend, part, shrink) for part in parts], None
        futures = [self._pool.submit(self.backend, part, shrink) for part in parts]
        return [future.result for future in futures], futures

    def masks(self, images: Tensor, progress: runtime.Progress | None = None) -> Tensor:
        """rembg's masks of ``images`` ``[b, H, W, C]``: ``[b, H, W]`` float32 of 8-bit values, on ``images.device``.

        Cancel is honoured before each run's result, and ``progress`` advances per run.
        """
        x = model_input(images, self.spec)
        # a huge photo's buffers should not sit beside the model's idle arena (~0.3-0.5 GB for u2netp)
        runs, futures = self._runs(x, images.shape[1] * images.shape[2] >= SHRINK_PIXELS)
        preds = []
        try:
            for i, result in enumerate(runs):
                runtime.raise_if_cancelled()
                preds.append(result())
                if progress is not None:
                    progress.update(min(self.per_run, x.shape[0] - i * self.per_run))
        except BaseException:
            for future in futures or ():
                future.cancel()  # queued runs are dropped; the pool waits for the running ones
            raise
        return mask_from_output(torch.cat(preds).to(images.device), self.spec, *images.shape[1:3])
