"""rembg's ``remove`` for a whole IMAGE batch, as named steps: masks, post-processing, matting, cut-out.

After the model step (``inference``), rembg's ``remove`` does, per image:

3. optionally ``post_process``: grey opening with a 3x3 cross, Gaussian blur (sigma 2), threshold at 127;
4. the cut-out: alpha matting (``matting``), or the mask as alpha (``naive_cutout``); the mask alone for
   ``only_mask``; then a background colour (``apply_background``).

Here each step is a function over a chunk of images on the compute device, and :func:`remove_background`
calls them in that order through :func:`runtime.map_batches` (progress and Cancel between chunks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import runtime
from ..checks import InputError, check_choice, check_flag, check_image, fail
from ..foreground import estimate_foreground
from ..kernels import gaussian_blur
from . import backends, models
from .inference import Predictor, uint8_values
from .matting import Matter, Trimap

BACKGROUNDS = {"transparent": None, "white": 1.0, "black": 0.0}
EDGES = ("rembg", "straight")  # the cut-out's colours on soft edges without matting (see RembgOptions)
BLUR_RADIUS, BLUR_SIGMA = 8, 2.0  # rembg's post_process: gaussian_filter(sigma=2), radius int(4 * 2 + 0.5)


@dataclass(frozen=True)
class RembgOptions:
    """rembg's ``remove`` options, named as the node's inputs; passed by keyword.

    Attributes:
        model: a rembg model name (:data:`models.MODEL_NAMES`).
        alpha_matting: refine the edge with closed-form matting (rembg's ``alpha_matting_cutout``).
        alpha_matting_foreground_threshold: mask values (0..255) above this are sure subject.
        alpha_matting_background_threshold: mask values below this are sure background.
        alpha_matting_erode_size: side in pixels of the square that erodes both sure regions.
        only_mask: the cut-out is the mask (as rembg, matting is then not applied).
        post_process_mask: rembg's morphological smoothing, which also makes the mask binary.
        background: "transparent" (RGBA cut-out), "white" or "black" (RGB composited on that colour).
        edges: the cut-out's colours without matting: "rembg" = rembg's pixels, the photo times the mask
            (then blended with the mask again onto a colour); "straight" = the photo's own colours under
            straight alpha, blended once onto a colour.
        decontaminate: without matting, the edge colours estimated for the mask (rembg's
            ``decontaminate=True``: pymatting's ``estimate_foreground_ml``): no old background in soft pixels.
        runtime: where the model runs (:data:`backends.RUNTIMES`): "auto" (torch on a GPU, onnxruntime on the
            CPU), "torch" or "onnxruntime".
        model_file: the ``*_custom`` models' own ONNX file: a file name in the model folders
            (:func:`models.custom_path`); "" for every other model.
    """

    model: str = "u2netp"
    alpha_matting: bool = False
    alpha_matting_foreground_threshold: int = 240
    alpha_matting_background_threshold: int = 10
    alpha_matting_erode_size: int = 10
    only_mask: bool = False
    post_process_mask: bool = False
    background: str = "transparent"
    edges: str = "rembg"
    decontaminate: bool = False
    runtime: str = "auto"
    model_file: str = ""

    @property
    def trimap(self) -> Trimap:
        return Trimap(self.alpha_matting_foreground_threshold, self.alpha_matting_background_threshold,
                      self.alpha_matting_erode_size)

    @property
    def refine(self) -> bool:
        """Whether alpha matting runs (rembg skips it for ``only_mask``)."""
        return self.alpha_matting and not self.only_mask

    @property
    def unmix(self) -> bool:
        """Whether the mask's colours are estimated without matting (rembg: ignored with matting or a mask)."""
        return self.decontaminate and not self.alpha_matting and not self.only_mask

    def check(self) -> None:
        """A :class:`~..checks.SettingError` naming the option for anything rembg would choke on or ignore."""
        check_choice(self.model, "model", models.MODEL_NAMES)
        models.check_model_file(self.model, self.model_file)
        for flag in ("alpha_matting", "only_mask", "post_process_mask", "decontaminate"):
            check_flag(getattr(self, flag), flag)
        self.trimap.check()
        check_choice(self.background, "background", BACKGROUNDS)
        check_choice(self.edges, "edges", EDGES)
        check_choice(self.runtime, "runtime", backends.RUNTIMES)


def check_original(original: Tensor | None, images: Tensor) -> None:
    """``original`` must be an IMAGE of ``images``' size, with as many images or one."""
    if original is None:
        return
    check_image(original, "original")
    if tuple(original.shape[1:3]) != tuple(images.shape[1:3]) or original.shape[0] not in (1, images.shape[0]):
        fail("original", f"{original.shape[0]} image(s) of {original.shape[2]}x{original.shape[1]} do not match "
             f"images ({images.shape[0]} of {images.shape[2]}x{images.shape[1]}); connect the same images before "
             "preprocessing (same size and count, or one).", InputError)


def _cross(x: Tensor, op) -> Tensor:
    """Min or max over the 3x3 cross (skimage's disk(1)); borders replicate (skimage's 'reflect' at radius 1)."""
    p = F.pad(x.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    out = op(p[:, 1:-1, 1:-1], p[:, :-2, 1:-1])
    out = op(out, p[:, 2:, 1:-1])
    out = op(out, p[:, 1:-1, :-2])
    return op(out, p[:, 1:-1, 2:])


def post_process(mask8: Tensor, out: Tensor | None = None, value: float = 255.0) -> Tensor:
    """rembg's ``post_process`` for a batch ``[b, H, W]`` of 8-bit values -> binary masks (0 or ``value``).

    Grey opening with a 3x3 cross (skimage ``opening(mask, disk(1))``), Gaussian blur (scipy
    ``gaussian_filter(sigma=2)``: radius 8, mode 'reflect'), then ``< 127 -> 0`` else 255 (``value``: 1
    gives the mask in 0..1 without another pass). OpenCV on the CPU (one image at a time, several times
    faster there), torch on a GPU. Written into ``out`` (float32 ``[b, H, W]``, contiguous) when given.
    """
    if out is None:
        out = torch.empty(mask8.shape, dtype=torch.float32, device=mask8.device)
    if runtime.pick_backend(mask8.device) == "native":
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
    opened = _cross(_cross(mask8, torch.minimum), torch.maximum).to(torch.float32)
    blurred = gaussian_blur(opened, BLUR_SIGMA, BLUR_RADIUS, dims=(1, 2))
    return out.copy_(blurred >= 127).mul_(value)  # rembg: < 127 -> 0, else 255


def naive_cutout(photo: Tensor, alpha: Tensor, edges: str) -> Tensor:
    """The cut-out's colours without matting: rembg's photo x mask (``"rembg"``) or the photo itself."""
    return photo * alpha if edges == "rembg" else photo


def apply_background(rgb: Tensor, alpha: Tensor, colour: float) -> Tensor:
    """rembg's ``alpha_composite`` of a cut-out over an opaque colour: ``(rgb - colour) * alpha + colour``."""
    return (rgb - colour).mul_(alpha).add_(colour)


def write_cutout(images: Tensor, alpha: Tensor, foreground: Tensor | None, options: RembgOptions,
                 out: Tensor) -> None:
    """The cut-out of a chunk into ``out``: RGBA, RGB on a colour, or the mask as a grey image (``only_mask``).

    Args:
        images: the chunk ``[b, H, W, C]``. alpha: ``[b, H, W, 1]``, the input's alpha already applied.
        foreground: matting's estimated colours ``[b, H, W, 3]``, or ``None`` without matting.
    """
    if options.only_mask:
        out.copy_(alpha.expand_as(out))
        return
    colour = BACKGROUNDS[options.background]
    if foreground is None and colour is None:  # the default: written in place, no temporaries (~2x faster)
        rgb = torch.clamp(images[..., :3], 0, 1, out=out[..., :3])
        if options.edges == "rembg":
            rgb.mul_(alpha)  # naive_cutout, in place
        out[..., 3:] = alpha
        return
    if foreground is None:
        rgb = naive_cutout(images[..., :3].clamp(0, 1), alpha, options.edges)
    else:
        rgb = foreground.clamp(0, 1)  # matting estimates the colours: composited once, as rembg
    if colour is None:
        out[..., :3], out[..., 3:] = rgb, alpha
    else:
        out.copy_(apply_background(rgb, alpha, colour))


def write_extracted(source: Tensor, keep: Tensor, out: Tensor) -> None:
    """The 'extracted' output into ``out``: ``source``'s RGB ``[b, H, W, C]`` with the binary mask as alpha."""
    torch.clamp(source[..., :3], 0, 1, out=out[..., :3])  # in place: no temporary
    out[..., 3] = keep


def _finish(images: Tensor, source: Tensor, alpha: Tensor, keep: Tensor, foreground: Tensor | None,
            options: RembgOptions, out: tuple[Tensor, Tensor, Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(cutout, mask, extracted)`` of a chunk from its soft mask ``alpha`` and binary ``keep``, written into
    ``out`` (the batch's outputs, when the chunk is on their device) or new tensors."""
    b, h, w = alpha.shape
    if out is None:
        channels = 3 if options.only_mask or BACKGROUNDS[options.background] is not None else 4
        out = tuple(torch.empty(s, device=alpha.device) for s in ((b, h, w, channels), (b, h, w), (b, h, w, 4)))
    cutout, mask, extracted = out
    if images.shape[-1] == 4:  # a transparent input stays transparent in every output, only_mask included
        opaque = images[..., 3].clamp(0, 1)
        torch.mul(alpha, opaque, out=mask)
        keep = keep * opaque
    else:
        mask.copy_(alpha)
    write_cutout(images, mask.unsqueeze(-1), foreground, options, cutout)
    write_extracted(source, keep, extracted)
    return out


def _masks(images: Tensor, predictor: Predictor, options: RembgOptions, progress: runtime.Progress,
           alpha_out: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(mask8, alpha, keep)`` of a chunk: the model's 8-bit mask, the mask shown (0..1; written into
    ``alpha_out`` when given), and rembg's post-processed binary mask (extracted's alpha)."""
    mask8 = predictor.masks(images, progress)
    keep = post_process(mask8, value=1.0)
    return mask8, (keep if options.post_process_mask else torch.div(mask8, 255.0, out=alpha_out)), keep


def remove_background(images: Tensor, options: RembgOptions = RembgOptions(),
                      original: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """rembg's ``remove`` with the same options, for a whole IMAGE batch.

    Args:
        images: IMAGE ``[B, H, W, 3|4]`` in 0..1; an alpha channel is multiplied into the result's alpha.
        options: :class:`RembgOptions`.
        original: IMAGE ``[B or 1, H, W, C]`` whose pixels fill ``extracted``; ``images`` when ``None``.
    Returns:
        ``(cutout, mask, extracted)`` on ``images.device`` in ``images.dtype``: cutout ``[B, H, W, 4]`` (RGBA)
        or ``[B, H, W, 3]`` (a colour background, or the mask for ``only_mask``); mask ``[B, H, W]``, 1 = subject,
        soft; extracted ``[B, H, W, 4]``: ``original`` with the post-processed binary mask as alpha.
    """
    check_image(images, "images")
    options.check()
    check_original(original, images)
    images = images.detach()  # a tensor that requires grad (a script) reaches no op, and no output requires grad
    original = None if original is None else original.detach()
    n, h, w = images.shape[:3]
    source = images if original is None else original.expand(n, -1, -1, -1)
    progress = runtime.Progress(n * (2 if options.refine else 1))
    channels = 3 if options.only_mask or BACKGROUNDS[options.background] is not None else 4
    shapes = [(h, w, channels), (h, w), (h, w, 4)]
    with Predictor(options.model, n, options.runtime, options.model_file) as predictor:
        if not options.refine:
            def cut(part: Tensor, start: int, out=None) -> tuple[Tensor, Tensor, Tensor]:
                # the shown mask straight into a float32 mask output; the 8-bit one is not kept (192 MB at 48 MP)
                into = out[1] if out is not None and out[1].dtype == torch.float32 else None
                alpha, keep = _masks(part, predictor, options, progress, into)[1:]
                source_part = source[start:start + part.shape[0]].to(part.device)
                # rembg's decontaminate_cutout: the colours for the shown mask, from the photo's 8-bit RGB
                fg = estimate_foreground(uint8_values(part[..., :3]) / 255, alpha)[0] if options.unmix else None
                return _finish(part, source_part, alpha, keep, fg, options, out)

            return runtime.map_batches(images, cut, chunk=predictor.chunk, outputs=shapes, progress=progress,
                                       pass_start=True)
        return _remove_with_matting(images, source, options, predictor, progress, shapes)


def _remove_with_matting(images: Tensor, source: Tensor, options: RembgOptions, predictor: Predictor,
                         progress: runtime.Progress, shapes: list) -> tuple[Tensor, Tensor, Tensor]:
    """The matting path: masks chunk by chunk, each chunk's matting starting at once beside the next
    chunks' model runs; then the cut-outs from the matted alpha and the estimated foreground (``progress``
    is already full then: composing takes milliseconds)."""
    with Matter(options.trimap, images.shape[0]) as matter:
        def masks(part: Tensor) -> Tensor:
            mask8, alpha, keep = _masks(part, predictor, options, progress)
            to_matte = keep * 255.0 if options.post_process_mask else mask8  # rembg mattes what it would show
            matter.submit(uint8_values(part[..., :3]), to_matte)
            return keep

        keep = runtime.map_batches(images, masks, chunk=predictor.chunk, progress=progress)
        alpha, foreground = matter.results(progress)

    def finish(part: Tensor, start: int, out=None) -> tuple[Tensor, Tensor, Tensor]:
        rows, on = slice(start, start + part.shape[0]), part.device
        return _finish(part, source[rows].to(on), alpha[rows].to(on), keep[rows].to(on), foreground[rows].to(on),
                       options, out)

    return runtime.map_batches(images, finish, chunk=predictor.chunk, outputs=shapes, progress=progress,
                               pass_start=True)
