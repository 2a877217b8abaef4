"""Load the pack the way ComfyUI does, for the tests, benchmarks and tools: the repository folder is
imported by path under a fresh module name (``pack_<8 hex digits>``), so nothing depends on it being
installed or on the folder's name.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_pack():
    """Import the repository folder by path under a fresh module name, exactly as ComfyUI does."""
    name = f"pack_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
