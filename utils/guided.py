"""The guided filter (He, Sun and Tang, 2010/2013), batched in torch, with its fast downscaled variant.

Filtering a mask ``p`` with the image ``I`` as guide fits, in every ``(2r+1)²`` window, the linear model
``q = a . I + b`` closest to ``p`` (ridge ``eps`` on ``a``), then averages the models of the windows that
cover each pixel. Where the window sees both subject and background, ``q`` follows the image's own
edges: a soft, blurry model mask snaps to the hair and outline the photo shows. ``eps`` sets how much
image contrast a window needs before the mask follows it (larger = smoother, closer to a blur of ``p``).

The colour guide (3x3 covariance per window) is used, as in the paper's matting experiments. Window
means are box filters from cumulative sums: the cost does not grow with the radius. The fast variant
(He and Sun, 2015) fits ``a, b`` on a copy downscaled by ``scale`` and applies the bilinearly upsampled
models to the full-resolution image, so only the last step runs at full size.

Two backends with one result (to float rounding): torch on any device, the whole batch at once; and
OpenCV on the CPU, image by image (its box filter and resizes are several times faster there), the
full-size steps of the fast variant in column strips (:func:`native_strips`: bit-identical to one call,
without the full-size ``[H, W, 4]`` models).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .runtime import pick_backend


def box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean over the ``(2 radius + 1)²`` window of every pixel of ``x`` ``[B, C, H, W]``, windows clipped at
    the image border (each mean over the pixels inside). Two cumulative sums: cost independent of ``radius``."""
    for dim in (2, 3):
        n = x.shape[dim]
        cum = F.pad(x.cumsum(dim), (0, 0, 1, 0) if dim == 2 else (1, 0))
        idx = torch.arange(n, device=x.device)
        hi, lo = (idx + radius + 1).clamp_(max=n), (idx - radius).clamp_(min=0)
        count = (hi - lo).to(x.dtype)
        x = (cum.index_select(dim, hi) - cum.index_select(dim, lo)) / (count.view(-1, 1) if dim == 2 else count)
    return x


def _inverse_sym3(s: Tensor) -> Tensor:
    """Inverses of symmetric 3x3 matrices given as 6 planes ``[B, 6, H, W]`` (xx, xy, xz, yy, yz, zz),
    as 6 planes in the same order (adjugate over determinant)."""
    xx, xy, xz, yy, yz, zz = s.unbind(1)
    c_xx, c_xy, c_xz = yy * zz - yz * yz, xz * yz - xy * zz, xy * yz - xz * yy
    c_yy, c_yz, c_zz = xx * zz - xz * xz, xy * xz - xx * yz, xx * yy - xy * xy
    det = xx * c_xx + xy * c_xy + xz * c_xz
    return torch.stack((c_xx, c_xy, c_xz, c_yy, c_yz, c_zz), 1) / det.unsqueeze(1)


PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))  # the 6 distinct entries of a 3x3 covariance


def _models(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """Window-averaged linear models ``[B, 4, H, W]`` (a_r, a_g, a_b, b) for ``guide`` ``[B,3,H,W]``, ``src``
    ``[B,1,H,W]``, for the guide itself: ``q = a . guide + b``.

    The guide is centred on its per-image mean ``m`` for the statistics (float32 box sums of products then
    lose nothing to large offsets), and ``b`` takes the offset back (``b - a . m``), so the full-size
    guide is never centred.
    """
    centre = guide.mean((2, 3), keepdim=True)
    guide = guide - centre
    products = [guide[:, i] * guide[:, j] for i, j in PAIRS]
    stats = box_mean(torch.cat((guide, src, guide * src, torch.stack(products, 1)), 1), radius)
    return _uncentre(box_mean(_fit(stats, eps), radius), centre)


def _uncentre(models: Tensor, centre: Tensor) -> Tensor:
    """Models fitted to ``guide - centre`` -> models of ``guide`` (``b - a . centre``), in place."""
    models[:, 3] -= (models[:, :3] * centre).sum(1)
    return models


def _fit(stats: Tensor, eps: float) -> Tensor:
    """Each window's model ``[B, 4, H, W]`` (a_r, a_g, a_b, b) from its 13 means ``[B, 13, H, W]``: guide (3),
    source (1), guide x source (3), guide products (6, :data:`PAIRS`)."""
    mean_i, mean_p, corr_ip, corr_ii = stats[:, :3], stats[:, 3:4], stats[:, 4:7], stats[:, 7:]
    cov_ip = corr_ip - mean_i * mean_p
    sigma = corr_ii - torch.stack([mean_i[:, i] * mean_i[:, j] for i, j in PAIRS], 1)
    sigma[:, [0, 3, 5]] += eps
    inv = _inverse_sym3(sigma)
    xx, xy, xz, yy, yz, zz = inv.unbind(1)
    c0, c1, c2 = cov_ip.unbind(1)
    a = torch.stack((xx * c0 + xy * c1 + xz * c2, xy * c0 + yy * c1 + yz * c2, xz * c0 + yz * c1 + zz * c2), 1)
    b = mean_p - (a * mean_i).sum(1, keepdim=True)
    return torch.cat((a, b), 1)


def guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float, scale: int = 1,
                  backend: str = "auto") -> Tensor:
    """Guided filter of ``src`` by ``guide``: ``[B, H, W]`` float32 on ``src.device``.

    Args:
        guide: ``[B, H, W, 3]`` in 0..1 (the image). src: ``[B, H, W]`` (the mask).
        radius: window radius in full-resolution pixels. eps: the ridge on ``a`` (variance units of 0..1
            colours). scale: the fast variant's downscale factor (1 = the exact filter; ignored for images
            smaller than twice the factor). backend: "auto", "torch" or "native" (OpenCV, CPU).
    """
    if pick_backend(src.device, backend) == "native":
        out = torch.empty(src.shape, dtype=torch.float32)
        # one image at a time: OpenCV takes one; each is a few milliseconds at 1024²
        for im, p, o in zip(guide.float().numpy(), src.float().numpy(), out.numpy(), strict=True):
            for cols, q in native_strips(im, p, radius, eps, scale):
                o[:, cols] = q
        return out
    g = guide.permute(0, 3, 1, 2).float()
    p = src.float().unsqueeze(1)
    h, w = p.shape[-2:]
    fast = scale > 1 and min(h, w) >= 2 * scale
    if fast:
        small = (max(1, h // scale), max(1, w // scale))
        g_fit, p_fit, radius = (F.interpolate(g, size=small, mode="area"), F.interpolate(p, size=small, mode="area"),
                                max(1, round(radius / scale)))
    else:
        g_fit, p_fit = g, p
    models = _models(g_fit, p_fit, radius, eps)
    if fast:
        models = F.interpolate(models, size=(h, w), mode="bilinear", align_corners=False)
    a = models[:, :3]
    return torch.addcmul(models[:, 3], a[:, 0], g[:, 0]).addcmul_(a[:, 1], g[:, 1]).addcmul_(a[:, 2], g[:, 2])


def cv_box_mean(x, radius: int):
    """:func:`box_mean` of one ``H x W (x C)`` array (float32 or uint8) with OpenCV: float32 means over the
    windows clipped at the border."""
    import cv2
    import numpy as np

    k = (2 * radius + 1,) * 2
    sums = cv2.boxFilter(x, cv2.CV_32F, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(np.ones(x.shape[:2], np.uint8), cv2.CV_32F, k, normalize=False,
                          borderType=cv2.BORDER_CONSTANT)
    return sums / (count if x.ndim == 2 else count[..., None])


STRIP_PIXELS = 1 << 21  # the fast variant's full-size steps run in column strips of this many pixels (~110 MB)


def strip_width(height: int, width: int) -> int:
    """Columns per strip of :func:`native_strips`: about :data:`STRIP_PIXELS` pixels, a multiple of 16."""
    return min(width, max(16, STRIP_PIXELS // max(1, height) // 16 * 16))


def native_strips(guide, src, radius: int, eps: float, scale: int):
    """The guided filter of one image with OpenCV and NumPy, the same steps as the torch path (channels last),
    yielded as column strips ``(columns, q)``: ``q`` ``[H, len(columns)]`` float32, ``columns`` a slice.

    The models are fitted at the downscaled size (small); only their bilinear upsampling and the product
    with the guide run at full size, a strip at a time (:func:`strip_width`), so the ``[H, W, 4]`` models
    never exist at once. Bit-identical to upsampling in one call: OpenCV's bilinear resize is a horizontal
    pass, then a vertical one whose weights depend only on the heights, and each column is its own. The exact
    filter (``scale`` 1, or a tiny image) runs whole.
    """
    import cv2

    h, w = src.shape
    models, fast = _native_models(guide, src, radius, eps, scale)
    if not fast:
        yield slice(0, w), _apply_models(models, guide)
        return
    rows = cv2.resize(models, (w, models.shape[0]), interpolation=cv2.INTER_LINEAR)  # [h / scale, W, 4]
    del models
    step = strip_width(h, w)
    for x0 in range(0, w, step):
        cols = slice(x0, min(w, x0 + step))
        full = cv2.resize(rows[:, cols], (cols.stop - x0, h), interpolation=cv2.INTER_LINEAR)  # [H, strip, 4]
        yield cols, _apply_models(full, guide[:, cols])


def _apply_models(models, guide):
    """``q = a . guide + b`` per pixel from models ``[H, W, 4]`` and the guide ``[H, W, 3]``."""
    import numpy as np

    return np.einsum("hwc,hwc->hw", models[..., :3], guide) + models[..., 3]


def _native_models(guide, src, radius: int, eps: float, scale: int):
    """``(models, fast)``: the window-averaged models ``[h, w, 4]`` of one image, at the downscaled size when
    ``fast`` (the full size otherwise), with OpenCV and NumPy."""
    import cv2
    import numpy as np

    h, w = src.shape
    fast = scale > 1 and min(h, w) >= 2 * scale
    if fast:
        size = (max(1, w // scale), max(1, h // scale))
        g_fit, p_fit = (cv2.resize(np.ascontiguousarray(guide), size, interpolation=cv2.INTER_AREA),
                        cv2.resize(src, size, interpolation=cv2.INTER_AREA))
        radius = max(1, round(radius / scale))
    else:
        g_fit, p_fit = guide, src
    centre = g_fit.mean((0, 1), dtype=np.float64).astype(np.float32)
    g_fit = g_fit - centre
    pairs = np.stack([g_fit[..., i] * g_fit[..., j] for i, j in PAIRS], -1)
    stats = cv_box_mean(np.concatenate((g_fit, p_fit[..., None], g_fit * p_fit[..., None], pairs), -1), radius)
    models = torch.from_numpy(np.ascontiguousarray(stats.transpose(2, 0, 1)))[None]
    models = _fit(models, eps)[0].numpy().transpose(1, 2, 0)
    models = cv_box_mean(np.ascontiguousarray(models), radius)
    models[..., 3] -= models[..., :3] @ centre
    return models, fast
