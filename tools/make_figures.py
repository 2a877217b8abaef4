"""Render the README's pictures into docs/img/ by running each node on a scikit-image sample photo.

    python tools/make_figures.py [refine|masks]      (only the Refine Edges / the mask and composite pictures)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from packloader import load_pack  # noqa: E402

OUT = ROOT / "docs" / "img"


def save(t: torch.Tensor, name: str) -> None:
    img = Image.fromarray((t[0].clamp(0, 1).numpy() * 255 + 0.5).astype("uint8"))
    if img.mode == "RGBA":  # show transparency on a light checkerboard
        board = Image.new("RGBA", img.size, (255, 255, 255, 255))
        tile = Image.new("RGBA", (16, 16), (210, 210, 210, 255))
        for y in range(0, img.size[1], 16):
            for x in range((y // 16) % 2 * 16, img.size[0], 32):
                board.paste(tile, (x, y))
        img = Image.alpha_composite(board, img)
    img.convert("RGB").save(OUT / f"{name}.jpg", quality=82)


def save_set_figure(nodes, original, cutout, extracted, mask) -> None:
    """What Save Cut-outs writes for one item, read back from disk: the four files side by side."""
    import os
    import tempfile

    os.environ["CLEANCUT_OUTPUT_DIR"] = tempfile.mkdtemp()
    nodes["CleanCutSave"]().save("demo/item", "png", original=original, cutout=cutout, extracted=extracted,
                                 mask=mask)
    folder = Path(os.environ["CLEANCUT_OUTPUT_DIR"]) / "demo"
    tiles = [Image.open(folder / f"item_00001_{role}.png").convert("RGBA")
             for role in ("original", "cutout", "extracted", "mask")]
    w, h = tiles[0].size
    sheet = torch.zeros(1, h, 4 * w, 4)
    for i, tile in enumerate(tiles):
        sheet[0, :, i * w:(i + 1) * w] = torch.from_numpy(np.asarray(tile) / 255.0)
    save(sheet, "save_set")


def softest_window(alpha: np.ndarray, side: int) -> tuple[slice, slice]:
    """The ``side``² window (on a side/4 grid) holding the most partly transparent truth pixels."""
    soft = ((alpha > 0.05) & (alpha < 0.95)).astype(np.float64)
    best, where = -1.0, (0, 0)
    for y in range(0, alpha.shape[0] - side + 1, side // 4):
        for x in range(0, alpha.shape[1] - side + 1, side // 4):
            if soft[y:y + side, x:x + side].sum() > best:
                best, where = soft[y:y + side, x:x + side].sum(), (y, x)
    return slice(where[0], where[0] + side), slice(where[1], where[1] + side)


def on_background(rgba: torch.Tensor, colour=(0.06, 0.07, 0.10)) -> torch.Tensor:
    """A straight-alpha cut-out ``[B, H, W, 4]`` pasted on a new flat colour (what users do next)."""
    a = rgba[..., 3:]
    return rgba[..., :3] * a + torch.tensor(colour) * (1 - a)


def refine_figures(nodes, sample_batch) -> None:
    """Before / after crops of hair on a new background: a ground-truth strand composite and a real photo."""
    from edgeset import make_case

    rembg, refine, compare = nodes["CleanCutRembg"](), nodes["CleanCutRefineEdges"](), nodes["CleanCutCompare"]()
    defaults = ("u2netp", False, 240, 10, 10, False, False, "transparent")
    case = make_case("strands", 0, 512, "photo")
    image = torch.from_numpy((case.image * 255).round() / 255).float()[None]
    cut, mask, _ = rembg.run(image, *defaults)
    matted, _, _ = rembg.run(image, "u2netp", True, *defaults[2:])
    refined = refine.run(image, mask)[0]
    truth = torch.from_numpy(np.dstack([case.foreground, case.alpha]))[None].float()
    rows, cols = softest_window(case.alpha, 160)
    tiles = [on_background(t)[:, rows, cols].repeat_interleave(2, 1).repeat_interleave(2, 2)
             for t in (truth, cut, matted, refined)]
    row = compare.run(compare.run(compare.run(tiles[0], tiles[1], "")[0], tiles[2], "")[0], tiles[3],
                      "truth | rembg | rembg alpha matting | Refine Edges (default)")[0]
    save(row, "refine_edges_truth")
    cat = sample_batch(512)[1:2]
    cut, mask, _ = rembg.run(cat, *defaults)
    refined = refine.run(cat, mask)[0]
    unmixed = refine.run(cat, mask, decontaminate=True)[0]
    crop = softest_window(refined[0, ..., 3].numpy(), 160)  # where the edge is softest: fur against the old background
    tiles = [on_background(t)[:, crop[0], crop[1]].repeat_interleave(2, 1).repeat_interleave(2, 2)
             for t in (cut, refined, unmixed)]
    save(compare.run(compare.run(tiles[0], tiles[1], "")[0], tiles[2],
                     "rembg | + Refine Edges (default) | + Refine Edges, decontaminate")[0], "refine_edges_cat")


def row(tiles: list[torch.Tensor]) -> torch.Tensor:
    """``[1, H, W, C]`` tiles side by side with a 4 px white gap (as RGB)."""
    gap = torch.ones(1, tiles[0].shape[1], 4, 3)
    parts = []
    for t in tiles:
        parts += [t[..., :3] if t.shape[-1] >= 3 else t.expand(-1, -1, -1, 3), gap]
    return torch.cat(parts[:-1], 2)


def mask_figures(nodes, sample_batch) -> None:
    """Refine Mask's steps on a damaged u2netp mask of the cat, and Composite on Background's four modes."""
    cat, portrait = sample_batch(256)[1:2], sample_batch(256)[0:1]
    _, mask, _ = nodes["CleanCutRembg"]().run(cat, "u2netp", False, 240, 10, 10, False, False, "transparent")
    damaged = mask.clone()
    g = torch.Generator().manual_seed(1)
    for y, x in torch.randint(8, 248, (60, 2), generator=g).tolist():  # specks in the background, a hole
        damaged[0, y:y + 3, x:x + 3] = 1.0 - damaged[0, y:y + 3, x:x + 3].round()
    damaged[0, 150:170, 110:135] = 0.0
    refine = nodes["CleanCutMask"]().run
    steps = [damaged, refine(damaged, fill_holes=True, remove_islands=50)[0],
             refine(damaged, fill_holes=True, remove_islands=50, grow=12)[0],
             refine(damaged, fill_holes=True, remove_islands=50, grow=-12)[0],
             refine(damaged, fill_holes=True, remove_islands=50, feather=24)[0],
             refine(damaged, fill_holes=True, remove_islands=50, smooth=6.0, black_point=0.4, white_point=0.6)[0]]
    save(row([m[..., None] for m in steps]), "refine_mask")
    clean = steps[1]
    comp = nodes["CleanCutComposite"]().run
    tiles = [comp(cat, "color", "#2E86DE", mask=clean)[0],
             comp(cat, "image", fit="cover", mask=clean, background_image=portrait)[0],
             comp(cat, "blurred original", blur=8.0, mask=clean)[0],
             on_background(comp(cat, "transparent", mask=clean)[0], (0.85, 0.85, 0.85))]
    save(row(tiles), "composite")


def main() -> None:
    pack = load_pack()
    cli = __import__(pack.__name__ + ".cli.demo", fromlist=["sample_batch"])
    if sys.argv[1:] == ["refine"]:  # only the Refine Edges pictures
        OUT.mkdir(parents=True, exist_ok=True)
        refine_figures(pack.NODE_CLASS_MAPPINGS, cli.sample_batch)
        return
    if sys.argv[1:] == ["masks"]:  # only the Refine Mask and Composite pictures
        OUT.mkdir(parents=True, exist_ok=True)
        mask_figures(pack.NODE_CLASS_MAPPINGS, cli.sample_batch)
        return
    nodes = pack.NODE_CLASS_MAPPINGS
    OUT.mkdir(parents=True, exist_ok=True)
    photo = cli.sample_batch(256)[1:2]  # the cat
    portrait = cli.sample_batch(256)[0:1]  # the astronaut

    def compare(after, caption, before=photo):
        return nodes["CleanCutCompare"]().run(before, after, caption)[0]

    runs = {
        "gamma_gain": (nodes["CleanCutGammaGain"]().run(photo, 1.6, 1.0)[0], "original | gamma 1.6"),
        "saturation": (nodes["CleanCutSaturation"]().run(photo, 1.8)[0], "original | saturation 1.8"),
        "clahe": (nodes["CleanCutCLAHE"]().run(photo, 3.0, 8)[0], "original | CLAHE clip 3, 8x8"),
        "bilateral": (nodes["CleanCutBilateral"]().run(photo, 9, 75.0, 75.0)[0], "original | bilateral 9/75/75"),
        "sharpen": (nodes["CleanCutSharpen"]().run(photo, 2.0, 2.0, 0)[0], "original | unsharp r2 x2"),
    }
    for name, (after, caption) in runs.items():
        save(compare(after, caption), name)
    _, comparison = nodes["CleanCutPreprocess"]().run(photo, bilateral_strength=30.0, saturation=1.3,
                                                      clip_limit=2.0, tile_grid=8, sharpness=0.8, gamma=1.1,
                                                      gain=1.0, sharpen_radius=2.0)
    save(comparison, "preprocess")
    cut, _, _ = nodes["CleanCutAlphaThreshold"]().run(portrait, "background", 90, 2)
    save(compare(cut, "original | alpha threshold 90", portrait), "alpha_threshold")
    if "CleanCutRembg" in nodes:
        image, mask, extracted = nodes["CleanCutRembg"]().run(portrait, "u2netp", False, 240, 10, 10, False,
                                                             False, "transparent")
        mask_img = mask[..., None].expand(-1, -1, -1, 3)
        row = compare(compare(mask_img, "", image), "", portrait)
        save(compare(extracted, "original | cut-out | mask | extracted", row), "rembg")
        save_set_figure(nodes, portrait, image, extracted, mask)
        refine_figures(nodes, cli.sample_batch)
        mask_figures(nodes, cli.sample_batch)
    save(nodes["CleanCutCompare"]().run(photo, portrait, "image_a | image_b (resized to a's height)")[0], "compare")
    print(f"figures in {OUT}")  # noqa: T201


if __name__ == "__main__":
    main()
