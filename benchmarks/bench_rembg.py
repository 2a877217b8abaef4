"""Remove Background (rembg) node vs the rembg loops users run today, in one run.

    python benchmarks/bench_rembg.py [--device cpu|cuda] [--repeat 3] [--quick]

Needs rembg, onnxruntime and the u2netp model (found as the node finds it, e.g. ~/.u2net/u2netp.onnx;
``cleancut models fetch u2netp`` provides it). Baselines, each with the tensor <-> PIL conversions a
node needs:

* cached session: ``rembg.remove(pil, session=s)`` per image with one ``new_session`` made beforehand
  (what a careful user writes);
* new session per image: ``rembg.remove(pil, session=new_session(model))`` per image (what WAS-style
  nodes do);
* alpha matting: ``rembg.remove(pil, session=s, alpha_matting=True)`` per image, cached session;
* direct onnxruntime loop: rembg's own ``session.predict(pil)`` (its Pillow resize and normalisation, one
  ``InferenceSession.run``, its mask resize) and ``naive_cutout`` per image, without ``remove``'s extras:
  the least a loop around the model can do.

Last, the torch runtime against onnxruntime through the node (batch 1 and 8 on the CPU; 1, 8 and 32 on a
GPU), with peak memory: the rows of ``benchmarks/bench_runtime.py``, which also runs without rembg.

Timings interleave the candidates round by round and keep each one's best round, so a busy machine
slows all of them alike. The parity columns compare the node's alpha with rembg's on the same images.
"""

from __future__ import annotations

import numpy as np
import torch
from bench_runtime import agreement as parity
from bench_runtime import best_times, runtime_rows
from common import arguments, load_pack, photo_batch
from PIL import Image


def to_pil(t: torch.Tensor) -> Image.Image:  # what WAS and many packs do
    return Image.fromarray(np.clip(255.0 * t.cpu().numpy(), 0, 255).astype(np.uint8))


def to_tensors(cutout: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    rgba = torch.from_numpy(np.asarray(cutout.convert("RGBA")).astype(np.float32) / 255.0)
    return rgba.unsqueeze(0), rgba[..., 3].unsqueeze(0)


def direct_loop(batch: torch.Tensor, session):
    """rembg's model step called directly per image (its Pillow pre/post-processing), plus the cut-out."""
    from rembg.bg import naive_cutout

    images, masks = [], []
    for t in batch:
        pil = to_pil(t)
        image, mask = to_tensors(naive_cutout(pil, session.predict(pil)[0]))
        images.append(image)
        masks.append(mask)
    return torch.cat(images), torch.cat(masks)


def rembg_loop(batch: torch.Tensor, session_for, **options):
    images, masks = [], []
    for t in batch:
        import rembg

        image, mask = to_tensors(rembg.remove(to_pil(t), session=session_for(), **options))
        images.append(image)
        masks.append(mask)
    return torch.cat(images), torch.cat(masks)


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    device = torch.device(args.device)
    import rembg

    pack = load_pack()
    node = pack.NODE_CLASS_MAPPINGS["CleanCutRembg"]()
    sessions = __import__(f"{pack.__name__}.utils.rembg.sessions", fromlist=["x"])
    model = "u2netp"
    n, size = (4, 512) if args.quick else (8, 1024)
    batch = photo_batch(n, size, device=args.device)
    defaults = dict(model=model, alpha_matting=False, alpha_matting_foreground_threshold=240,
                    alpha_matting_background_threshold=10, alpha_matting_erode_size=10, only_mask=False,
                    post_process_mask=False, background="transparent")
    providers = list(sessions.default_providers())  # the baselines get the providers the node uses
    cached = rembg.new_session(model, providers=providers)
    ours = lambda: node.run(batch, **defaults)  # noqa: E731
    runs = best_times({
        "ours": ours,
        "cached": lambda: rembg_loop(batch, lambda: cached),
        "new": lambda: rembg_loop(batch, lambda: rembg.new_session(model, providers=providers)),
        "direct": lambda: direct_loop(batch, cached),
    }, args.repeat, device)
    _, our_mask, _ = ours()
    _, ref_mask = rembg_loop(batch, lambda: cached)
    x = np.zeros((1, 3, 320, 320), np.float32)
    name = cached.inner_session.get_inputs()[0].name
    model_only = best_times({"run": lambda: [cached.inner_session.run(None, {name: x}) for _ in range(n)]},
                            args.repeat, device)["run"]
    rows = [(f"u2netp {size}²×{n}, vs rembg.remove, cached session", runs["ours"], runs["cached"], n,
             parity(our_mask, ref_mask)),
            (f"u2netp {size}²×{n}, vs rembg.remove, new session per image", runs["ours"], runs["new"], n,
             parity(our_mask, ref_mask)),
            (f"u2netp {size}²×{n}, vs a direct onnxruntime loop (session.predict + naive_cutout)", runs["ours"],
             runs["direct"], n, parity(our_mask, direct_loop(batch, cached)[1]))]

    matting = {**defaults, "alpha_matting": True}
    # 512²: the model is still a large share of rembg's time; 1024²: the matting solve dominates both sides
    for mn, msize, rounds in ([(2, 256, 1)] if args.quick else [(4, 512, max(1, args.repeat - 1)), (4, 1024, 1)]):
        small = photo_batch(mn, msize, device=args.device)
        runs = best_times({
            "ours": lambda small=small: node.run(small, **matting),
            "rembg": lambda small=small: rembg_loop(small, lambda: cached, alpha_matting=True),
        }, rounds, device)
        _, our_mask, _ = node.run(small, **matting)
        _, ref_mask = rembg_loop(small, lambda: cached, alpha_matting=True)
        rows.append((f"u2netp + alpha matting {msize}²×{mn}, vs rembg.remove(alpha_matting=True)", runs["ours"],
                     runs["rembg"], mn, parity(our_mask, ref_mask)))

    resolved = __import__(f"{pack.__name__}.utils.rembg.models", fromlist=["x"]).resolve(model)
    _, parallel, threads = sessions.plan(resolved, n)
    cores = pack.utils.runtime.cpu_count()
    print(f"device {args.device}; onnxruntime providers {', '.join(providers)}; {cores} CPU cores; "
          f"node runs {parallel} image(s) at once, {threads or 'default'} thread(s) each")
    print()
    print("| case | CleanCut ms/img | rembg ms/img | speed-up | alpha mean abs diff (/255) | IoU(alpha>0.5) |")
    print("|---|---:|---:|---:|---:|---:|")
    for case, t_ours, t_ref, count, (diff, _, iou) in rows:
        print(f"| {case} | {1000 * t_ours / count:.1f} | {1000 * t_ref / count:.1f} | {t_ref / t_ours:.3f}x | "
              f"{diff:.3f} | {iou:.4f} |")

    print()
    sizes = ([1, 2] if args.quick else [1, 8, 32]) if device.type == "cuda" else ([1, 2] if args.quick else [1, 8])
    print()
    print("\n".join(runtime_rows(node, device, sizes, max(1, args.repeat - 1))))
    print()
    print(f"The model alone (rembg's cached onnxruntime session, run() per image, no pre/post-processing): "
          f"{1000 * model_only / n:.0f} ms/img, so no pipeline around it can beat the cached-session loop by "
          f"more than {rows[0][2] / model_only:.2f}x on this machine.")


if __name__ == "__main__":
    main()
