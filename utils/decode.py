"""Decoding image files by content: EXIF orientation for every format, 16 bits and alpha kept, every frame.

OpenCV decodes stills (``IMREAD_UNCHANGED`` keeps 16-bit precision and alpha, and never rotates); PIL
reads the EXIF orientation (by content, whatever the file's name) and the frames of animated GIF, WebP
and PNG files (8-bit). Multi-page TIFFs come page by page through OpenCV.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageSequence
from torch import Tensor

from .bridges import np2tensor
from .checks import InputError, fail

log = logging.getLogger("cleancut")

ORIENTATION = 0x0112  # the EXIF tag


@contextmanager
def quiet_pil():
    with warnings.catch_warnings():
        # A photo above PIL's decompression-bomb size: OpenCV decodes the pixels, PIL reads only the header.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def read_image(path: Path) -> Tensor:
    """One file -> IMAGE ``[1,H,W,3|4]`` float32 (the first frame of an animated file); see :func:`read_frames`."""
    return next(read_frames(path))


def read_frames(path: Path) -> Iterator[Tensor]:
    """Decode ``path`` by its content -> one IMAGE ``[1,H,W,3|4]`` float32 per frame, lazily.

    The EXIF orientation is applied for every format (a JPEG named ``.png`` included); 16-bit files keep
    their precision and alpha is kept. Animated GIF / WebP / PNG and multi-page TIFF give every frame
    (GIF and animated WebP / PNG frames are 8-bit). What the decoders print (libpng's iCCP warnings) is
    logged with the file's name. Raises :class:`InputError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        fail(str(path), f"cannot be read ({exc.strerror or exc}).", InputError)
    im = _open(raw)
    orientation = _orientation(im, raw)
    if im is not None and im.format == "TIFF" and getattr(im, "n_frames", 1) > 1:
        arrays = _cv2_pages(path, raw)
    elif im is not None and (im.format == "GIF" or getattr(im, "n_frames", 1) > 1):
        arrays = _pil_frames(path, im)
    else:
        arrays = (_cv2_decode(path, raw) for _ in range(1))  # lazy: the array is not held past its frame
    for arr in arrays:
        image = np2tensor(_orient(_to_rgb(arr), orientation))
        del arr  # the decoded array is not kept while the caller holds the frame (144 MB at 48 MP)
        yield image


def _open(raw: bytes) -> Image.Image | None:
    try:
        with quiet_pil():
            return Image.open(io.BytesIO(raw))
    except Exception:  # noqa: BLE001  not a format PIL knows: OpenCV may still decode it
        return None


def _orientation(im: Image.Image | None, raw: bytes) -> int:
    """The EXIF orientation 1..8 (1 when there is none), whatever the format."""
    if im is None:
        return 1
    if im.format == "PNG" and "exif" not in im.info and b"eXIf" not in raw:
        return 1  # PIL's PNG getexif would decode the whole image to look for a chunk that is not there
    try:
        value = im.getexif().get(ORIENTATION, 1)
    except Exception:  # noqa: BLE001  a broken EXIF block: the pixels as stored
        return 1
    return value if value in range(1, 9) else 1


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """PIL's ``ImageOps.exif_transpose`` on an ``H x W x C`` array (any dtype)."""
    if orientation in (2, 4, 5, 7):  # the mirrored ones: flip left-right, then rotate as 1, 3, 8, 6
        arr = arr[:, ::-1]
    turns = {1: 0, 2: 0, 3: 2, 4: 2, 5: 1, 6: 3, 7: 3, 8: 1}[orientation]  # counter-clockwise quarter turns
    return np.rot90(arr, turns)


def _cv2_decode(path: Path, raw: bytes) -> np.ndarray:
    data = np.frombuffer(raw, dtype=np.uint8)
    # UNCHANGED: alpha and 16 bits kept, and no orientation applied here (it is applied by content above).
    with _native_stderr(path):
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if arr is None:
        fail(str(path), "not a readable image (corrupt, empty or unsupported format).", InputError)
    return _from_bgr(arr)


def _cv2_pages(path: Path, raw: bytes) -> Iterator[np.ndarray]:
    with _native_stderr(path):
        ok, pages = cv2.imdecodemulti(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if not ok or not pages:
        fail(str(path), "not a readable multi-page TIFF (corrupt or unsupported).", InputError)
    return (_from_bgr(p) for p in pages)


def _pil_frames(path: Path, im: Image.Image) -> Iterator[np.ndarray]:
    # Decided on the first frame, for all: one channel count keeps an animation in one batch.
    mode = "RGBA" if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info else "RGB"
    try:
        for frame in ImageSequence.Iterator(im):
            yield np.asarray(frame.convert(mode))
    except (OSError, ValueError, EOFError) as exc:
        fail(str(path), f"frame {im.tell() + 1} cannot be decoded ({exc}).", InputError)


def _from_bgr(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        return arr
    if arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    if arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return arr[..., 0]  # 2-channel (grey + alpha) files: the grey


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.dtype not in (np.uint8, np.uint16):  # float or 32-bit TIFFs: scaled to their own maximum
        arr = arr.astype(np.float32) / max(float(arr.max()), 1.0)
    return arr


@contextmanager
def _native_stderr(path: Path):
    """Log what C decoders (libpng, libtiff) write to file descriptor 2 meanwhile, with the file's name."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 (pythonw): nothing to collect
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    log.warning("%s: %s", path, line.strip())
