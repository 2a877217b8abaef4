"""Write example_workflows/*.json (UI format, as ComfyUI saves them) and their thumbnails.

    python tools/make_workflows.py

Each workflow is described compactly below; widget values come from the nodes' own INPUT_TYPES
(defaults, overridden per node), so a freshly generated file always matches the code. The files are
committed; tests/test_workflows.py then keeps them honest when the code changes later.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from executor import run_prompt  # noqa: E402
from packloader import load_pack  # noqa: E402
from workflows import (  # noqa: E402
    TITLE_HEIGHT,
    core_stand_ins,
    min_size,
    shows_images,
    socket_inputs,
    ui_to_api,
    widget_names,
)

EXAMPLE = "cleancut_example.jpg"
FRAMES = "cleancut_frames.webp"  # an 8-frame clip of the cat: a hand-held camera's jitter and sensor noise


def write_frames(path: Path, count: int = 8) -> None:
    """The frame-batch asset: the cat photo moved by up to 2 px and zoomed by up to 1 % per frame, with sensor
    noise (sigma 3/255), as an animated WebP (core's Load Image reads every frame into one batch)."""
    import cv2
    import numpy as np
    from PIL import Image

    cat = np.asarray(Image.open(ROOT / "assets" / "cleancut_cat.jpg").convert("RGB"), dtype=np.float32)
    h, w = cat.shape[:2]
    rng = np.random.default_rng(14)
    frames = []
    for _ in range(count):
        zoom, (dx, dy) = 1 + 0.01 * rng.random(), rng.uniform(-2, 2, 2)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, zoom)
        m[:, 2] += (dx, dy)
        moved = cv2.warpAffine(cat, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        noisy = np.clip(moved + rng.normal(0, 3, moved.shape), 0, 255).round().astype(np.uint8)
        frames.append(Image.fromarray(noisy))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=125, loop=0, quality=90, method=4)


def widget_values(cls, node_type: str, overrides: dict) -> list:
    spec = {**cls.INPUT_TYPES().get("required", {}), **cls.INPUT_TYPES().get("optional", {})}
    values = []
    for name in widget_names(cls):
        kind, *rest = spec[name]
        opts = rest[0] if rest else {}
        default = opts.get("default", kind[0] if isinstance(kind, (list, tuple)) and kind else None)
        values.append(overrides.get(name, default))
    if node_type == "LoadImage":
        values.append("image")  # the upload button's saved value, as the front end writes it
    return values


# Layout: data flows left to right. Each node starts GAP_X right of its inputs' right edges, then of any node
# of its lane (row, given per node, default 0) it would overlap; a node without inputs (Load Image) then moves
# right up to its first consumer. Lanes are as tall as their tallest node; sizes come from the widgets.
GAP_X, GAP_Y = 30, 40  # between columns; between a lane's lowest node and the next lane's title bars
CHAR_WIDTH, TITLE_CHAR_WIDTH = 6.5, 9.0  # px per character: widget text (12 px font), titles (14 px, newer: bold)
WIDGET_PADDING = 104  # a widget row's margins and arrows around its label and value
IMAGE_WIDTH = 300  # nodes that show a picture: a 3:2 photo at IMAGE_PREVIEW_HEIGHT
# The saved view (extra.ds) frames the graph for the front end's canvas at the browser check's 1600 x 1000 window
# (1.27: the canvas right of a 64 px side bar, below 78 px of tabs and menu), at the largest zoom in 0.8..1.0 that
# shows all of it: below 0.57 the front end draws no text at all. The margin left and top is wider, as newer front
# ends lay their side bar and tool bar over the canvas.
CANVAS, ZOOM = (1536, 922), (0.8, 1.0)
MARGIN_LEFT_TOP, MARGIN_RIGHT_BOTTOM = (80, 90), 40


def value_text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def node_size(cls, node_type: str, values: list) -> list[int]:
    """(width, height) of a node: the front end's minimum height; wide enough for its title, its slot names and
    each widget's label beside its value, so nothing is truncated."""
    width, height = min_size(cls)
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    slots = max(map(len, socket_inputs(cls)), default=0) + max(map(len, names), default=0)
    texts = [len(name) + 1 + len(value_text(v)) for name, v in zip(widget_names(cls), values, strict=False)]
    width = max(width, TITLE_CHAR_WIDTH * len(getattr(cls, "DISPLAY_NAME", node_type)) + 40,
                CHAR_WIDTH * slots + 45, CHAR_WIDTH * max(texts, default=0) + WIDGET_PADDING,
                IMAGE_WIDTH if shows_images(cls) else 0)
    return [int(-(-width // 10) * 10), height]


def place(nodes: list[tuple], sizes: dict) -> dict:
    """{node id: [x, y]} (y below the title bar, as saved) for nodes in execution order."""
    lane = {nid: (rest[0] if rest else 0) for nid, _, _, _, *rest in nodes}
    x: dict = {}

    def free(nid, at: float) -> float:  # the first x >= at where nid overlaps no placed node of its lane
        for other in sorted((o for o in x if lane[o] == lane[nid]), key=x.get):
            if at < x[other] + sizes[other][0] + GAP_X and x[other] < at + sizes[nid][0] + GAP_X:
                at = x[other] + sizes[other][0] + GAP_X
        return at

    for nid, _, _, inputs, *_ in nodes:
        x[nid] = free(nid, max((x[src] + sizes[src][0] + GAP_X for src, _ in inputs.values()), default=0))
    for nid, _, _, inputs, *_ in nodes:  # sources next to their first consumer, where their lane has room
        consumers = [x[m] for m, _, _, ins, *_ in nodes if any(src == nid for src, _ in ins.values())]
        if not inputs and consumers:
            at = min(consumers) - GAP_X - sizes[nid][0]
            del x[nid]
            x[nid] = at if free(nid, at) == at else free(nid, 0)
    lane_y, y = {}, TITLE_HEIGHT
    for r in sorted(set(lane.values())):
        lane_y[r] = y
        y += max(sizes[n][1] for n in lane if lane[n] == r) + GAP_Y + TITLE_HEIGHT
    return {nid: [round(x[nid]), lane_y[lane[nid]]] for nid in x}


def view(ui_nodes: list[dict]) -> dict:
    """extra.ds: the largest zoom in ZOOM that shows the whole graph on CANVAS, else the smallest; the graph
    centred across (or, if wider than the canvas, its left end shown first) below the top margin."""
    left = min(n["pos"][0] for n in ui_nodes)
    top = min(n["pos"][1] - TITLE_HEIGHT for n in ui_nodes)
    width = max(n["pos"][0] + n["size"][0] for n in ui_nodes) - left
    height = max(n["pos"][1] + n["size"][1] for n in ui_nodes) - top
    room = [size - margin - MARGIN_RIGHT_BOTTOM for size, margin in zip(CANVAS, MARGIN_LEFT_TOP, strict=True)]
    scale = min(max(math.floor(min(room[0] / width, room[1] / height) * 100) / 100, ZOOM[0]), ZOOM[1])
    screen_left = MARGIN_LEFT_TOP[0] + max(0.0, (room[0] - width * scale) / 2)
    screen_top = MARGIN_LEFT_TOP[1]
    return {"scale": scale, "offset": [round(screen_left / scale - left, 1), round(screen_top / scale - top, 1)]}


def build(nodes: list[tuple], classes: dict) -> dict:
    """nodes: (id, type, {widget: value}, {input: (source id, output slot)}[, lane]) in execution order."""
    values = {nid: widget_values(classes[ntype], ntype, widgets) for nid, ntype, widgets, _, *_ in nodes}
    sizes = {nid: node_size(classes[ntype], ntype, values[nid]) for nid, ntype, _, _, *_ in nodes}
    pos = place(nodes, sizes)
    ui_nodes, links, by_id = [], [], {}
    for order, (nid, ntype, _, inputs, *_) in enumerate(nodes):
        cls = classes[ntype]
        names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
        spec = {**cls.INPUT_TYPES().get("required", {}), **cls.INPUT_TYPES().get("optional", {})}
        node = {"id": nid, "type": ntype, "pos": pos[nid], "size": sizes[nid], "flags": {}, "order": order, "mode": 0,
                "inputs": [], "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                                          for i, (n, t) in enumerate(zip(names, cls.RETURN_TYPES, strict=True))],
                "properties": {"Node name for S&R": ntype},
                "widgets_values": values[nid]}
        for name, (src, slot) in inputs.items():
            link_id = len(links) + 1
            kind = spec[name][0]
            links.append([link_id, src, slot, nid, len(node["inputs"]), kind])
            node["inputs"].append({"name": name, "type": kind, "link": link_id})
            by_id[src]["outputs"][slot]["links"].append(link_id)
        ui_nodes.append(node)
        by_id[nid] = node
    return {"last_node_id": max(by_id), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
            "groups": [], "config": {}, "extra": {"ds": view(ui_nodes)}, "version": 0.4}


WORKFLOWS = {
    "01_preprocess_compare": [
        (1, "LoadImage", {"image": EXAMPLE}, {}),
        (2, "CleanCutBilateral", {"sigma_color": 40.0, "sigma_space": 9.0}, {"image": (1, 0)}),
        (3, "CleanCutCLAHE", {"clip_limit": 2.0}, {"image": (2, 0)}),
        (4, "CleanCutSaturation", {"saturation": 1.25}, {"image": (3, 0)}),
        (5, "CleanCutSharpen", {"radius": 1.5, "amount": 0.8}, {"image": (4, 0)}),
        (6, "CleanCutGammaGain", {"gamma": 1.1}, {"image": (5, 0)}),
        (7, "CleanCutCompare", {"caption": "original | filters one by one"}, {"image_a": (1, 0), "image_b": (6, 0)},
         1),  # lane 1, below the chain: its long link from Load Image does not run along the chain's links
        (8, "PreviewImage", {}, {"images": (7, 0)}, 1),
        (9, "CleanCutPreprocess", {"bilateral_strength": 40.0, "clip_limit": 2.0, "saturation": 1.25,
                                   "sharpness": 0.8, "sharpen_radius": 1.5, "gamma": 1.1}, {"image": (1, 0)}, 1),
        (10, "PreviewImage", {}, {"images": (9, 1)}, 1),
    ],
    "02_preprocess_rembg_matting_save": [
        (1, "LoadImage", {"image": EXAMPLE}, {}),
        (2, "CleanCutPreprocess", {"clip_limit": 1.5, "sharpness": 0.5}, {"image": (1, 0)}),
        (3, "CleanCutRembg", {"alpha_matting": True}, {"images": (2, 0), "original": (1, 0)}),
        (4, "CleanCutSave", {"filename_prefix": "cleancut/matting"},
         {"original": (1, 0), "cutout": (3, 0), "extracted": (3, 2), "mask": (3, 1)}),
    ],
    "03_threshold_cutout_batch": [
        (1, "LoadImage", {"image": EXAMPLE}, {}),
        (2, "RepeatImageBatch", {"amount": 4}, {"image": (1, 0)}),
        (3, "CleanCutAlphaThreshold", {"mode": "background", "threshold": 127, "threshold_tolerance": 2},
         {"images": (2, 0)}),
        (4, "CleanCutSave", {"filename_prefix": "cleancut/threshold"}, {"cutout": (3, 0), "mask": (3, 1)}),
    ],
    "04_batch_full_chain": [
        (1, "LoadImage", {"image": "cleancut_cat.jpg"}, {}),
        (2, "RepeatImageBatch", {"amount": 4}, {"image": (1, 0)}),  # stands in for a sampler's batch
        (3, "CleanCutPreprocess", {"saturation": 1.2, "gamma": 1.1, "bilateral_strength": 20.0}, {"image": (2, 0)}),
        (4, "CleanCutRembg", {"background": "white", "post_process_mask": True}, {"images": (3, 0),
                                                                                  "original": (2, 0)}),
        (5, "CleanCutSave", {"filename_prefix": "cleancut/generated"},
         {"original": (2, 0), "cutout": (4, 0), "extracted": (4, 2), "mask": (4, 1)}),
        (6, "PreviewImage", {}, {"images": (3, 1)}, 1),
    ],
    "05_rembg_refine_edges_save": [
        (1, "LoadImage", {"image": "cleancut_cat.jpg"}, {}),
        (2, "CleanCutRembg", {}, {"images": (1, 0)}),
        (3, "CleanCutRefineEdges", {}, {"image": (1, 0), "mask": (2, 1)}),
        (4, "CleanCutSave", {"filename_prefix": "cleancut/refined"},
         {"original": (1, 0), "cutout": (3, 0), "mask": (3, 1)}),
        (5, "PreviewImage", {}, {"images": (3, 2)}, 1),
    ],
    "06_rembg_refine_mask_composite": [
        (1, "LoadImage", {"image": "cleancut_cat.jpg"}, {}),
        (2, "CleanCutRembg", {}, {"images": (1, 0)}),
        (3, "CleanCutMask", {"fill_holes": True, "remove_islands": 200, "smooth": 1.0, "feather": 3},
         {"mask": (2, 1)}),
        (4, "LoadImage", {"image": EXAMPLE}, {}, 1),
        (5, "CleanCutComposite", {"background": "image", "fit": "cover"},
         {"foreground": (1, 0), "mask": (3, 0), "background_image": (4, 0)}),
        (6, "PreviewImage", {}, {"images": (5, 0)}),
    ],
    "07_frames_temporal_mask": [
        (1, "LoadImage", {"image": FRAMES}, {}),
        (2, "CleanCutRembg", {}, {"images": (1, 0)}),
        (3, "CleanCutMask", {"remove_islands": 200, "temporal": 0.5}, {"mask": (2, 1)}),
        (4, "CleanCutComposite", {"background": "blurred original", "blur": 12.0},
         {"foreground": (1, 0), "mask": (3, 0)}),
        (5, "PreviewImage", {}, {"images": (4, 0)}),
    ],
    "08_frames_to_video_with_alpha": [
        (1, "LoadImage", {"image": FRAMES}, {}),
        (2, "CleanCutRembg", {}, {"images": (1, 0)}),
        (3, "CleanCutMask", {"remove_islands": 200, "temporal": 0.5}, {"mask": (2, 1)}),
        (4, "CleanCutSaveVideo", {"fps": 8.0, "filename_prefix": "cleancut/clip"}, {"images": (1, 0),
                                                                                     "mask": (3, 0)}),
    ],
}
THUMBNAIL_FROM = {"01_preprocess_compare": ("7", 0), "02_preprocess_rembg_matting_save": ("3", 0),
                  "03_threshold_cutout_batch": ("3", 0), "04_batch_full_chain": ("4", 0),
                  "05_rembg_refine_edges_save": ("3", 0), "06_rembg_refine_mask_composite": ("5", 0),
                  "07_frames_temporal_mask": ("4", 0), "08_frames_to_video_with_alpha": ("2", 0)}


def main() -> None:
    import os
    import tempfile

    from PIL import Image

    if not (ROOT / "assets" / FRAMES).exists():
        write_frames(ROOT / "assets" / FRAMES)
    pack = load_pack()
    classes = {**pack.NODE_CLASS_MAPPINGS, **core_stand_ins(ROOT / "assets")}
    out_dir = ROOT / "example_workflows"
    out_dir.mkdir(exist_ok=True)
    os.environ.setdefault("CLEANCUT_OUTPUT_DIR", tempfile.mkdtemp())
    for name, nodes in WORKFLOWS.items():
        workflow = build(nodes, classes)
        (out_dir / f"{name}.json").write_text(json.dumps(workflow, indent=1) + "\n")
        run = run_prompt(ui_to_api(workflow, classes), classes)
        node_id, slot = THUMBNAIL_FROM[name]
        image = run.outputs[node_id][slot][0]
        thumb = Image.fromarray((image.clamp(0, 1).numpy() * 255 + 0.5).astype("uint8"))
        background = Image.new("RGBA", thumb.size, (200, 200, 200, 255))  # show transparency as grey
        thumb = Image.alpha_composite(background, thumb.convert("RGBA")).convert("RGB")
        thumb.thumbnail((512, 512))
        thumb.save(out_dir / f"{name}.jpg", quality=85)
        print(f"wrote {name}.json and .jpg")  # noqa: T201


if __name__ == "__main__":
    main()
