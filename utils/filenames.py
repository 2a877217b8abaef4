"""File names for saved sets: the node's ``filename_prefix`` checked, expanded and split, the next counter.

ComfyUI core's SaveImage rules: ``%year%``-style variables, ``folder/name`` sub-folders inside the output
folder (real paths compared, so a symlink cannot lead outside), a counter after the highest one present.
"""

from __future__ import annotations

import os
import re
import time

from .checks import fail

DEFAULT_NAME = "cleancut"  # the name part of an empty prefix, or of one that names a folder ("a/..")
PREFIX = "filename_prefix"  # the node input the prefix errors are about
NAME_MAX = 255  # bytes per file name on ext4, btrfs, XFS, APFS (NTFS: 255 UTF-16 units)
SUFFIX_ROOM = len("_0000000_extracted.webp")  # what CleanCut appends to the name part of the prefix


def expand_variables(prefix: str, now: time.struct_time | None = None, size: tuple[int, int] | None = None) -> str:
    """Fill in core SaveImage's ``%year%`` ... ``%second%`` and ``%width%`` / ``%height%`` (of ``size``, (W, H)),
    and the ComfyUI frontend's ``%date:yyyy-MM-dd%`` (tokens yyyy yy MM M dd d hh h mm m ss s).

    Other ``%...%`` text is left as written, as core leaves it. ``now`` defaults to the local time.
    """
    if "%" not in prefix:
        return prefix
    now = time.localtime() if now is None else now
    values = {} if size is None else {"width": size[0], "height": size[1]}
    values.update(year=now.tm_year, month=f"{now.tm_mon:02}", day=f"{now.tm_mday:02}", hour=f"{now.tm_hour:02}",
                  minute=f"{now.tm_min:02}", second=f"{now.tm_sec:02}")
    for key, value in values.items():  # core's plain replacements, in core's order
        prefix = prefix.replace(f"%{key}%", str(value))
    return re.sub(r"%date:([^%]*)%", lambda m: _format_date(m.group(1), now), prefix)


def _format_date(pattern: str, now: time.struct_time) -> str:
    parts = {"d": now.tm_mday, "M": now.tm_mon, "h": now.tm_hour, "m": now.tm_min, "s": now.tm_sec}

    def token(m: re.Match) -> str:  # as the frontend's formatDate: one or two letters, zero-padded to length
        text = m.group(0)
        if text[0] == "y":
            return {"yy": f"{now.tm_year % 100:02}", "yyyy": str(now.tm_year)}.get(text, text)
        return str(parts[text[0]]).zfill(len(text))

    return re.sub(r"dd?|MM?|hh?|mm?|ss?|yyy?y?", token, pattern)


def split_prefix(prefix: str, root: str) -> tuple[str, str]:
    """``"sub/name"`` -> (absolute folder under ``root``, ``"name"``), as core SaveImage splits it.

    A prefix that names a folder (``"a/.."``, ``"."``, empty) gets the name ``"cleancut"``. Raises
    :class:`SettingError` for ``filename_prefix`` if it is not text, holds a control character, has a part
    too long for a file name, or leads outside ``root`` (by ``..``, an absolute path or a symlink).
    """
    if not isinstance(prefix, str):
        got = "None" if prefix is None else f"{type(prefix).__name__} {prefix!r:.60}"
        fail(PREFIX, f"expected text such as 'cleancut/cutout', got {got}.")
    bad = next((c for c in prefix if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        fail(PREFIX, f"{prefix!r:.80} contains the control character {bad!r}, which file names cannot hold; "
             "remove it.")
    norm = os.path.normpath(prefix.strip() or DEFAULT_NAME)
    sub, name = os.path.split(norm)
    if name in (".", ".."):  # "a/.." or "..": the prefix is a folder, files get the default name inside it
        sub, name = norm, DEFAULT_NAME
    for part in sub.split(os.sep):
        if len(part.encode("utf-8", "surrogatepass")) > NAME_MAX:
            fail(PREFIX, f"the folder name {part[:24]!r}... is {len(part.encode('utf-8', 'surrogatepass'))} bytes, "
                 f"too long: file systems allow {NAME_MAX}. Shorten it.")
    size, limit = len(name.encode("utf-8", "surrogatepass")), NAME_MAX - SUFFIX_ROOM
    if size > limit:
        fail(PREFIX, f"the name {name[:24]!r}... is {size} bytes, too long: file names can have {NAME_MAX} bytes and "
             f"CleanCut adds up to {SUFFIX_ROOM} (_<counter>_<role>.<ext>), so shorten it to at most {limit}.")
    base, folder = os.path.abspath(root), os.path.abspath(os.path.join(root, sub))
    if not inside(folder, base):
        fail(PREFIX, f"{prefix!r} points outside the output folder {base!r}; use a relative name such as "
             "'cleancut/cutout'.")
    real = os.path.realpath(folder)
    if not inside(real, os.path.realpath(base)):  # a symlink inside the output folder that points away
        fail(PREFIX, f"{prefix!r} leads outside the output folder through a symlink (to {real!r}); choose a "
             "folder that stays inside it.")
    return folder, name


def inside(path: str, base: str) -> bool:
    try:
        return os.path.commonpath([path, base]) == base
    except ValueError:  # another drive on Windows
        return False


def next_counter(folder: str, name: str) -> int:
    """One more than the highest ``<name>_<counter>_`` already in ``folder`` (1 in an empty folder)."""
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)_")
    found = [int(m.group(1)) for f in (os.listdir(folder) if os.path.isdir(folder) else []) if (m := pattern.match(f))]
    return max(found, default=0) + 1
