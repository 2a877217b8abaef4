"""Node declarations as data: each class states its inputs, outputs and names; ComfyUI's API is derived.

``INPUT_TYPES`` is built from ``REQUIRED`` / ``OPTIONAL`` / ``HIDDEN``, so a later port to ComfyUI's V3
``define_schema`` maps attribute to attribute. Nodes keep no state on ``self``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..utils.checks import SettingError, check_choice, check_flag, check_number


class Node:
    """Base of every CleanCut node: the node id is the class name, ``DISPLAY_NAME`` its menu name."""

    DISPLAY_NAME: str = ""
    SEARCH_ALIASES: tuple = ()  # words users type in the node search; /object_info's search_aliases (see README)
    DESCRIPTION: str = ""
    CATEGORY: str = ""
    FUNCTION = "run"
    REQUIRED: dict = {}  # name -> (type, options), in widget order: saved workflows depend on it
    # options may carry "advanced": True (widgets.advanced): expert settings the front end may fold away
    OPTIONAL: dict = {}  # inputs added later go here, after the existing ones
    HIDDEN: dict = {}
    RETURN_TYPES: tuple = ()
    RETURN_NAMES: tuple = ()
    OUTPUT_TOOLTIPS: tuple = ()

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        spec = {"required": dict(cls.REQUIRED)}
        if cls.OPTIONAL:
            spec["optional"] = dict(cls.OPTIONAL)
        if cls.HIDDEN:
            spec["hidden"] = dict(cls.HIDDEN)
        return spec

    @classmethod
    def check_widgets(cls, values: dict) -> None:
        """Check widget values passed straight to the node's function against its declared bounds.

        ComfyUI enforces ``min``/``max`` and combo lists only for queued graphs; a direct call (a script,
        another node pack) gets the same rule here, as a ``SettingError`` that names the input.
        """
        for name, (kind, *rest) in {**cls.REQUIRED, **cls.OPTIONAL}.items():
            if values.get(name) is None:
                continue
            opts = rest[0] if rest else {}
            if isinstance(kind, (list, tuple)):
                check_choice(values[name], name, kind)
            elif kind in ("INT", "FLOAT"):
                check_number(values[name], name, opts.get("min"), opts.get("max"), integer=kind == "INT")
            elif kind == "BOOLEAN":
                check_flag(values[name], name)


def registry(classes: Iterable[type[Node]]) -> tuple[dict[str, type[Node]], dict[str, str]]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` from node classes; ids and names must be unique."""
    by_id: dict[str, type[Node]] = {}
    names: dict[str, str] = {}
    for cls in classes:
        node_id = cls.__name__
        if node_id in by_id:
            raise SettingError(node_id, "registered twice; every node id must be unique.")
        if not cls.DISPLAY_NAME or cls.DISPLAY_NAME in names.values():
            raise SettingError(node_id, f"display name {cls.DISPLAY_NAME!r} is empty or already taken.")
        by_id[node_id], names[node_id] = cls, cls.DISPLAY_NAME
    return by_id, names
