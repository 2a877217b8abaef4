"""Edge quality against a ground truth: rembg's options and CleanCut's, scored and timed in one run.

    python benchmarks/bench_edges.py [--quick] [--sizes 512,1024] [--protocol mask,trimap]

The set (``tools/edgeset.py``) holds composites with exactly known alpha and foreground. Each method's
cut-out ``(alpha', F')`` is scored on the ground-truth edge band: SAD, MSE, gradient error, and the
composite error on two new backgrounds (light, dark); the whole-image SAD and composite error too, so a
method that leaks alpha outside the band shows it. Two protocols:

* ``mask``: every method starts from the image alone: u2netp's mask (what users get). rembg.remove naive,
  ``alpha_matting=True``, ``decontaminate=True`` (rembg 2.0.86), the CleanCut rembg node, and the rembg
  node followed by Refine Edges (each method). ``ms/img``: the whole chain per 1024² image (model
  included), rembg one image per call as users run it, CleanCut on the batch of that size's cases.
* ``trimap``: refinement alone, as matting papers measure it: a trimap from the ground truth (sure
  subject / background, unknown = the true soft pixels dilated by 5 px). pymatting's closed-form matting +
  foreground estimation (the reference) and Refine Edges' methods, each given that trimap as its mask.

Needs rembg and the u2netp model (``cleancut models fetch u2netp``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from edgeset import case_specs, edge_band, make_case, scores  # noqa: E402
from packloader import load_pack  # noqa: E402

COLUMNS = ("band_sad", "band_mse", "band_grad", "band_composite", "sad", "composite")


def rembg_method(session, **options):
    import rembg

    def run(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = np.asarray(rembg.remove((image * 255).round().astype(np.uint8), session=session, **options))
        return out[..., 3].astype(np.float32) / 255, out[..., :3].astype(np.float32) / 255
    return run


def eight_bit(images: np.ndarray) -> torch.Tensor:
    """The photos rounded to 8 bits, as rembg receives them: both sides see the same pixels."""
    return torch.from_numpy(np.ascontiguousarray((images * 255).round() / 255)).float()


def node_method(pack, refine: dict | None = None, **options):
    """The CleanCut rembg node (``options``), then Refine Edges (``refine``) on its mask: batch in, batch out."""
    node = pack.NODE_CLASS_MAPPINGS["CleanCutRembg"]()
    refiner = pack.NODE_CLASS_MAPPINGS["CleanCutRefineEdges"]()
    defaults = dict(model="u2netp", alpha_matting=False, alpha_matting_foreground_threshold=240,
                    alpha_matting_background_threshold=10, alpha_matting_erode_size=10, only_mask=False,
                    post_process_mask=False, background="transparent")

    def run(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = eight_bit(images)
        cut, mask, _ = node.run(x, **{**defaults, **options})
        if refine is not None:
            cut = refiner.run(x, mask, **refine)[0]
        return cut[..., 3].numpy(), cut[..., :3].numpy()
    return run


def refine_method(pack, **refine):
    """Refine Edges alone on a given mask (the trimap protocol)."""
    refiner = pack.NODE_CLASS_MAPPINGS["CleanCutRefineEdges"]()

    def run(images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cut = refiner.run(eight_bit(images), torch.from_numpy(masks), **refine)[0]
        return cut[..., 3].numpy(), cut[..., :3].numpy()
    return run


def pymatting_method(images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The matting reference: pymatting's closed-form alpha and its foreground, per image, on the trimap."""
    from pymatting import estimate_alpha_cf, estimate_foreground_ml

    alphas, fgs = [], []
    for image, trimap in zip(images, masks, strict=True):
        image = (image.astype(np.float64) * 255).round() / 255.0
        alpha = np.clip(estimate_alpha_cf(image, trimap.astype(np.float64)), 0, 1)
        alphas.append(alpha.astype(np.float32))
        fgs.append(estimate_foreground_ml(image, alpha).astype(np.float32))
    return np.stack(alphas), np.stack(fgs)


def trimap_of(case, band_radius: int = 5) -> np.ndarray:
    """The ground truth's trimap as a mask: 1 sure subject, 0 sure background, 0.5 unknown (the true soft
    pixels dilated by ``band_radius``)."""
    unknown = edge_band(case.alpha, band_radius)
    return np.where(unknown, 0.5, (case.alpha >= 0.5).astype(np.float32)).astype(np.float32)


REFINE = dict(method="guided filter", band_width=32, decontaminate=False)  # the node's defaults
UNMIX = {**REFINE, "decontaminate": True}


def mask_methods(pack, session) -> dict:
    """Protocol ``mask``: name -> (kind, run); kind "image" runs one image per call, "batch" a whole batch."""
    return {
        "rembg.remove (naive)": ("image", rembg_method(session)),
        "rembg.remove alpha_matting=True": ("image", rembg_method(session, alpha_matting=True)),
        "rembg.remove decontaminate=True": ("image", rembg_method(session, decontaminate=True)),
        "CleanCut rembg node, edges=straight": ("batch", node_method(pack, edges="straight")),
        "CleanCut rembg node, decontaminate": ("batch", node_method(pack, decontaminate=True)),
        "CleanCut rembg node, alpha_matting": ("batch", node_method(pack, alpha_matting=True)),
        "rembg node + Refine Edges guided filter, decontaminate": ("batch", node_method(pack, UNMIX)),
        "rembg node + Refine Edges (default: guided filter, band_width 32)": ("batch", node_method(pack, REFINE)),
        "rembg node + Refine Edges guided filter, band_width 64, decontaminate": (
            "batch", node_method(pack, {**UNMIX, "band_width": 64})),
        "rembg node + Refine Edges closed-form, decontaminate": (
            "batch", node_method(pack, {**UNMIX, "method": "closed-form"})),
    }


def trimap_methods(pack) -> dict:
    return {
        "pymatting closed-form + estimate_foreground_ml (reference)": ("masks", pymatting_method),
        "Refine Edges closed-form (erode_size 0), decontaminate": (
            "masks", refine_method(pack, **{**UNMIX, "method": "closed-form", "erode_size": 0})),
        "Refine Edges guided filter, band_width 8, decontaminate": (
            "masks", refine_method(pack, **{**UNMIX, "band_width": 8})),
        "Refine Edges guided filter, band_width 32, decontaminate": ("masks", refine_method(pack, **UNMIX)),
    }


def evaluate(methods: dict, groups: list, timed: int) -> tuple[dict, dict]:
    """Score every method on every case; groups are lists of same-size cases (a batch for "batch" kinds)."""
    totals = {m: {c: [] for c in COLUMNS} for m in methods}
    times = {m: [] for m in methods}
    for cases in groups:
        images = np.stack([c.image for c in cases])
        masks = np.stack([trimap_of(c) for c in cases]) if any(k == "masks" for k, _ in methods.values()) else None
        for name, (kind, run) in methods.items():
            warm_trimap = np.full((1, 64, 64), 0.5, np.float32)
            warm_trimap[:, :, :16], warm_trimap[:, :, -16:] = 1, 0
            warm = (images[:1, :64, :64],) + ((warm_trimap,) if kind == "masks" else ())
            if kind == "image":
                run(warm[0][0])  # warm-up (sessions, numba) outside the timing
                t0 = time.perf_counter()
                got = [run(im) for im in images]
                alphas, fgs = np.stack([g[0] for g in got]), np.stack([g[1] for g in got])
            else:
                run(*warm)
                t0 = time.perf_counter()
                alphas, fgs = run(images, masks) if kind == "masks" else run(images)
            if cases[0].alpha.shape[0] == timed:
                times[name].append((time.perf_counter() - t0) / len(cases))
            for case, alpha, fg in zip(cases, alphas, fgs, strict=True):
                got = scores(case, alpha, fg)
                for c in COLUMNS:
                    totals[name][c].append(got[c])
    return totals, times


def table(totals: dict, times: dict) -> None:
    print("| method | band SAD | band MSE | band grad | band composite | image SAD | image composite | ms/img |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in totals:
        m = {c: float(np.mean(v)) for c, v in totals[name].items()}
        print(f"| {name} | {m['band_sad']:.2f} | {m['band_mse']:.4f} | {m['band_grad']:.2f} | "
              f"{m['band_composite']:.5f} | {m['sad']:.2f} | {m['composite']:.5f} | "
              f"{1000 * float(np.mean(times[name])):.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the 256² test subset")
    p.add_argument("--sizes", default="512,1024", help="image sides to include (2048 adds the large case)")
    p.add_argument("--protocol", default="mask,trimap", help="mask, trimap or both (comma-separated)")
    args = p.parse_args()
    import rembg

    pack = load_pack()
    sizes = {int(s) for s in args.sizes.split(",")}
    specs = case_specs(quick=True) if args.quick else [s for s in case_specs() if s[2] in sizes]
    timed = max(s[2] for s in specs)
    groups = [[make_case(*s) for s in specs if s[2] == size] for size in sorted({s[2] for s in specs})]
    label = f"{len(specs)} cases ({', '.join(f'{len(g)} at {g[0].alpha.shape[0]}²' for g in groups)})"
    protocols = args.protocol.split(",")
    if "mask" in protocols:
        session = rembg.new_session("u2netp", providers=["CPUExecutionProvider"])
        print(f"Protocol mask: {label}, u2netp's mask as input; mean over cases; ms/img at {timed}², model included")
        print()
        table(*evaluate(mask_methods(pack, session), groups, timed))
        print()
    if "trimap" in protocols:
        print(f"Protocol trimap: {label}, a trimap from the ground truth as input; ms/img at {timed}²")
        print()
        table(*evaluate(trimap_methods(pack), groups, timed))


if __name__ == "__main__":
    main()
