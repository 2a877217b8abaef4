"""Write example_workflows/*.json (UI format, as ComfyUI saves them) and their thumbnails.

    python tools/make_workflows.py

Each workflow is described compactly below; widget values come from the nodes' own INPUT_TYPES
(defaults, overridden per node), so a freshly generated file always matches the code. The files are
committed; tests/test_workflows.py then keeps them honest when the code changes later.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from executor import run_prompt  # noqa: E402
from packloader import load_pack  # noqa: E402
from workflows import core_stand_ins, ui_to_api, widget_names  # noqa: E402

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


def build(nodes: list[tuple], classes: dict) -> dict:
    """nodes: (id, type, {widget: value}, {input: (source id, output slot)}) in execution order."""
    ui_nodes, links, by_id = [], [], {}
    for order, (nid, ntype, widgets, inputs) in enumerate(nodes):
        cls = classes[ntype]
        names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
        spec = {**cls.INPUT_TYPES().get("required", {}), **cls.INPUT_TYPES().get("optional", {})}
        node = {"id": nid, "type": ntype, "pos": [40 + 360 * (order % 4), 60 + 420 * (order // 4)],
                "size": [320, 140 + 26 * len(widget_names(cls))], "flags": {}, "order": order, "mode": 0,
                "inputs": [], "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                                          for i, (n, t) in enumerate(zip(names, cls.RETURN_TYPES, strict=True))],
                "properties": {"Node name for S&R": ntype},
                "widgets_values": widget_values(cls, ntype, widgets)}
        for name, (src, slot) in inputs.items():
            link_id = len(links) + 1
            kind = spec[name][0]
            links.append([link_id, src, slot, nid, len(node["inputs"]), kind])
            node["inputs"].append({"name": name, "type": kind, "link": link_id})
            by_id[src]["outputs"][slot]["links"].append(link_id)
        ui_nodes.append(node)
        by_id[nid] = node
    return {"last_node_id": max(by_id), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


WORKFLOWS = {
    "01_preprocess_compare": [
        (1, "LoadImage", {"image": EXAMPLE}, {}),
        (2, "CleanCutBilateral", {"sigma_color": 40.0, "sigma_space": 9.0}, {"image": (1, 0)}),
        (3, "CleanCutCLAHE", {"clip_limit": 2.0}, {"image": (2, 0)}),
        (4, "CleanCutSaturation", {"saturation": 1.25}, {"image": (3, 0)}),
        (5, "CleanCutSharpen", {"radius": 1.5, "amount": 0.8}, {"image": (4, 0)}),
        (6, "CleanCutGammaGain", {"gamma": 1.1}, {"image": (5, 0)}),
        (7, "CleanCutCompare", {"caption": "original | filters one by one"}, {"image_a": (1, 0), "image_b": (6, 0)}),
        (8, "PreviewImage", {}, {"images": (7, 0)}),
        (9, "CleanCutPreprocess", {"bilateral_strength": 40.0, "clip_limit": 2.0, "saturation": 1.25,
                                   "sharpness": 0.8, "sharpen_radius": 1.5, "gamma": 1.1}, {"image": (1, 0)}),
        (10, "PreviewImage", {}, {"images": (9, 1)}),
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
        (6, "PreviewImage", {}, {"images": (3, 1)}),
    ],
    "05_rembg_refine_edges_save": [
        (1, "LoadImage", {"image": "cleancut_cat.jpg"}, {}),
        (2, "CleanCutRembg", {}, {"images": (1, 0)}),
        (3, "CleanCutRefineEdges", {}, {"image": (1, 0), "mask": (2, 1)}),
        (4, "CleanCutSave", {"filename_prefix": "cleancut/refined"},
         {"original": (1, 0), "cutout": (3, 0), "mask": (3, 1)}),
        (5, "PreviewImage", {}, {"images": (3, 2)}),
    ],
    "06_rembg_refine_mask_composite": [
        (1, "LoadImage", {"image": "cleancut_cat.jpg"}, {}),
        (2, "CleanCutRembg", {}, {"images": (1, 0)}),
        (3, "CleanCutMask", {"fill_holes": True, "remove_islands": 200, "smooth": 1.0, "feather": 3},
         {"mask": (2, 1)}),
        (4, "LoadImage", {"image": EXAMPLE}, {}),
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
}
THUMBNAIL_FROM = {"01_preprocess_compare": ("7", 0), "02_preprocess_rembg_matting_save": ("3", 0),
                  "03_threshold_cutout_batch": ("3", 0), "04_batch_full_chain": ("4", 0),
                  "05_rembg_refine_edges_save": ("3", 0), "06_rembg_refine_mask_composite": ("5", 0),
                  "07_frames_temporal_mask": ("4", 0)}


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
