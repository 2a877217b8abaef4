"""A ground-truth set for edge quality: composites with exactly known alpha and foreground, and the metrics.

Every case is ``I = a * F + (1 - a) * B`` with ``a`` (alpha), ``F`` (foreground colours) and ``B``
(background) known exactly, so a cut-out ``(a', F')`` can be scored against the truth:

* procedural subjects: a solid body plus hundreds of thin antialiased strands (hair or fur: random curves
  drawn at 8x supersampling and area-downsampled, so their alpha is fractional), a semi-transparent
  region and a motion-blurred edge; foreground colours from real photos (``skimage.data``);
* photo-derived subjects: a photo with a soft, blobby alpha;
* backgrounds: other photos, a flat colour close to the subject's, a texture.

Deterministic (seeded), no download. Used by ``benchmarks/bench_edges.py`` (issue #13) and the tests.
Metrics follow the matting literature: SAD (sum of absolute alpha errors / 1000), MSE, gradient error,
each on the whole image and on the edge band (ground truth ``0 < a < 1``, dilated), and the composite
error: the MSE of ``a' F' + (1 - a') B2`` against ``a F + (1 - a) B2`` on new backgrounds ``B2`` (what a
user sees after pasting the cut-out elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

SUPERSAMPLE = 8
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


@dataclass(frozen=True)
class Case:
    """One composite: float32 arrays, ``image``/``foreground``/``background`` ``H x W x 3``, ``alpha`` ``H x W``."""

    name: str
    image: np.ndarray
    alpha: np.ndarray
    foreground: np.ndarray
    background: np.ndarray


@cache
def photo(name: str, size: int) -> np.ndarray:
    """A scikit-image sample photo as ``size x size x 3`` float32 in 0..1 (resized, RGB)."""
    from skimage import data

    img = np.asarray(getattr(data, name)())
    img = np.stack([img] * 3, axis=-1) if img.ndim == 2 else img[..., :3]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _strands(rng: np.random.Generator, size: int, count: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """Alpha of ``count`` thin curves growing outwards from a disc's rim, drawn at SUPERSAMPLE x and
    area-downsampled: each strand covers a pixel fractionally."""
    ss = SUPERSAMPLE if size <= 512 else 4  # the canvas is (size * ss)² bytes: 64 MB at 2048² and 4x
    big = size * ss
    canvas = np.zeros((big, big), np.uint8)
    cy, cx = centre
    for _ in range(count):
        angle = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.08, 0.25) * size
        bend = rng.uniform(-1.5, 1.5)
        t = np.linspace(0, 1, 24)
        a = angle + bend * t * t
        r = radius + t * length
        pts = np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=-1) * ss
        width = max(1, int(rng.uniform(0.3, 1.2) * ss))  # 0.3 .. 1.2 px strands
        cv2.polylines(canvas, [np.round(pts).astype(np.int32)], False, 255, width, cv2.LINE_AA)
    # area average of each ss x ss block, exact in float32 (no 8-bit rounding of the coverage)
    return canvas.reshape(size, ss, size, ss).mean(axis=(1, 3), dtype=np.float32) / 255.0


def procedural_alpha(seed: int, size: int) -> np.ndarray:
    """Body (ellipse) + strands + a semi-transparent veil + a motion-blurred side: fractional, exact alpha."""
    rng = np.random.default_rng(seed)
    cy, cx, radius = size * rng.uniform(0.45, 0.55), size * rng.uniform(0.45, 0.55), size * rng.uniform(0.2, 0.28)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dist = np.hypot(yy - cy, xx - cx)
    body = np.clip(radius - dist + 0.5, 0, 1)  # a one-pixel antialiased rim
    alpha = np.maximum(body, _strands(rng, size, int(rng.integers(200, 400)), (cy, cx), radius * 0.95))
    veil = ((np.abs(yy - (cy + radius * 1.1)) < size * 0.06) & (np.abs(xx - cx) < radius)).astype(np.float32)
    alpha = np.maximum(alpha, veil * rng.uniform(0.3, 0.6))  # glass or fabric: partly transparent
    k = max(3, size // 40) | 1
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0 / k  # horizontal motion blur on the left side only
    blurred = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_REFLECT)
    left = (xx < cx - radius * 0.5).astype(np.float32)
    return np.clip(left * blurred + (1 - left) * alpha, 0, 1).astype(np.float32)


def photo_alpha(seed: int, size: int) -> np.ndarray:
    """A soft, blobby subject mask (a photo's subject with a soft alpha): blurred random blobs, thresholded softly."""
    rng = np.random.default_rng(seed)
    field = np.zeros((size, size), np.float32)
    for _ in range(6):
        y, x = rng.uniform(0.3, 0.7, 2) * size
        r = rng.uniform(0.08, 0.18) * size
        cv2.circle(field, (int(x), int(y)), int(r), 1.0, -1, cv2.LINE_AA)
    soft = cv2.GaussianBlur(field, (0, 0), size / 60)
    return np.clip((soft - 0.3) * 3.0, 0, 1).astype(np.float32)


def backgrounds(size: int, foreground: np.ndarray, alpha: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """A photo, a flat colour close to the subject's mean colour, and a texture (striped noise)."""
    rng = np.random.default_rng(seed)
    mean = (foreground * alpha[..., None]).sum((0, 1)) / max(float(alpha.sum()), 1.0)
    flat = np.broadcast_to(np.clip(mean + rng.uniform(-0.08, 0.08, 3), 0, 1), foreground.shape).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    stripes = 0.5 + 0.35 * np.sin(xx / max(2.0, size / 64) + 3 * np.sin(yy / (size / 16)))
    texture = np.clip(stripes[..., None] * rng.uniform(0.4, 1.0, 3) + rng.normal(0, 0.05, foreground.shape), 0, 1)
    return {"photo": photo(PHOTOS[(seed + 3) % len(PHOTOS)], size), "flat": flat,
            "texture": texture.astype(np.float32)}


def composite(alpha: np.ndarray, foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``a F + (1 - a) B`` in float32."""
    a = alpha[..., None]
    return (a * foreground + (1 - a) * background).astype(np.float32)


def case_specs(quick: bool = False) -> list[tuple[str, int, int, str]]:
    """``(kind, seed, size, background)`` of every case: 30 at 512² and 1024² (procedural and photo-derived,
    three backgrounds each) plus one at 2048²; ``quick``: 4 small ones at 256² for tests."""
    plan = [(256, 2, 0)] if quick else [(512, 4, 2), (1024, 3, 1)]
    specs = []
    for size, procedural, photos in plan:
        for k in range(procedural + photos):
            for bname in (("photo", "flat") if quick else ("photo", "flat", "texture")):
                specs.append(("strands" if k < procedural else "photo", k, size, bname))
    return specs if quick else [*specs, ("strands", 99, 2048, "photo")]


def make_case(kind: str, seed: int, size: int, bname: str) -> Case:
    alpha = procedural_alpha(seed, size) if kind == "strands" else photo_alpha(seed, size)
    fg = photo(PHOTOS[seed % 4], size)
    bg = backgrounds(size, fg, alpha, seed)[bname]
    return Case(f"{kind}{seed}-{bname}-{size}", composite(alpha, fg, bg), alpha, fg, bg)


def build_set(quick: bool = False) -> list[Case]:
    """Every case of :func:`case_specs`, built (deterministic)."""
    return [make_case(*spec) for spec in case_specs(quick)]


def edge_band(alpha: np.ndarray, radius: int = 5) -> np.ndarray:
    """Where the truth is partly transparent (``0 < a < 1``), dilated by ``radius`` pixels: bool ``H x W``."""
    soft = ((alpha > 0) & (alpha < 1)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(soft, kernel).astype(bool)


def _gradient(alpha: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a Gaussian-smoothed alpha (sigma 1.4, as the matting benchmarks use)."""
    smooth = cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), 1.4)
    return np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))


NEW_BACKGROUNDS = {"light": (0.94, 0.94, 0.90), "dark": (0.06, 0.07, 0.10)}


def scores(case: Case, alpha: np.ndarray, foreground: np.ndarray, band: np.ndarray | None = None) -> dict:
    """Metrics of an estimate ``(alpha, foreground)`` against ``case``, on the whole image and the edge band.

    Returns ``{sad, mse, grad, composite}`` (whole image) and the same with a ``band_`` prefix; composite is
    the mean over :data:`NEW_BACKGROUNDS` of the MSE of the re-composited images (RGB, 0..1 scale).
    """
    band = edge_band(case.alpha) if band is None else band
    err = alpha.astype(np.float64) - case.alpha
    grad = (_gradient(alpha) - _gradient(case.alpha)) ** 2
    comp = np.zeros(case.alpha.shape)
    for colour in NEW_BACKGROUNDS.values():
        b2 = np.broadcast_to(np.asarray(colour, np.float32), case.foreground.shape)
        comp += ((composite(alpha, foreground, b2) - composite(case.alpha, case.foreground, b2)) ** 2).mean(-1)
    comp /= len(NEW_BACKGROUNDS)
    out = {}
    for prefix, where in (("", np.ones_like(band)), ("band_", band)):
        n = max(int(where.sum()), 1)
        out[prefix + "sad"] = float(np.abs(err[where]).sum() / 1000)
        out[prefix + "mse"] = float((err[where] ** 2).sum() / n)
        out[prefix + "grad"] = float(grad[where].sum() / 1000)
        out[prefix + "composite"] = float(comp[where].sum() / n)
    return out
