"""Lossless saving of a cut-out set: one stem per batch item, a role suffix per file.

``<prefix>_<counter>_original.png``, ``_cutout.png`` (RGBA), ``_extracted.png`` (RGBA), ``_mask.png``
(8-bit grey, 255 = subject). The counter continues after the highest one in the folder, as core
SaveImage's does, and an existing file is never overwritten.

Each file is encoded to a hidden temporary file in the target folder and hard-linked to its name, which
fails if the name exists: a failed write (disk full, a format limit) leaves no partial file, and an item's
files appear all together or not at all. A name taken meanwhile (another save to the same prefix) moves
the item on to the next counter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Mapping

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from torch import Tensor

from .bridges import to_pil
from .checks import CleanCutError, InputError, as_mask, check_image, fail
from .filenames import PREFIX, expand_variables, inside, next_counter, split_prefix  # noqa: F401 (re-exported)

ROLES = ("original", "cutout", "extracted", "mask")
FORMATS = {"png": ".png", "webp (lossless)": ".webp"}
WEBP_MAX = 16383  # pixels per side a WebP can hold; Pillow fails mid-write ("encoding error 5") above it
_PLACE_LOCK = threading.Lock()  # threads of one process claim counters one at a time (encoding runs outside)
TEMP_NAME = re.compile(r"\.cleancut-[0-9a-f]{32}\.tmp(\.[a-z0-9]+)?")  # _write_temps' and VideoWriter's, only


class SaveError(CleanCutError):
    """A file could not be written (disk full, no permission, a name taken); ``saved`` lists the paths kept."""

    def __init__(self, name: str, message: str, saved: Iterable[str] = ()):
        super().__init__(name, message)
        self.saved = list(saved)


def _make_folder(folder: str, root: str) -> None:
    """Create ``folder`` (below ``root``); a file in the way is a :class:`SettingError` naming it."""
    base, parts, path = os.path.abspath(root), [], folder
    while path != base and inside(path, base):
        parts.append(path)
        path = os.path.dirname(path)
    for path in reversed(parts):  # from the output folder down: the first file in the way
        if os.path.lexists(path) and not os.path.isdir(path):
            fail(PREFIX, f"needs the folder {os.path.relpath(folder, base)!r}, but {os.path.relpath(path, base)!r} "
                 "is a file in the output folder; choose another folder name, or move that file.")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise SaveError(PREFIX, f"cannot create the folder {folder!r} ({_why(exc)}); check that the output "
                        "folder is writable.") from exc


def batch_length(items: Mapping[str, Tensor]) -> int:
    """Common batch length of the connected inputs; a batch of 1 broadcasts, other mismatches are errors."""
    sizes = {role: t.shape[0] for role, t in items.items()}
    many = {n for n in sizes.values() if n != 1}
    if len(many) > 1:
        listed = ", ".join(f"{role}: {n}" for role, n in sizes.items())
        odd = [role for role, n in sizes.items() if n != 1][-1]
        fail(odd, f"the connected inputs have different batch sizes ({listed}); connect batches of the "
             "same length, or a single image to go with every item.", InputError)
    return many.pop() if many else 1


def check_items(items: Mapping[str, Tensor | None]) -> tuple[dict[str, Tensor], int]:
    """Drop unconnected roles, validate the rest, and return them with their common batch length."""
    items = {role: t for role, t in items.items() if t is not None}
    for role in items:
        if role not in ROLES:
            fail(str(role), f"is not a role CleanCut saves; use {', '.join(ROLES)}.")
    if not items:
        fail("", "Nothing to save: connect at least one of original, cutout, extracted or mask.", InputError)
    for role, t in items.items():
        if role == "mask":
            items[role] = as_mask(t, role)  # [H, W] and bool masks too; detached
        else:
            check_image(t, role)
            items[role] = t.detach()  # as every entry point: a tensor that requires grad (a script) is fine
    return items, batch_length(items)


def _check_format(fmt: object) -> str:
    """The file extension of ``fmt``, or a :class:`SettingError` for ``format``."""
    if not isinstance(fmt, str) or fmt not in FORMATS:
        fail("format", f"{fmt!r} is not one of {', '.join(map(repr, FORMATS))}; choose png or webp (lossless).")
    return FORMATS[fmt]


def _check_fits(items: Mapping[str, Tensor], ext: str) -> None:
    """Refuse sizes the format cannot store before anything is written (WebP: 16383 px per side)."""
    if ext != ".webp":
        return
    for role, t in items.items():
        if max(t.shape[1], t.shape[2]) > WEBP_MAX:
            fail("format", f"WebP stores at most {WEBP_MAX} pixels per side, but {role} is {t.shape[2]}x"
                 f"{t.shape[1]}; choose png for images this large.")


def _metadata_text(metadata: Mapping | None) -> dict[str, str]:
    """``metadata`` as JSON text per key, serialised once for every file."""
    text = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str):
            fail("metadata", f"keys must be text, got {key!r}.")
        try:
            text[key] = json.dumps(value)
        except (TypeError, ValueError) as exc:
            fail("metadata", f"{key!r} cannot be stored as JSON text in the file ({exc}); pass dicts, lists, "
                 "strings and numbers only.")
    return text


def _to_pil(role: str, t: Tensor) -> Image.Image:
    return to_pil(t, "L" if role == "mask" else ("RGBA" if t.shape[-1] == 4 else "RGB"))


def _encode(img: Image.Image, f, ext: str, metadata: Mapping[str, str]) -> None:
    kwargs: dict = {}
    if ext == ".png":
        kwargs["compress_level"] = 4  # core SaveImage's level: lossless either way, much faster than 9
        if metadata:
            info = PngInfo()
            for key, text in metadata.items():
                info.add_text(key, text)
            kwargs["pnginfo"] = info
    else:
        kwargs.update(lossless=True, exact=True, quality=80, method=4)  # exact: keep RGB under alpha 0
        if metadata:  # as core's WebP savers: one EXIF tag per entry, "key:json"
            exif = img.getexif()
            for tag, (key, text) in zip(range(0x0110, 0x0100, -1), metadata.items(), strict=False):
                exif[tag] = f"{key}:{text}"
            kwargs["exif"] = exif
    img.save(f, format="PNG" if ext == ".png" else "WEBP", **kwargs)


class _RoleFailed(Exception):
    """Internal: encoding ``role`` failed with ``cause``; nothing of the item is left on disk."""

    def __init__(self, role: str, cause: BaseException):
        super().__init__(role, cause)
        self.role, self.cause = role, cause


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _remove(paths: Iterable[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def remove_temps(folder: str, modified_after: float = float("-inf"), modified_before: float = float("inf")) -> int:
    """Remove the temporary files (:data:`TEMP_NAME`) in ``folder`` last modified between the two times (seconds
    since the epoch): what a process killed mid-write left behind. Returns how many were removed."""
    try:
        names = [n for n in os.listdir(folder) if TEMP_NAME.fullmatch(n)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        path = os.path.join(folder, name)
        try:
            if modified_after <= os.lstat(path).st_mtime < modified_before:
                if os.path.isdir(path) and not os.path.islink(path):  # a PNG sequence's folder (VideoWriter)
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
                removed += 1
        except OSError:  # its write finished meanwhile, or the folder is read-only: left as it is
            pass
    return removed


def _write_temps(folder: str, items: Mapping[str, Tensor], index: int, ext: str,
                 metadata: Mapping[str, str]) -> list[tuple[str, str]]:
    """Encode item ``index`` of every role to hidden temporary files in ``folder``: ``[(role, temp path)]``.

    On any failure the temporary files are removed and :class:`_RoleFailed` names the role.
    """
    temps: list[tuple[str, str]] = []
    role = ""
    try:
        for role in (r for r in ROLES if r in items):
            t = items[role]
            temp = os.path.join(folder, f".cleancut-{uuid.uuid4().hex}.tmp")  # TEMP_NAME; never <name>_<counter>_
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            temps.append((role, temp))
            with os.fdopen(fd, "wb") as f:
                _encode(_to_pil(role, t[index % t.shape[0]]), f, ext, metadata)
    except Exception as exc:
        _remove(temp for _, temp in temps)
        raise _RoleFailed(role, exc) from exc
    except BaseException:  # an interrupt: no temporary file stays behind either
        _remove(temp for _, temp in temps)
        raise
    return temps


def _link(temp: str, final: str) -> None:
    """Give ``temp``'s file the name ``final``; ``FileExistsError`` if ``final`` exists (never overwrites)."""
    try:
        os.link(temp, final)
        return
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, exFAT, some network shares): claim the name, then replace
        pass
    os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        os.replace(temp, final)
    except BaseException:
        _remove([final])
        raise


def _unlink_placed(placed: list[tuple[str, str]]) -> None:
    """Undo :func:`_link`: drop the names, or move the file back where the fallback moved it."""
    for temp, final in placed:
        if os.path.exists(temp):
            _remove([final])
        else:
            os.replace(final, temp)


def _place(pairs: list[tuple[str, str]]) -> None:
    """Link every ``(temp, final)``, all or none; ``FileExistsError`` (nothing placed) if a name is taken."""
    placed: list[tuple[str, str]] = []
    try:
        for temp, final in pairs:
            _link(temp, final)
            placed.append((temp, final))
    except BaseException:
        _unlink_placed(placed)
        raise


def _final(folder: str, stem: str, role: str, ext: str) -> str:
    return os.path.join(folder, f"{stem}_{role}{ext}")


def write_item(folder: str, stem: str, items: Mapping[str, Tensor], index: int, fmt: str = "png",
               metadata: Mapping | None = None) -> list[tuple[str, str]]:
    """Write batch item ``index`` of every role as ``<folder>/<stem>_<role>.<ext>``; returns (role, path).

    The item's files appear together or not at all, and an existing file is never overwritten: a taken
    name or a failed write is a :class:`SaveError` (named after the role) and leaves no file behind.
    """
    ext = _check_format(fmt)
    _check_fits(items, ext)
    text = _metadata_text(metadata)
    try:
        temps = _write_temps(folder, items, index, ext, text)
    except _RoleFailed as failed:
        raise SaveError(failed.role, f"could not write {_final(folder, stem, failed.role, ext)!r} "
                        f"({_why(failed.cause)}); no file of this item was kept.") from failed.cause
    pairs = [(temp, _final(folder, stem, role, ext)) for role, temp in temps]
    try:
        _place(pairs)
    except FileExistsError as exc:
        role, taken = next(((r, f) for (r, _), (_, f) in zip(temps, pairs, strict=True) if os.path.lexists(f)),
                           (temps[0][0], stem))
        raise SaveError(role, f"{taken!r} exists already and CleanCut never overwrites a file; remove it or "
                        "write elsewhere. No file of this item was kept.") from exc
    except OSError as exc:
        raise SaveError(temps[0][0], f"could not write {stem!r} in {folder!r} ({_why(exc)}); no file of this "
                        "item was kept.") from exc
    finally:
        _remove(temp for _, temp in temps)
    return [(role, final) for (role, _), (_, final) in zip(temps, pairs, strict=True)]


def _free_counter(folder: str, name: str, ext: str, counter: int) -> int:
    """The first counter from ``counter`` on with no file of any role."""
    while any(os.path.lexists(_final(folder, f"{name}_{counter:05}", r, ext)) for r in ROLES):
        counter += 1
    return counter


def _place_numbered(folder: str, name: str, ext: str, temps: list[tuple[str, str]], counter: int) -> int:
    """Link ``temps`` under the first free counter from ``counter`` on; returns the counter used."""
    with _PLACE_LOCK:
        while True:
            counter = _free_counter(folder, name, ext, counter)
            stem = f"{name}_{counter:05}"
            pairs = [(temp, _final(folder, stem, role, ext)) for role, temp in temps]
            try:
                _place(pairs)
            except FileExistsError:  # another process took this counter meanwhile: try the next one
                counter += 1
                continue
            ours = {role for role, _ in temps}
            if any(os.path.lexists(_final(folder, stem, r, ext)) for r in ROLES if r not in ours):
                _unlink_placed(pairs)  # another process put a different role under this counter meanwhile
                counter += 1
                continue
            return counter


def _failure(what: str, exc: BaseException, saved: list[dict], folder: str) -> SaveError:
    """The error for a failed save: what failed, why, and what was kept before it."""
    names = [s["filename"] for s in saved]
    if names:
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        kept = f"saved before the failure: {len(names)} files in {folder!r} ({shown})"
        items = sorted({n.rsplit("_", 1)[0] for n in names})
        kept += (f"; item {items[0]} is complete" if len(items) == 1
                 else f"; items {items[0]} to {items[-1]} are complete")
    else:
        kept = "nothing was saved"
    return SaveError(PREFIX, f"could not write {what}: {_why(exc)}. {kept[0].upper()}{kept[1:]}. The failed item "
                     "left no file. "
                     "Check the free space and permissions of the output folder, then queue again.",
                     [s["path"] for s in saved])


def save_set(root: str, prefix: str, items: Mapping[str, Tensor | None], fmt: str = "png",
             metadata: Mapping | None = None) -> list[dict]:
    """Write every connected role of every batch item; returns ComfyUI preview entries, in order.

    Args:
        root: output folder; ``prefix`` may add sub-folders below it.
        prefix: file name prefix, e.g. ``"cleancut/cutout"``; core's ``%year%``-style variables are filled in
            (:func:`expand_variables`, ``%width%``/``%height%`` of the first item).
        items: role -> IMAGE ``[B,H,W,C]`` (``mask``: MASK ``[B,H,W]``, or one ``[H,W]``; bool is 0/1); ``None``
            roles are skipped.
        fmt: ``"png"`` or ``"webp (lossless)"``.
        metadata: PNG text chunks (``{"prompt": ..., "workflow": ...}``), or ``None``.
    Returns:
        ``[{"filename", "subfolder", "type": "output", "role", "path"}, ...]``.
    Raises:
        SettingError / InputError: bad inputs, before anything is written. SaveError: a write failed; the
            items saved before it stay (listed in the message and in ``.saved``), the failed one left no file.
    """
    ext = _check_format(fmt)
    items, n = check_items(items)
    _check_fits(items, ext)
    text = _metadata_text(metadata)
    if isinstance(prefix, str):
        first = items[next(r for r in ROLES if r in items)]
        prefix = expand_variables(prefix, size=(first.shape[2], first.shape[1]))
    folder, name = split_prefix(prefix, root)
    _make_folder(folder, root)
    subfolder = os.path.relpath(folder, os.path.abspath(root))
    subfolder = "" if subfolder == "." else subfolder
    counter, saved = next_counter(folder, name), []
    for i in range(n):
        counter = _free_counter(folder, name, ext, counter)  # the likely name, for the message if writing fails
        try:
            temps = _write_temps(folder, items, i, ext, text)
        except _RoleFailed as failed:
            what = f"{name}_{counter:05}_{failed.role}{ext} (item {i + 1} of {n})"
            raise _failure(what, failed.cause, saved, folder) from failed.cause
        try:
            counter = _place_numbered(folder, name, ext, temps, counter)
        except OSError as exc:
            raise _failure(f"item {i + 1} of {n} as {name}_{counter:05}_*{ext}", exc, saved, folder) from exc
        finally:
            _remove(temp for _, temp in temps)
        for role, _ in temps:
            path = _final(folder, f"{name}_{counter:05}", role, ext)
            saved.append({"filename": os.path.basename(path), "subfolder": subfolder, "type": "output",
                          "role": role, "path": path})
        counter += 1
    return saved
