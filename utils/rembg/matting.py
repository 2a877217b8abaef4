"""rembg's alpha matting (closed-form alpha + multi-level foreground), solved only where alpha is unknown.

rembg's ``alpha_matting_cutout`` builds a trimap from the mask (``> foreground_threshold`` -> subject,
``< background_threshold`` -> background, both eroded by an ``erode_size`` square), then calls
pymatting's ``estimate_alpha_cf`` and ``estimate_foreground_ml`` on the whole image. pymatting solves
``L_U x_U = -R x_K`` where ``L`` is the matting Laplacian of 3x3 windows: an unknown pixel's equation only
involves pixels within 2 of it. So each connected group of unknown pixels is solved here on its own
bounding box plus 2 pixels, which gives the very same linear system (same unknowns, same windows, same
order) as the whole image, without building the Laplacian of the known regions; it is then solved
directly (SuperLU) rather than by pymatting's preconditioned CG, which agrees to ~1e-4. The foreground is
estimated on the box around the partly transparent pixels only; elsewhere it is the image itself.

pymatting works on one NumPy image at a time (numba kernels), so the solve is a per-image loop; images
run in parallel threads (pymatting's kernels release the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import runtime
from ..checks import check_number

REACH = 2  # pixels: an unknown pixel's equation involves pixels this far away (two 3x3 windows)
FOREGROUND_MARGIN = 32  # pixels of context around the partly transparent ones for the foreground
DIRECT_SOLVE_LIMIT = 150_000  # unknown pixels per group solved directly (~200 MB of factors at 80k)
MAX_WORKERS = 8  # images matted at once: each solve can hold a few hundred MB


class NoSolution(ValueError):
    """The trimap leaves nothing to solve against (no sure subject or no sure background)."""


def _erode(mask: Tensor, size: int, border: bool) -> Tensor:
    """scipy's ``binary_erosion`` for a batch ``[b,H,W]`` (bool): square ``size`` (0 -> 3x3 cross).

    ``border`` is scipy's ``border_value``: what lies outside the image. An even square is anchored as
    scipy anchors it (centre at ``size // 2``).
    """
    inv = (~mask).to(torch.float32).unsqueeze(1)  # erosion of x = NOT dilation of NOT x
    pad_value = 0.0 if border else 1.0
    if size == 0:
        p = F.pad(inv, (1, 1, 1, 1), value=pad_value)
        hit = p[:, :, 1:-1, 1:-1] + p[:, :, :-2, 1:-1] + p[:, :, 2:, 1:-1] + p[:, :, 1:-1, :-2] + p[:, :, 1:-1, 2:]
        return (hit == 0).squeeze(1)
    before, after = size // 2, size - 1 - size // 2
    p = F.pad(inv, (before, after, before, after), value=pad_value)
    return (F.max_pool2d(p, size, stride=1) == 0).squeeze(1)


@dataclass(frozen=True)
class Trimap:
    """rembg's ``alpha_matting_*`` settings: how the mask is split into sure subject, sure background and
    the unknown band the matting solves."""

    foreground_threshold: int = 240  # mask values (0..255) above this are sure subject
    background_threshold: int = 10  # mask values below this are sure background
    erode_size: int = 10  # side in pixels of the square that erodes both sure regions (0: a 3x3 cross)

    def check(self, prefix: str = "alpha_matting_") -> None:
        check_number(self.foreground_threshold, prefix + "foreground_threshold", 0, 255, integer=True)
        check_number(self.background_threshold, prefix + "background_threshold", 0, 255, integer=True)
        check_number(self.erode_size, prefix + "erode_size", 0, 40, integer=True)


def trimap(mask8: Tensor, options: Trimap) -> tuple[Tensor, Tensor]:
    """rembg's trimap for a batch of masks ``[b,H,W]`` (8-bit values): ``(is_foreground, is_background)``.

    ``mask > foreground_threshold`` is sure subject and ``mask < background_threshold`` sure background,
    each eroded by an ``erode_size`` square (rembg passes ``structure=None`` for 0: a 3x3 cross); the
    background erosion treats outside the image as background (``border_value=1``).
    """
    fg = _erode(mask8 > options.foreground_threshold, options.erode_size, border=False)
    bg = _erode(mask8 < options.background_threshold, options.erode_size, border=True)
    return fg, bg


def _boxes(unknown: np.ndarray) -> list[tuple[slice, slice, np.ndarray]]:
    """One ``(rows, cols, pixels)`` per independent group of unknown pixels: box grown by REACH, clipped."""
    from scipy import ndimage

    # Growing every pixel by REACH gives each group its margin, and joins pixels up to 2 * REACH apart
    # (interacting ones are at most REACH apart): separate groups never share a window.
    grown = ndimage.binary_dilation(unknown, structure=np.ones((2 * REACH + 1,) * 2, bool))
    labels, _ = ndimage.label(grown, structure=np.ones((3, 3), bool))
    out = []
    for index, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        own = (labels[rows, cols] == index) & unknown[rows, cols]
        if own.any():
            out.append((rows, cols, own))
    return out


def solve_alpha(image: np.ndarray, is_fg: np.ndarray, is_bg: np.ndarray) -> np.ndarray:
    """pymatting's ``estimate_alpha_cf`` (default settings) solved per group of unknown pixels.

    Args:
        image: ``H x W x 3`` float64 in 0..1. is_fg, is_bg: ``H x W`` bool, disjoint.
    Returns:
        ``H x W`` float64 alpha in 0..1.
    Raises:
        NoSolution: the trimap has no foreground or no background pixel (pymatting raises a ValueError
            there; rembg then falls back to the mask).
    """
    from pymatting import cf_laplacian

    if not is_bg.any():
        raise NoSolution("Trimap did not contain background values")
    if not is_fg.any():
        raise NoSolution("Trimap did not contain foreground values")
    alpha = is_fg.astype(np.float64)
    unknown = ~(is_fg | is_bg)
    for rows, cols, own in _boxes(unknown):
        known = ~own  # other groups in the box are > 2 px away: they never share a window with this one
        lap = cf_laplacian(np.ascontiguousarray(image[rows, cols]), is_known=known)
        lap_u = lap[own.ravel()]  # rows of this group's unknowns
        values = np.where(known, alpha[rows, cols], 0.0).ravel()
        rhs = -lap_u.dot(values)  # == -R x_K: the unknown columns multiply zeros
        if not rhs.any():  # a group bordered by background only: alpha 0 (pymatting's cg divides 0 by 0)
            continue
        alpha[rows, cols][own] = np.clip(_solve(lap_u[:, own.ravel()], rhs), 0.0, 1.0)
    return alpha


def _solve(matrix, rhs: np.ndarray) -> np.ndarray:
    """``matrix @ x = rhs`` for the symmetric positive definite ``L_U``.

    A sparse direct solve (SuperLU, minimum-degree ordering of the symmetric pattern, no pivoting) where
    its fill-in stays affordable: 2-3x faster than pymatting's ichol + conjugate gradient on these
    band-shaped systems, and exact where CG stops at ``rtol=1e-7``. Larger systems use pymatting's
    solver, as rembg does.
    """
    from pymatting import cg, ichol
    from scipy.sparse.linalg import splu

    matrix = matrix.tocsc()
    if matrix.shape[0] <= DIRECT_SOLVE_LIMIT:
        try:
            lu = splu(matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
            return lu.solve(rhs)
        except RuntimeError:  # numerically singular: let the iterative solver have a go
            pass
    return cg(matrix, rhs, M=ichol(matrix))


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """pymatting's ``estimate_foreground_ml`` around the partly transparent pixels; the image elsewhere."""
    from pymatting import estimate_foreground_ml

    fg = image.copy()
    partial = (alpha > 0) & (alpha < 1)
    if not partial.any() or alpha.size == 1:  # a lone pixel is its own best estimate (pymatting divides by 0)
        return fg
    ys, xs = np.nonzero(partial)
    h, w = alpha.shape
    rows = slice(max(0, ys.min() - FOREGROUND_MARGIN), min(h, ys.max() + 1 + FOREGROUND_MARGIN))
    cols = slice(max(0, xs.min() - FOREGROUND_MARGIN), min(w, xs.max() + 1 + FOREGROUND_MARGIN))
    fg[rows, cols] = estimate_foreground_ml(np.ascontiguousarray(image[rows, cols]),
                                            np.ascontiguousarray(alpha[rows, cols]))
    return fg


def matte_one(image8: np.ndarray, mask8: np.ndarray, is_fg: np.ndarray, is_bg: np.ndarray) -> tuple:
    """One image: ``(alpha, foreground)`` as rembg's ``alpha_matting_cutout`` computes them.

    When pymatting would raise (no sure subject or background, or no convergence), rembg falls back to
    ``decontaminate_cutout``: the mask as alpha, and the foreground estimated for it. So does this.
    """
    image = image8.astype(np.float64) / 255.0
    try:
        alpha = solve_alpha(image, is_fg, is_bg)
    except (NoSolution, ValueError):  # ValueError: pymatting's own, e.g. no convergence
        alpha = mask8.astype(np.float64) / 255.0
    return alpha, estimate_foreground(image, alpha)


class Matter:
    """Images matted side by side on a pool of its own: ``submit`` groups as they come, then ``results``.

    A per-image loop forced by pymatting (NumPy, one image per call); its numba kernels and SuperLU
    release the GIL, so images run in threads, one per core (at most MAX_WORKERS). Used as a context
    manager: leaving it drops the images not started and waits for the running ones.
    """

    def __init__(self, trimap: Trimap, images: int, workers: int | None = None):
        self.trimap = trimap
        workers = workers or min(images, runtime.cpu_count(), MAX_WORKERS)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers))
        self._jobs: list = []

    def __enter__(self) -> Matter:
        return self

    def __exit__(self, *exc) -> None:
        for job in self._jobs:
            job.cancel()  # images not started are dropped; the pool still waits for running ones
        self._pool.shutdown(wait=True)

    def submit(self, rgb8: Tensor, mask8: Tensor) -> None:
        """Start matting a group: ``rgb8`` ``[b,H,W,3]`` and ``mask8`` ``[b,H,W]`` hold 8-bit values."""
        is_fg, is_bg = trimap(mask8, self.trimap)
        images, masks = rgb8.to("cpu", torch.uint8).numpy(), mask8.to("cpu", torch.uint8).numpy()
        is_fg, is_bg = is_fg.cpu().numpy(), is_bg.cpu().numpy()
        self._jobs += [self._pool.submit(matte_one, images[i], masks[i], is_fg[i], is_bg[i])
                       for i in range(images.shape[0])]

    def results(self, progress: runtime.Progress | None = None) -> tuple[Tensor, Tensor]:
        """Every submitted image, in order: ``(alpha [N,H,W], foreground [N,H,W,3])`` float32 on the CPU.

        Waits image by image, honouring Cancel and advancing ``progress`` once per image.
        """
        alpha = fg = None
        for i, job in enumerate(self._jobs):
            runtime.raise_if_cancelled()
            a, f = job.result()
            if alpha is None:
                alpha = torch.empty((len(self._jobs), *a.shape), dtype=torch.float32)
                fg = torch.empty((len(self._jobs), *f.shape), dtype=torch.float32)
            alpha[i], fg[i] = torch.from_numpy(a), torch.from_numpy(f)
            if progress is not None:
                progress.update(1)
        return alpha, fg


def alpha_matting(rgb8: Tensor, mask8: Tensor, options: Trimap = Trimap(), progress: runtime.Progress | None = None,
                  workers: int | None = None) -> tuple[Tensor, Tensor]:
    """rembg's alpha matting for a batch.

    Args:
        rgb8: ``[B, H, W, 3]`` float holding 8-bit values (0..255). mask8: ``[B, H, W]``, 8-bit values.
        options: rembg's ``alpha_matting_*`` settings. progress: advanced once per image.
        workers: images matted at once (default one per core, at most MAX_WORKERS).
    Returns:
        ``(alpha [B, H, W], foreground [B, H, W, 3])``, float32 in 0..1 on ``rgb8.device``.
    """
    with Matter(options, mask8.shape[0], workers) as matter:
        matter.submit(rgb8, mask8)
        alpha, fg = matter.results(progress)
    return alpha.to(rgb8.device), fg.to(rgb8.device)
