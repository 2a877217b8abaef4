"""Fixed-threshold cut-out: WAS Node Suite's "Image Remove Background (Alpha)", batched and exact.

WAS's algorithm, step for step, on 8-bit values: RGB truncated to 8 bits (WAS's ``tensor2pil``), grey
by PIL's ``convert('L')`` integer formula, inverted in ``background`` mode, Pillow's
``GaussianBlur(radius=threshold_tolerance)``, pixels whose blurred grey is below the threshold kept.
Pillow's GaussianBlur is not a true Gaussian but three "extended box" passes along x, then three along
y, each in 24-bit fixed point rounded to 8 bits (``src/libImaging/BoxBlur.c``). Both backends give
WAS's alpha on every pixel (measured 100%; a true Gaussian agrees on 99.9%):

* ``"torch"`` (any device, the GPU path): batched, the box passes as int64 cumulative sums.
* ``"native"`` (the CPU path): image by image in threads, WAS's own Pillow calls on 8-bit planes
  (a loop forced by Pillow, which releases the GIL) and OpenCV to interleave RGB and alpha. OpenCV
  has no exact equivalent of the blur: its weighted sums of int32 images run in float32, and its exact
  float64 route is twice as slow as Pillow's C loop. The gain over WAS is everything around the blur.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from torch import Tensor

from . import runtime
from .checks import check_choice, check_flag, check_image, check_number

MODES = ("background", "foreground")
PASSES = 3  # Pillow's GaussianBlur default
_LUMA = (19595, 38470, 7471)  # PIL convert('L'): L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16


def pil_box_radius(radius: float, passes: int = PASSES) -> float:
    """Pillow's ``_gaussian_blur_radius``: the fractional box radius for a Gaussian radius (sigma).

    Replays the C code's float32 and double steps, so the weights below match Pillow's exactly.
    """
    f = np.float32
    sigma2 = f(radius) * f(radius) / f(passes)
    big_l = f(math.sqrt(12.0 * float(sigma2) + 1.0))  # computed in double, stored in a float
    small_l = f(math.floor((float(big_l) - 1.0) / 2.0))
    a = (f(2) * small_l + f(1)) * (small_l * (small_l + f(1)) - f(3) * sigma2)
    a = a / (f(6) * (sigma2 - (small_l + f(1)) * (small_l + f(1))))
    return float(small_l + a)


def pil_box_weights(box_radius: float) -> tuple[int, int, int]:
    """``(r, ww, fw)`` of one Pillow box pass: integer radius, 24-bit inner and far-pixel weights.

    One pass maps a row ``p`` (edges replicated) to
    ``(ww * sum(p[x-r .. x+r]) + fw * (p[x-r-1] + p[x+r+1]) + 2**23) >> 24``.
    """
    r = int(box_radius)
    ww = int(np.float32(1 << 24) / (np.float32(box_radius) * np.float32(2) + np.float32(1)))
    return r, ww, ((1 << 24) - (2 * r + 1) * ww) // 2


def was_grey(image: Tensor) -> Tensor:
    """8-bit grey exactly as WAS gets it: ``tensor2pil`` truncation, then PIL's ``convert('L')``.

    Args:
        image: pixels ``[..., C]`` (an IMAGE batch or rows of one), C = 3 or 4; alpha is ignored, as
            ``convert("L")`` does.
    Returns:
        uint8 ``[...]`` (the channel dim dropped) on ``image.device``.
    """
    q = was_quantise(image[..., :3])
    # Float32 is exact here: every product and partial sum is an integer below 2**24. Elementwise on
    # purpose: a matmul may run in TF32 on the GPU, which is not exact.
    acc = q[..., 0] * _LUMA[0]
    acc.add_(q[..., 1], alpha=_LUMA[1]).add_(q[..., 2], alpha=_LUMA[2]).add_(0x8000)
    return acc.mul_(1.0 / 65536).floor_().to(torch.uint8)  # >> 16


def was_quantise(rgb: Tensor) -> Tensor:
    """WAS's ``np.clip(255. * t, 0, 255).astype(np.uint8)`` (a truncation) as float32 levels 0..255."""
    return rgb.to(torch.float32).mul(255.0).clamp_(0, 255).floor_()


def _box_pass(x: Tensor, r: int, ww: int, fw: int) -> Tensor:
    """One Pillow box pass along the last dim of int64 ``[N, L]`` rows, edges replicated."""
    n = x.shape[1]
    p = torch.cat([x[:, :1].expand(-1, r + 1), x, x[:, -1:].expand(-1, r + 1)], 1)  # [N, L + 2r + 2]
    c = torch.nn.functional.pad(p.cumsum(1), (1, 0))  # c[:, i] = p[:, :i].sum(1)
    inner = c[:, 2 * r + 2:2 * r + 2 + n] - c[:, 1:1 + n]  # positions x-r .. x+r (padded x+1 .. x+2r+1)
    far = p[:, :n] + p[:, 2 * r + 2:]  # positions x-r-1 and x+r+1
    return (inner * ww + far * fw + (1 << 23)) >> 24  # int64: the products reach 2**32


def _blur_torch(grey: Tensor, radius: int) -> Tensor:
    """Pillow's GaussianBlur on uint8 ``[B, H, W]`` with torch ops: 3 passes along x, then 3 along y."""
    r, ww, fw = pil_box_weights(pil_box_radius(radius))
    b, h, w = grey.shape
    x = grey.to(torch.int64).reshape(b * h, w)
    for _ in range(PASSES):
        x = _box_pass(x, r, ww, fw)
    x = x.reshape(b, h, w).transpose(1, 2).reshape(b * w, h)  # columns as rows, as Pillow transposes
    for _ in range(PASSES):
        x = _box_pass(x, r, ww, fw)
    return x.reshape(b, w, h).transpose(1, 2).to(torch.uint8)


def _thread_map(fn, n: int, pixels: int) -> None:
    """``fn(i)`` for ``i < n`` images of ``pixels`` pixels in threads (Pillow, NumPy, OpenCV drop the GIL).

    Up to ``torch.get_num_threads()`` threads, fewer for big images: each holds ~30 bytes of
    temporaries per pixel, so all of them together stay near 4 chunks' worth of pixels.
    """
    workers = max(1, min(n, torch.get_num_threads(), 4 * runtime.PIXELS_PER_CHUNK // max(1, pixels)))
    if workers == 1:
        for i in range(n):
            fn(i)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, range(n)))  # list(): re-raises a worker's exception here


def pil_gaussian_blur(grey: Tensor, radius: int, backend: str = "auto") -> Tensor:
    """Pillow's ``GaussianBlur(radius)`` on a batch of 8-bit grey planes, bit for bit.

    Args:
        grey: uint8 ``[B, H, W]``, any size (edges are replicated, as Pillow does).
        radius: Pillow's radius (its sigma), >= 0.
        backend: ``"torch"``, ``"native"`` (Pillow itself, image by image) or ``"auto"``.
    Returns:
        uint8 ``[B, H, W]`` on ``grey.device``.
    """
    if runtime.pick_backend(grey.device, backend) == "torch":
        return _blur_torch(grey, radius)
    planes = grey.cpu().numpy()
    out = np.empty_like(planes)

    def blur(i: int) -> None:
        out[i] = np.asarray(Image.fromarray(planes[i], "L").filter(ImageFilter.GaussianBlur(radius=radius)))

    _thread_map(blur, planes.shape[0], planes.shape[1] * planes.shape[2])
    return torch.from_numpy(out).to(grey.device)


@dataclass(frozen=True)
class ThresholdOptions:
    """WAS's widgets, by keyword: what :func:`alpha_threshold` cuts with."""

    mode: str = "background"  # background: keep blurred grey above threshold; foreground: below
    threshold: int = 127  # 0..255 on WAS's 8-bit grey scale
    threshold_tolerance: int = 2  # 1..24: Pillow GaussianBlur radius applied before the cut
    legacy_alternating: bool = False  # WAS's batch output byte for byte, its alternating-threshold bug included

    def check(self) -> None:
        check_choice(self.mode, "mode", MODES)
        check_number(self.threshold, "threshold", low=0, high=255, integer=True)
        check_number(self.threshold_tolerance, "threshold_tolerance", low=1, high=24, integer=True)
        check_flag(self.legacy_alternating, "legacy_alternating")

    def cuts(self, first_index: int, b: int) -> list[int]:
        """The threshold WAS applies to each of ``b`` images, on the grey it thresholds (inverted in
        background mode)."""
        if self.mode == "foreground":
            return [self.threshold] * b
        # WAS rewrites threshold = 255 - threshold inside its loop, so it flips back on every odd image.
        t, legacy = self.threshold, self.legacy_alternating
        return [t if legacy and (first_index + k) % 2 else 255 - t for k in range(b)]


def _check(image: Tensor, options: ThresholdOptions) -> bool:
    """Every check; returns whether ``image`` needs clamping (some value outside 0..1)."""
    check_image(image, "images")
    options.check()
    lo, hi = torch.aminmax(image)
    return not bool((lo >= 0) & (hi <= 1))


def _cut_torch(image: Tensor, options: ThresholdOptions, cuts: list[int], clamp: bool, rgba: Tensor,
               mask: Tensor) -> None:
    """Batched torch ops on ``image.device`` (the GPU path), writing into ``rgba`` and ``mask``."""
    grey = was_grey(image)
    if options.mode == "background":
        grey = 255 - grey  # ImageOps.invert
    blurred = _blur_torch(grey, options.threshold_tolerance)
    cut = torch.tensor(cuts, dtype=torch.uint8, device=image.device).view(-1, 1, 1)
    mask.copy_(blurred < cut)  # WAS: point(x < t -> 0, else 255), convert('L'), invert
    rgb = was_quantise(image[..., :3]).div_(255.0) if options.legacy_alternating else image[..., :3]
    rgba[..., :3], rgba[..., 3] = rgb.clamp(0, 1) if clamp else rgb, mask


def _truncate_rgb(src: np.ndarray) -> np.ndarray:
    """WAS's ``np.clip(255. * t, 0, 255).astype(np.uint8)`` on ``[H, W, C]`` float32 -> uint8 ``[H, W, 3]``.

    In blocks of ~256k pixels: a whole-image float temporary (48 MB at 2048²) comes from fresh pages
    on every call, and their page faults cost more than the arithmetic.
    """
    h, w = src.shape[:2]
    rows = max(1, (1 << 18) // w)
    q8 = np.empty((h, w, 3), np.uint8)
    buf = np.empty((min(rows, h), w, 3), np.float32)
    for r in range(0, h, rows):
        part = src[r:r + rows, :, :3]
        q = buf[:part.shape[0]]
        np.clip(np.multiply(part, np.float32(255.0), out=q), 0, 255, out=q)
        np.copyto(q8[r:r + rows], q, casting="unsafe")  # float -> uint8 truncates, as astype does
    return q8


def _cut_native(image: Tensor, options: ThresholdOptions, cuts: list[int], clamp: bool, rgba: Tensor,
                mask: Tensor) -> None:
    """Per image in threads with NumPy, Pillow and OpenCV, writing into ``rgba`` and ``mask``."""
    invert, radius, legacy = options.mode == "background", options.threshold_tolerance, options.legacy_alternating
    direct = all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in (rgba, mask))
    rgba_np = rgba.numpy() if direct else np.empty(tuple(rgba.shape), np.float32)
    mask_np = mask.numpy() if direct else np.empty(tuple(mask.shape), np.float32)

    def cut_one(i: int) -> None:
        src = np.ascontiguousarray(image[i].detach().to("cpu", torch.float32).numpy())  # [H, W, C]
        q8 = _truncate_rgb(src)
        grey = Image.fromarray(q8, "RGB").convert("L")
        if invert:
            grey = ImageOps.invert(grey)
        blurred = np.asarray(grey.filter(ImageFilter.GaussianBlur(radius=radius)))
        np.less(blurred, cuts[i], out=mask_np[i])
        rgb = np.divide(q8, np.float32(255.0), dtype=np.float32) if legacy else src  # WAS: uint8 / 255.0
        # Interleave RGB and alpha in one pass (torch's strided copies are 4x slower on the CPU).
        cv2.mixChannels([rgb, mask_np[i]], [rgba_np[i]], [0, 0, 1, 1, 2, 2, rgb.shape[2], 3])
        if clamp and not legacy:
            np.clip(rgba_np[i], 0, 1, out=rgba_np[i])

    _thread_map(cut_one, image.shape[0], image.shape[1] * image.shape[2])
    if not direct:
        rgba.copy_(torch.from_numpy(rgba_np))
        mask.copy_(torch.from_numpy(mask_np))


def alpha_threshold(image: Tensor, options: ThresholdOptions = ThresholdOptions(), backend: str = "auto",
                    first_index: int = 0, out: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Cut out every image of a batch with WAS's fixed-threshold algorithm, on ``image.device``.

    Args:
        image: IMAGE batch ``[B, H, W, C]``, C = 3 or 4 (an existing alpha is replaced), values in 0..1.
        options: WAS's widgets (:class:`ThresholdOptions`): ``background`` mode keeps pixels whose blurred
            grey is above ``threshold`` (removes a dark background), ``foreground`` those below it;
            ``legacy_alternating`` reproduces WAS byte for byte (in background mode WAS flips the threshold
            to ``255 - threshold`` and back on every image, and truncates RGB to 8 bits); off, every image
            is cut as WAS cuts a single image and RGB is passed through unquantised (clamped to 0..1).
        backend: ``"auto"``, ``"torch"`` or ``"native"`` (Pillow, the CPU path), see :func:`runtime.pick_backend`.
        first_index: batch index of ``image[0]`` when called chunk by chunk (sets the legacy parity).
        out: optional contiguous ``(rgba, mask)`` tensors to write into.
    Returns:
        ``(rgba, mask)``: IMAGE ``[B, H, W, 4]`` (straight alpha = mask) and MASK ``[B, H, W]`` with
        1.0 = kept, both with the dtype and device of ``image`` (``out`` when given).
    """
    clamp = _check(image, options)
    return _run(image, options, backend, clamp, first_index, out)


def _run(image: Tensor, options: ThresholdOptions, backend: str, clamp: bool, start: int = 0,
         out: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    b, h, w, _ = image.shape
    if out is None:
        out = (runtime.empty((b, h, w, 4), image), runtime.empty((b, h, w), image))
    cut = _cut_torch if runtime.pick_backend(image.device, backend) == "torch" else _cut_native
    cut(image, options, options.cuts(start, b), clamp, *out)
    return out


def alpha_threshold_batches(image: Tensor, options: ThresholdOptions = ThresholdOptions(), backend: str = "auto",
                            chunk: int | None = None,
                            device: torch.device | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`alpha_threshold` chunk by chunk on the compute device, with progress and Cancel.

    Outputs are preallocated on ``image.device`` and filled chunk by chunk (:func:`runtime.map_batches`),
    so peak memory is the outputs plus one chunk.

    Returns:
        ``(rgba, mask, inverted_mask)``: as :func:`alpha_threshold`, plus ``1 - mask`` (ComfyUI's alpha
        polarity: what Load Image outputs and Join Image with Alpha expects).
    """
    clamp = _check(image, options)
    device = runtime.compute_device() if device is None else device
    backend = runtime.pick_backend(device, backend)
    step = chunk or runtime.chunk_size(image)
    if backend == "native":  # the CPU path: image by image in threads, no chunk-sized temporaries
        device, step = torch.device("cpu"), chunk or max(step, torch.get_num_threads())
    h, w = image.shape[1:3]
    rgba, mask = runtime.map_batches(image, _run, chunk=step, device=device, outputs=[(h, w, 4), (h, w)],
                                     pass_start=True, options=options, backend=backend, clamp=clamp)
    inverted = torch.sub(mask.new_ones(()), mask, out=runtime.empty(mask.shape, image))
    return rgba, mask, inverted
