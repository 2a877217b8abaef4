"""Edge quality against a ground truth: rembg's options and CleanCut's, scored and timed in one run.

    python benchmarks/bench_edges.py [--quick] [--sizes 512,1024]

The set (``tools/edgeset.py``) holds composites with exactly known alpha and foreground. Protocol "mask":
every method starts from the image alone (u2netp's mask, what users get). Each method's cut-out
``(alpha', F')`` is scored on the ground-truth edge band: SAD, MSE, gradient error, and the composite
error on two new backgrounds (light, dark). ``ms/img`` is the mean wall time per 1024² image (512² when
only that size runs). Methods: rembg.remove naive, ``alpha_matting=True``, ``decontaminate=True``
(rembg 2.0.86), and the CleanCut rembg node with ``edges`` rembg / straight and with alpha matting.
Issue #13 adds the Refine Edges methods here. Needs rembg and the u2netp model (``cleancut models fetch``).
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

from edgeset import case_specs, make_case, scores  # noqa: E402
from packloader import load_pack  # noqa: E402

COLUMNS = ("band_sad", "band_mse", "band_grad", "band_composite")


def rembg_method(session, **options):
    import rembg

    def run(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = np.asarray(rembg.remove((image * 255).round().astype(np.uint8), session=session, **options))
        return out[..., 3].astype(np.float32) / 255, out[..., :3].astype(np.float32) / 255
    return run


def node_method(pack, **options):
    node = pack.NODE_CLASS_MAPPINGS["CleanCutRembg"]()
    defaults = dict(model="u2netp", alpha_matting=False, alpha_matting_foreground_threshold=240,
                    alpha_matting_background_threshold=10, alpha_matting_erode_size=10, only_mask=False,
                    post_process_mask=False, background="transparent")

    def run(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # the photo rounded to 8 bits first, as rembg receives it: both sides see the same pixels
        x = torch.from_numpy(np.ascontiguousarray((image * 255).round() / 255)).float()[None]
        cut = node.run(x, **{**defaults, **options})[0][0].numpy()
        return cut[..., 3], cut[..., :3]
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the 256² test subset")
    p.add_argument("--sizes", default="512,1024", help="image sides to include (2048 adds the large case)")
    args = p.parse_args()
    import rembg

    pack = load_pack()
    session = rembg.new_session("u2netp", providers=["CPUExecutionProvider"])
    methods = {
        "rembg.remove (naive)": rembg_method(session),
        "rembg.remove alpha_matting=True": rembg_method(session, alpha_matting=True),
        "rembg.remove decontaminate=True": rembg_method(session, decontaminate=True),
        "CleanCut rembg node, edges=rembg": node_method(pack),
        "CleanCut rembg node, edges=straight": node_method(pack, edges="straight"),
        "CleanCut rembg node, alpha_matting": node_method(pack, alpha_matting=True),
    }
    sizes = {int(s) for s in args.sizes.split(",")}
    specs = case_specs(quick=True) if args.quick else [s for s in case_specs() if s[2] in sizes]
    timed = max(s[2] for s in specs)
    totals = {m: {c: [] for c in COLUMNS} for m in methods}
    times = {m: [] for m in methods}
    for spec in specs:
        case = make_case(*spec)
        for name, run in methods.items():
            run(case.image[:64, :64])  # warm-up (sessions, numba) outside the timing
            t0 = time.perf_counter()
            alpha, fg = run(case.image)
            if spec[2] == timed:
                times[name].append(time.perf_counter() - t0)
            got = scores(case, alpha, fg)
            for c in COLUMNS:
                totals[name][c].append(got[c])
    print(f"{len(specs)} cases ({', '.join(sorted({f'{s[2]}²' for s in specs}))}), u2netp mask as input; "
          f"mean over cases, on the ground-truth edge band; ms/img at {timed}²")
    print()
    print("| method | band SAD | band MSE | band grad | composite error | ms/img |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in methods:
        m = {c: float(np.mean(v)) for c, v in totals[name].items()}
        print(f"| {name} | {m['band_sad']:.2f} | {m['band_mse']:.4f} | {m['band_grad']:.2f} | "
              f"{m['band_composite']:.5f} | {1000 * float(np.mean(times[name])):.0f} |")


if __name__ == "__main__":
    main()
