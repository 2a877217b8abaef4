"""pymatting's ``estimate_foreground_ml`` kernel, rewritten to hold less: the CPU path of :mod:`.foreground`.

The same arithmetic as pymatting's numba kernel (``_estimate_fb_ml``), statement for statement and with
the same float32 / float64 types, so the results are identical (tests compare bit for bit). What changes
is only where values live:

* each level's image and alpha are read through the nearest-neighbour index maps, not copied per level;
* the last level's foreground is written straight into the caller's array (a cut-out's RGB, strided);
* the sweeps of a level run as a wavefront: at step ``s`` iteration ``t`` updates row ``s - t``. Iteration
  ``t`` of row ``y`` reads row ``y - 1`` after iteration ``t`` and row ``y + 1`` after iteration ``t - 1``:
  exactly what pymatting's raster-order Gauss-Seidel sweeps read, so the values are theirs. A level then
  needs only ``sweeps + 2`` rows at a time, and a row of the next level only the row it is resized from;
* so the last level's background, which a cut-out does not keep, lives in a ring of rows (``bg`` shorter than
  the image), and the level before the last (a quarter of the pixels) runs alongside it in rings, a few
  rows ahead of what the last level reads. Only the levels below (1/16 of the pixels and less) are whole.

At 48 MP pymatting's own call holds about 3 GB beyond its inputs; this one about 75 MB (the third-last
level) beside the caller's foreground array.

Imported only when a foreground is estimated on the CPU (numba compiles, or loads its cache, on import).
"""

from __future__ import annotations

import numpy as np
from numba import njit

SIGNATURE = "void(f4[:, :, :], f4[:, :], f4[:, :, :], f4[:, :, :], f4, i4, i4, i4, f4)"


@njit(cache=True, nogil=True)
def _index_map(n_dst: int, n_src: int) -> np.ndarray:
    """pymatting's nearest-neighbour source index of every destination index."""
    out = np.empty(n_dst, np.int64)
    for i in range(n_dst):
        out[i] = max(0, min(n_src - 1, i * n_src // n_dst))
    return out


@njit(cache=True, nogil=True)
def _update_row(image, alpha, ys, xs, F, B, y, regularization, gradient_weight, b):
    """One Gauss-Seidel update of every pixel of row ``y`` (pymatting's loop body, in its order). The level's
    image and alpha are ``image[ys[y], xs[x]]``; its row ``y`` of ``F`` / ``B`` is at ``y % len(F)`` / ``len(B)``."""
    h, w, depth = ys.shape[0], xs.shape[0], F.shape[2]
    yi = ys[y]
    for x in range(w):
        xi = xs[x]
        a0 = alpha[yi, xi]
        a1 = 1.0 - a0

        a00 = a0 * a0
        a01 = a0 * a1
        a11 = a1 * a1

        for c in range(depth):
            b[0, c] = a0 * image[yi, xi, c]
            b[1, c] = a1 * image[yi, xi, c]

        for d in range(4):  # pymatting's neighbour order: left, right, up, down; borders clamp
            x2 = max(0, min(w - 1, x + (-1 if d == 0 else (1 if d == 1 else 0))))
            y2 = max(0, min(h - 1, y + (-1 if d == 2 else (1 if d == 3 else 0))))

            gradient = abs(a0 - alpha[ys[y2], xs[x2]])

            da = regularization + gradient_weight * gradient

            a00 += da
            a11 += da

            f2, b2 = y2 % F.shape[0], y2 % B.shape[0]
            for c in range(depth):
                b[0, c] += da * F[f2, x2, c]
                b[1, c] += da * B[b2, x2, c]

        determinant = a00 * a11 - a01 * a01

        inv_det = 1.0 / determinant

        b00 = inv_det * a11
        b01 = inv_det * -a01
        b11 = inv_det * a00

        f, r = y % F.shape[0], y % B.shape[0]
        for c in range(depth):
            F_c = b00 * b[0, c] + b01 * b[1, c]
            B_c = b01 * b[0, c] + b11 * b[1, c]

            F_c = max(0.0, min(1.0, F_c))
            B_c = max(0.0, min(1.0, B_c))

            F[f, x, c] = F_c
            B[r, x, c] = B_c


@njit(cache=True, nogil=True)
def _init_row(dst, y, src, yp, xp):
    """Row ``y`` of a level (slot ``y % len(dst)``) from the previous level's row ``yp[y]`` (slot ``% len(src)``)
    by nearest neighbour, as pymatting's resize."""
    r, rs = y % dst.shape[0], yp[y] % src.shape[0]
    for x in range(dst.shape[1]):
        for c in range(dst.shape[2]):
            dst[r, x, c] = src[rs, xp[x], c]


@njit(cache=True, nogil=True)
def _step(level, s, n_iter, regularization, gradient_weight, b):
    """Step ``s`` of a level's wavefront (module docstring): its row ``s + 1`` (and row 0 first) enters from the
    previous level, then iteration ``t`` updates row ``s - t``. ``level``: :func:`_level`'s tuple."""
    image, alpha, ys, xs, F, B, F_prev, B_prev, yp, xp = level
    h = ys.shape[0]
    for y in range(0 if s == 0 else s + 1, min(h, s + 2)):
        _init_row(F, y, F_prev, yp, xp)
        _init_row(B, y, B_prev, yp, xp)
    for t in range(n_iter):
        y = s - t
        if 0 <= y < h:
            _update_row(image, alpha, ys, xs, F, B, y, regularization, gradient_weight, b)


@njit(cache=True, nogil=True)
def _level(image, alpha, h, w, F, B, F_prev, B_prev, h_prev, w_prev):
    """A level ``h x w`` for :func:`_step`: ``(image, alpha, ys, xs, F, B, F_prev, B_prev, yp, xp)``, the index maps
    into the input (``ys``, ``xs``) and into the previous level (``h_prev x w_prev``; ``yp``, ``xp``). Every
    ``F``/``B`` holds row ``y`` at ``y % len``: a full array, or a ring of the rows in use."""
    return (image, alpha, _index_map(h, alpha.shape[0]), _index_map(w, alpha.shape[1]), F, B, F_prev, B_prev,
            _index_map(h, h_prev), _index_map(w, w_prev))


@njit(cache=True, nogil=True)
def _last_level(image, alpha, fg, bg, F_prev, B_prev, sizes, regularization, gradient_weight, b, pipelined):
    """The last level into ``fg``/``bg``; with ``pipelined``, the level before it (from ``F_prev``/``B_prev``,
    the one before that, whole) is swept in rings of rows, just far enough ahead of the rows the last level
    reads from it: neither the full-size nor the quarter-size background and foreground exist whole."""
    depth = fg.shape[2]
    n = sizes.shape[0] - 1
    h, w, n_iter = sizes[n, 0], sizes[n, 1], sizes[n, 2]
    if not pipelined:
        last = _level(image, alpha, h, w, fg, bg, F_prev, B_prev, F_prev.shape[0], F_prev.shape[1])
        for s in range(h + n_iter - 1):
            _step(last, s, n_iter, regularization, gradient_weight, b)
        return
    h1, w1, k1 = sizes[n - 1, 0], sizes[n - 1, 1], sizes[n - 1, 2]
    rows = min(h1, k1 + 3)  # the producer's rows in use (k1 + 2) and the one the last level reads
    F1 = np.empty((rows, w1, depth), dtype=F_prev.dtype)
    B1 = np.empty((rows, w1, depth), dtype=F_prev.dtype)
    before = _level(image, alpha, h1, w1, F1, B1, F_prev, B_prev, F_prev.shape[0], F_prev.shape[1])
    last = _level(image, alpha, h, w, fg, bg, F1, B1, h1, w1)
    yp = last[8]
    done = 0  # steps of the level before run so far; its row r is final after step r + k1 - 1
    for s in range(h + n_iter - 1):
        need = yp[min(s + 1, h - 1)]  # the row of the level before that this step's new row reads
        while done < h1 + k1 - 1 and done <= need + k1 - 1:
            _step(before, done, k1, regularization, gradient_weight, b)
            done += 1
        _step(last, s, n_iter, regularization, gradient_weight, b)


@njit(SIGNATURE, cache=True, nogil=True)
def estimate_ml(image, alpha, fg, bg, regularization, n_small_iterations, n_big_iterations, small_size,
                gradient_weight):
    """pymatting's ``_estimate_fb_ml`` for one image: the foreground into ``fg`` ``[H, W, C]`` and the background
    into ``bg``: ``[H, W, C]``, or a ring of ``[rows, W, C]`` (:func:`.foreground.ml_background_rows`) whose
    content is then meaningless (the foreground is the same). ``image``, ``alpha``: float32, any strides."""
    h0, w0, depth = image.shape

    dtype = np.float32

    # Compute average foreground and background color (pymatting's order: the same float32 sums)
    F_mean_color = np.zeros(depth, dtype=dtype)
    B_mean_color = np.zeros(depth, dtype=dtype)
    F_count = 0
    B_count = 0
    for y in range(h0):
        for x in range(w0):
            if alpha[y, x] > 0.9:
                for c in range(depth):
                    F_mean_color[c] += image[y, x, c]
                F_count += 1
            if alpha[y, x] < 0.1:
                for c in range(depth):
                    B_mean_color[c] += image[y, x, c]
                B_count += 1

    F_mean_color /= F_count + 1e-5
    B_mean_color /= B_count + 1e-5

    F_prev = np.zeros((1, 1, depth), dtype=dtype) + F_mean_color
    B_prev = np.zeros((1, 1, depth), dtype=dtype) + B_mean_color

    n_levels = int(np.ceil(np.log2(max(w0, h0))))
    sizes = np.empty((n_levels + 1, 3), np.int64)  # h, w, sweeps per level
    for i_level in range(n_levels + 1):
        w = round(w0 ** (i_level / n_levels))
        h = round(h0 ** (i_level / n_levels))
        sizes[i_level, 0], sizes[i_level, 1] = h, w
        sizes[i_level, 2] = n_small_iterations if w <= small_size and h <= small_size else n_big_iterations

    b = np.zeros((2, depth), dtype=dtype)
    pipelined = n_levels >= 2
    # every level but the last two whole, as pymatting (each at most 1/16 of the image)
    for i_level in range(n_levels - 1 if pipelined else n_levels):
        h, w, n_iter = sizes[i_level, 0], sizes[i_level, 1], sizes[i_level, 2]
        F = np.empty((h, w, depth), dtype=dtype)
        B = np.empty((h, w, depth), dtype=dtype)
        level = _level(image, alpha, h, w, F, B, F_prev, B_prev, F_prev.shape[0], F_prev.shape[1])
        for s in range(h + n_iter - 1):
            _step(level, s, n_iter, regularization, gradient_weight, b)
        F_prev = F
        B_prev = B
    _last_level(image, alpha, fg, bg, F_prev, B_prev, sizes, regularization, gradient_weight, b, pipelined)
