"""Remove Background (Alpha Threshold) vs WAS's "Image Remove Background (Alpha)" loop, in one run.

    python benchmarks/bench_threshold.py [--device cpu|cuda] [--quick] [--repeat N]

The baseline is WAS's code as it ships: tensor2pil (truncating) per image, convert('L'), invert,
GaussianBlur, point, putalpha, pil2tensor, torch.cat. CleanCut is timed through its node (validation,
chunking, device transfer and both MASK outputs included). Both give the same alpha on every pixel.
"""

from __future__ import annotations

import PIL
import torch
from common import arguments, load_pack, photo_batch, print_table, timeit
from was_reference import was_loop

SETTINGS = {"mode": "background", "threshold": 127, "threshold_tolerance": 2}


def main() -> None:
    args = arguments(__doc__)
    device = torch.device(args.device)
    pack = load_pack()
    node = pack.NODE_CLASS_MAPPINGS["CleanCutAlphaThreshold"]()
    sizes = [(256, 4)] if args.quick else [(1024, 8), (2048, 4)]
    torch.set_grad_enabled(False)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"Pillow {PIL.__version__}, backend auto, settings {SETTINGS}")
    rows, loop_peaks = [], []
    for size, n in sizes:
        batch = photo_batch(n, size, device=device)
        ours, peak = timeit(lambda x=batch: node.run(x, **SETTINGS), device, args.repeat)
        theirs, loop_peak = timeit(lambda x=batch: was_loop(x, **SETTINGS), device, args.repeat)
        out = node.run(batch, **SETTINGS)
        rows.append({"case": f"AlphaThreshold {size}²×{n}", "ours_s": ours, "theirs_s": theirs, "images": n,
                     "peak_mb": peak / 2**20, "output_mb": sum(t.numel() * t.element_size() for t in out) / 2**20})
        loop_peaks.append(loop_peak / 2**20)
    print_table(rows)
    print()
    print("| case | WAS loop peak MB |\n|---|---:|")
    for row, loop_peak in zip(rows, loop_peaks, strict=True):
        print(f"| {row['case']} | {loop_peak:.0f} |")


if __name__ == "__main__":
    main()
