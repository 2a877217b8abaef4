"""rembg's background removal for a whole IMAGE batch: rembg's numbers, batched tensor pre/post-processing.

Per image, ``rembg.remove(img, session=new_session(model), ...)`` does:

1. ``img.convert("RGB").resize((S, S), LANCZOS)`` on 8 bits, divide by the image's own maximum,
   subtract ``mean`` and divide by ``std`` (float64, then float32) -> model input ``[1, 3, S, S]``;
2. model output 0 channel 0 (BiRefNet: through a sigmoid), min-max normalised per image, times 255,
   truncated to uint8, resized back to the photo's size with LANCZOS on 8 bits -> the mask;
3. optionally ``post_process``: grey opening with a 3x3 cross, Gaussian blur (sigma 2), threshold at 127;
4. cut-out: alpha matting, or the mask as alpha; the mask alone for ``only_mask``; a background colour.

Steps 1-2 here are tensor ops over the batch on the compute device (``lanczos`` reproduces Pillow's
8-bit resize exactly), step 3 too on a GPU (OpenCV per image on the CPU, where it is faster); the model
runs per image where its input has a fixed batch of 1 (u2netp), several images at once on the CPU
(``sessions.plan``). Alpha matting is in ``matting``.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import lanczos, matting, models, runtime, sessions
from .checks import check_choice, check_image, check_number

BACKGROUNDS = {"transparent": None, "white": 1.0, "black": 0.0}
EDGES = ("rembg", "straight")  # the cut-out's colours on soft edges without matting (see remove_background)
BLUR_RADIUS, BLUR_SIGMA = 8, 2.0  # rembg's post_process: gaussian_filter(sigma=2), radius int(4 * 2 + 0.5)
RUN_IMAGES = {320: 16, 1024: 2}  # images per run for models whose input takes a batch (not u2netp)
CHUNK_PIXELS = 32 * 320 * 320  # model-input pixels prepared at once: 32 images at 320 px (13 MB)


def uint8_values(image: Tensor) -> Tensor:
    """IMAGE ``[B,H,W,C]`` 0..1 -> float32 holding the rounded 8-bit values 0..255 (what rembg receives)."""
    return image.to(torch.float32).clamp(0, 1).mul_(255.0).round_()


def model_input(images: Tensor, spec: models.ModelSpec) -> Tensor:
    """rembg's ``normalize`` for a batch: IMAGE ``[b,H,W,C]`` (0..1) -> ``[b,3,S,S]`` float32 model input.

    The image is rounded to 8 bits (what rembg receives), resized as Pillow does, divided by its own
    maximum, then ``(x - mean) / std`` in float64 and cast to float32, as rembg.
    """
    small = lanczos.resize_uint8(images[..., :3], spec.size, spec.size, unit=True).to(torch.float64)
    peak = small.amax(dim=(1, 2, 3), keepdim=True).clamp_min_(1e-6)  # each image's own maximum
    mean = torch.tensor(spec.mean, dtype=torch.float64, device=small.device)
    std = torch.tensor(spec.std, dtype=torch.float64, device=small.device)
    return small.div_(peak).sub_(mean).div_(std).permute(0, 3, 1, 2).to(torch.float32).contiguous()


def mask_from_output(pred: Tensor, spec: models.ModelSpec, height: int, width: int) -> Tensor:
    """Model output ``[b,S,S]`` (float32) -> mask ``[b,height,width]`` of 8-bit values, as rembg's ``predict``."""
    pred = pred.to(torch.float32)
    if spec.sigmoid:
        pred = 1 / (1 + torch.exp(-pred))  # rembg's formula, float32
    lo = pred.amin(dim=(1, 2), keepdim=True)
    span = pred.amax(dim=(1, 2), keepdim=True) - lo
    # a constant output (span 0) gives NaN in rembg, which uint8 turns into 0: an empty mask here too
    norm = torch.where(span > 0, (pred - lo) / span.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
    mask8 = norm.clamp_(0, 1).mul_(255).trunc_()  # numpy's astype(uint8) truncates
    return lanczos.resize_uint8(mask8, height, width)


def _symmetric_index(n: int, radius: int, device) -> Tensor:
    """Indices padding an axis of length ``n`` by ``radius`` as scipy's mode='reflect' (``dcba|abcd|dcba``)."""
    i = torch.arange(-radius, n + radius, device=device)
    period = 2 * n
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - 1 - i, i)


def _cross(x: Tensor, op) -> Tensor:
    """Min or max over the 3x3 cross (skimage's disk(1)); borders replicate (skimage's 'reflect' at radius 1)."""
    p = F.pad(x.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    out = op(p[:, 1:-1, 1:-1], p[:, :-2, 1:-1])
    out = op(out, p[:, 2:, 1:-1])
    out = op(out, p[:, 1:-1, :-2])
    return op(out, p[:, 1:-1, 2:])


def post_process(mask8: Tensor, out: Tensor | None = None, value: float = 255.0) -> Tensor:
    """rembg's ``post_process`` for a batch ``[b,H,W]`` of 8-bit values -> binary masks (0 or ``value``).

    Grey opening with a 3x3 cross (skimage ``opening(mask, disk(1))``), Gaussian blur (scipy
    ``gaussian_filter(sigma=2)``: radius 8, mode 'reflect'), then ``< 127 -> 0`` else 255 (``value``: 1
    gives the mask in 0..1 without another pass). OpenCV on the CPU (one image at a time, several times
    faster there), torch on a GPU. Written into ``out`` (float32 ``[b,H,W]``, contiguous) when given.
    """
    if out is None:
        out = torch.empty(mask8.shape, dtype=torch.float32, device=mask8.device)
    if runtime.pick_backend(mask8.device) == "opencv":
        import cv2

        cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        # float32 compare: x > (the largest float32 below 127) is x >= 127, i.e. not (x < 127)
        below = float(np.nextafter(np.float32(127), np.float32(0)))
        for m, o in zip(mask8.to(torch.uint8).numpy(), out.numpy(), strict=True):
            opened = cv2.morphologyEx(m, cv2.MORPH_OPEN, cross, borderType=cv2.BORDER_REPLICATE)
            blurred = cv2.GaussianBlur(opened.astype(np.float32), (2 * BLUR_RADIUS + 1,) * 2, BLUR_SIGMA,
                                       sigmaY=BLUR_SIGMA, borderType=cv2.BORDER_REFLECT)
            cv2.threshold(blurred, below, value, cv2.THRESH_BINARY, dst=o)  # written in place
        return out
    opened = _cross(_cross(mask8, torch.minimum), torch.maximum)
    x = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 / BLUR_SIGMA ** 2 * x ** 2)
    kernel = (kernel / kernel.sum()).to(mask8.device, torch.float32)
    h, w = opened.shape[1:]
    img = opened.to(torch.float32).unsqueeze(1)  # [b,1,H,W]
    img = F.conv2d(img.index_select(2, _symmetric_index(h, BLUR_RADIUS, img.device)), kernel.view(1, 1, -1, 1))
    img = F.conv2d(img.index_select(3, _symmetric_index(w, BLUR_RADIUS, img.device)), kernel.view(1, 1, 1, -1))
    return out.copy_(img.squeeze(1) >= 127).mul_(value)  # rembg: < 127 -> 0, else 255


def iter_masks(images: Tensor, model: str, progress: runtime.Progress | None = None,
               chunk_pixels: int = CHUNK_PIXELS) -> Iterator[tuple[int, Tensor]]:
    """rembg masks for an IMAGE batch, chunk by chunk: ``(start, [b,H,W] float32 of 8-bit values)``.

    Per chunk: all model inputs are prepared, then every run is queued at once (per image where the
    model's input has a fixed batch of 1, like u2netp; several images per run where it takes a batch),
    so the ``sessions.plan`` workers never wait for each other; then the masks are made. Cancel is
    honoured and the progress bar advances per run. Torch ops never overlap the runs: its OpenMP
    threads spin after each op and would take the cores from onnxruntime (measured 20% slower).
    """
    spec = models.spec(model)
    providers, parallel, threads = sessions.plan(model, images.shape[0])
    session = sessions.get_session(model, providers, threads)
    input_name = session.get_inputs()[0].name
    device = runtime.compute_device()
    n, h, w = images.shape[:3]
    per_run = 1 if sessions.fixed_batch(session) or parallel > 1 else RUN_IMAGES.get(spec.size, 1)
    chunk = max(per_run, parallel, chunk_pixels // (spec.size * spec.size))

    def infer(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {input_name: x.numpy()})[0][:, 0])  # [b,S,S]

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for start in range(0, n, chunk):
            runtime.raise_if_cancelled()
            x = model_input(images[start:start + chunk].to(device), spec).cpu()
            runs = [pool.submit(infer, x[i:i + per_run]) for i in range(0, x.shape[0], per_run)]
            preds = []
            try:
                for run in runs:
                    runtime.raise_if_cancelled()
                    preds.append(run.result())
                    if progress is not None:
                        progress.update(per_run)
            except BaseException:
                for run in runs:
                    run.cancel()  # queued runs are dropped; the pool waits for the running ones
                raise
            yield start, mask_from_output(torch.cat(preds).to(device), spec, h, w)


def check_settings(images: Tensor, model: str, foreground_threshold: int, background_threshold: int,
                   erode_size: int, background: str, original: Tensor | None, edges: str = "rembg") -> None:
    """``ValueError`` naming the input for anything rembg would choke on (or silently ignore)."""
    check_image(images, "images")
    check_choice(model, "model", models.MODEL_NAMES)
    check_number(foreground_threshold, "alpha_matting_foreground_threshold", 0, 255, integer=True)
    check_number(background_threshold, "alpha_matting_background_threshold", 0, 255, integer=True)
    check_number(erode_size, "alpha_matting_erode_size", 0, 40, integer=True)
    check_choice(background, "background", BACKGROUNDS)
    check_choice(edges, "edges", EDGES)
    if original is not None:
        check_image(original, "original")
        if tuple(original.shape[1:3]) != tuple(images.shape[1:3]) or original.shape[0] not in (1, images.shape[0]):
            raise ValueError(f"original: {original.shape[0]} image(s) of {original.shape[2]}x{original.shape[1]} "
                             f"do not match images ({images.shape[0]} of {images.shape[2]}x{images.shape[1]}); "
                             "connect the same images before preprocessing (same size and count, or one).")


def remove_background(images: Tensor, model: str = "u2netp", alpha_matting: bool = False,
                      alpha_matting_foreground_threshold: int = 240,
                      alpha_matting_background_threshold: int = 10, alpha_matting_erode_size: int = 10,
                      only_mask: bool = False, post_process_mask: bool = False, background: str = "transparent",
                      original: Tensor | None = None, edges: str = "rembg") -> tuple[Tensor, Tensor, Tensor]:
    """rembg's ``remove`` with the same options, for a whole IMAGE batch.

    Args:
        images: IMAGE ``[B,H,W,3|4]`` in 0..1; an alpha channel is multiplied into the result's alpha.
        model: a rembg model name (:data:`models.MODEL_NAMES`).
        alpha_matting: refine the edge with closed-form matting (rembg's ``alpha_matting_cutout``).
        alpha_matting_foreground_threshold: mask values (0..255) above this are sure subject.
        alpha_matting_background_threshold: mask values below this are sure background.
        alpha_matting_erode_size: side in pixels of the square that erodes both sure regions.
        only_mask: the cut-out is the mask (as rembg, matting is then not applied).
        post_process_mask: rembg's morphological smoothing, which also makes the mask binary.
        background: "transparent" (RGBA cut-out), "white" or "black" (RGB composited on that colour).
        original: IMAGE ``[B or 1,H,W,C]`` whose pixels fill ``extracted``; ``images`` when ``None``.
        edges: the cut-out's colours without matting (see :data:`EDGES`): "rembg" = rembg's pixels, the
            photo times the mask (then blended with the mask again onto a colour); "straight" = the photo's
            own colours under straight alpha, blended once onto a colour.
    Returns:
        ``(cutout, mask, extracted)`` on ``images.device`` in ``images.dtype``: cutout ``[B,H,W,4]`` (RGBA)
        or ``[B,H,W,3]`` (a colour background, or the mask for ``only_mask``); mask ``[B,H,W]``, 1 = subject,
        soft; extracted ``[B,H,W,4]``: ``original`` with the post-processed binary mask as alpha.
    """
    check_settings(images, model, alpha_matting_foreground_threshold, alpha_matting_background_threshold,
                   alpha_matting_erode_size, background, original, edges)
    sessions.onnxruntime()  # a clear RuntimeError before any work when onnxruntime is missing
    n, h, w = images.shape[:3]
    refine = alpha_matting and not only_mask
    progress = runtime.Progress(n * (2 if refine else 1))
    device = runtime.compute_device()
    colour = BACKGROUNDS[background]
    source = images if original is None else original.expand(n, -1, -1, -1)
    alpha = torch.empty((n, h, w), device=device)  # the mask in 0..1
    keep = torch.empty((n, h, w), device=device)  # extracted's alpha: rembg's post-processed mask, 0 or 1
    cutout = torch.empty((n, h, w, 4 if colour is None and not only_mask else 3), device=device)
    extracted = torch.empty((n, h, w, 4), device=device)

    def compose(part: slice, fg: Tensor | None = None) -> None:
        """Write the outputs of images ``part``; one image at a time on the CPU, to stay in cache."""
        step = 1 if device.type == "cpu" else n
        for i in range(part.start, part.stop, step):
            one = slice(i, min(i + step, part.stop))
            a = alpha[one].unsqueeze(-1)
            if images.shape[-1] == 4 and not only_mask:
                a.mul_(images[one, ..., 3:].to(device).clamp(0, 1))  # transparent input stays transparent
            # the photo's pixels: the cut-out's colours (no matting) and extracted's (no original)
            needs_photo = original is None or (fg is None and not only_mask)
            photo = images[one, ..., :3].to(device).clamp(0, 1) if needs_photo else None
            if only_mask:
                cutout[one] = a
            else:
                rgb = photo if fg is None else fg[one.start - part.start:one.stop - part.start].clamp(0, 1)
                if fg is None and edges == "rembg":
                    rgb = rgb * a  # rembg's naive cut-out: colour x mask (matting estimates the colour instead)
                if colour is None:
                    cutout[one, ..., :3], cutout[one, ..., 3:] = rgb, a
                else:  # rembg: alpha_composite of that cut-out over an opaque colour
                    cutout[one] = (rgb - colour).mul_(a).add_(colour)
            extracted[one, ..., :3] = photo if original is None else source[one, ..., :3].to(device).clamp(0, 1)
            extracted[one, ..., 3] = keep[one]

    # Without matting each group is finished as it comes. With it, each group's matting starts at once,
    # alongside the inference of the next groups.
    pool = ThreadPoolExecutor(max_workers=matting.workers(n)) if refine else None
    jobs = []
    try:
        # small chunks when matting: the first images' matting then starts while the others' models run
        for start, mask8 in iter_masks(images, model, progress, chunk_pixels=1 if refine else CHUNK_PIXELS):
            part = slice(start, start + mask8.shape[0])
            post_process(mask8, out=keep[part], value=1.0)
            if post_process_mask:
                alpha[part] = keep[part]
            else:
                torch.div(mask8, 255.0, out=alpha[part])
            if refine:
                rgb8 = uint8_values(images[part, ..., :3].to(device))
                to_matte = keep[part] * 255.0 if post_process_mask else mask8  # rembg mattes what it would show
                jobs += matting.submit(pool, rgb8, to_matte, alpha_matting_foreground_threshold,
                                       alpha_matting_background_threshold, alpha_matting_erode_size)
            else:
                compose(part)
        if refine:
            matted, fg = torch.empty((n, h, w)), torch.empty((n, h, w, 3))
            matting.collect(jobs, matted, fg, progress)
            alpha.copy_(matted)
            compose(slice(0, n), fg.to(device))
    finally:
        if pool is not None:
            for job in jobs:
                job.cancel()
            pool.shutdown(wait=True)
    return tuple(t.to(images.device, images.dtype) for t in (cutout, alpha, extracted))
