"""Preprocessing nodes vs the per-image loops users run today, in one run.

    python benchmarks/bench_preprocess.py [--device cpu|cuda] [--quick] [--memory]

The loop baseline is what other packs do: tensor -> 8-bit PIL/NumPy per image (WAS-style
tensor2pil), the same OpenCV / PIL / scikit-image call, back to a tensor, torch.cat. CleanCut is timed
through its node (validation, chunking and device transfer included).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from common import arguments, load_pack, photo_batch, print_table, timeit
from PIL import Image, ImageEnhance
from skimage.filters import unsharp_mask


def to_pil(t: torch.Tensor) -> Image.Image:  # what WAS and many packs do (truncating)
    return Image.fromarray(np.clip(255.0 * t.cpu().numpy(), 0, 255).astype(np.uint8))


def to_tensor(img) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img).astype(np.float32) / 255.0).unsqueeze(0)


def loop(batch: torch.Tensor, per_image) -> torch.Tensor:
    return torch.cat([to_tensor(per_image(to_pil(t))) for t in batch]).to(batch.device)


def clahe_cv(img, clip=2.0, tiles=8):
    lab = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clip, (tiles, tiles)).apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def gamma_pil(img, gamma=1.5, gain=1.1):
    lut = [min(255, round(gain * 255 * (v / 255) ** (1 / gamma))) for v in range(256)]
    return img.point(lut * 3)


CASES = {  # node id, node kwargs, per-image baseline
    "CleanCutGammaGain": ({"gamma": 1.5, "gain": 1.1}, gamma_pil),
    "CleanCutSaturation": ({"saturation": 1.5}, lambda im: ImageEnhance.Color(im).enhance(1.5)),
    "CleanCutCLAHE": ({"clip_limit": 2.0, "tile_grid": 8}, clahe_cv),
    "CleanCutBilateral": ({"diameter": 9, "sigma_color": 75.0, "sigma_space": 75.0},
                          lambda im: cv2.bilateralFilter(np.asarray(im), 9, 75, 75)),
    # channel_axis=2, not -1: scikit-image 0.26 slices the wrong axis for -1 (its issue #7264).
    "CleanCutSharpen": ({"radius": 2.0, "amount": 1.0, "threshold": 0},
                        lambda im: np.clip(unsharp_mask(np.asarray(im), 2.0, 1.0, channel_axis=2) * 255 + 0.5,
                                           0, 255).astype(np.uint8)),
}


def main() -> None:
    args = arguments(__doc__)
    device = torch.device(args.device)
    pack = load_pack()
    sizes = [(256, 4)] if args.quick else [(1024, 8), (512, 16)]
    torch.set_grad_enabled(False)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OpenCV {cv2.__version__}, backend auto")
    for size, n in sizes:
        batch = photo_batch(n, size, device=device)
        rows = []
        for node_id, (kwargs, per_image) in CASES.items():
            node = pack.NODE_CLASS_MAPPINGS[node_id]()
            ours, peak = timeit(lambda node=node, kw=kwargs, x=batch: node.run(x, **kw), device, args.repeat)
            theirs, _ = timeit(lambda f=per_image, x=batch: loop(x, f), device, max(1, args.repeat - 1))
            rows.append({"case": f"{node_id} {size}²×{n}", "ours_s": ours, "theirs_s": theirs, "images": n,
                         "peak_mb": peak / 2**20, "output_mb": batch.numel() * 4 / 2**20})
        print_table(rows)
        print()
    if args.memory:
        memory(pack, device)


def memory(pack, device: torch.device) -> None:
    """Peak memory above the input at 1024²×32, against the size of the output batch."""
    batch = photo_batch(32, 1024, device=device)
    out_mb = batch.numel() * 4 / 2**20
    print("| node at 1024²×32 | peak above input MB | output MB | ratio |\n|---|---:|---:|---:|")
    for node_id, (kwargs, _) in CASES.items():
        node = pack.NODE_CLASS_MAPPINGS[node_id]()
        _, peak = timeit(lambda node=node, kw=kwargs: node.run(batch, **kw), device, 1)
        print(f"| {node_id} | {peak / 2**20:.0f} | {out_mb:.0f} | {peak / 2**20 / out_mb:.2f} |")


if __name__ == "__main__":
    main()
