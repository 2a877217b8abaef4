"""The public API saved workflows and API prompts depend on, frozen against a committed snapshot.

Node ids, display names, categories, every input (section, order, type or choices, default and bounds)
and every output. A change here breaks users' graphs: new inputs go after the existing ones, optional.
Regenerate only for a deliberate addition: ``python tests/test_api_freeze.py > tests/data/api_snapshot.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("data") / "api_snapshot.json"
FROZEN_OPTIONS = ("default", "min", "max", "step", "multiline")


def describe(pack) -> dict:
    """Everything a saved workflow relies on, per node id; tooltips and descriptions left out."""
    api = {}
    for node_id, cls in sorted(pack.NODE_CLASS_MAPPINGS.items()):
        inputs = []
        for section, entries in cls.INPUT_TYPES().items():
            for name, (kind, *rest) in entries.items():
                opts = rest[0] if rest else {}
                inputs.append({"section": section, "name": name,
                               "type": list(kind) if isinstance(kind, (list, tuple)) else kind,
                               **{k: opts[k] for k in FROZEN_OPTIONS if k in opts}})
        api[node_id] = {
            "display_name": pack.NODE_DISPLAY_NAME_MAPPINGS[node_id],
            "category": cls.CATEGORY,
            "function": cls.FUNCTION,
            "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
            "inputs": inputs,
            "outputs": [list(cls.RETURN_TYPES), list(cls.RETURN_NAMES)],
        }
    return api


def test_public_api_matches_the_snapshot(pack):
    frozen = json.loads(SNAPSHOT.read_text())
    now = describe(pack)
    assert sorted(now) == sorted(frozen), "a node id was added or removed: update the snapshot deliberately"
    for node_id, spec in frozen.items():
        for key, value in spec.items():
            assert now[node_id][key] == value, f"{node_id}.{key} changed"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import PACK

    sys.stdout.write(json.dumps(describe(PACK), indent=1) + "\n")
