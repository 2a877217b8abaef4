"""Remove Background's runtimes in one run: torch (the ONNX graph converted) against onnxruntime.

    python benchmarks/bench_runtime.py [--device cpu|cuda] [--repeat 3] [--quick]

Needs the u2netp model (found as the node finds it; ``cleancut models fetch u2netp``) and onnx; not rembg, so
it runs on a bare GPU machine. For each batch size (1024² photos; CPU 1 and 8, GPU 1, 8 and 32) the node runs
with its default settings and ``runtime="torch"`` and ``runtime="onnxruntime"``: ms per image (best of
interleaved rounds), peak memory (sampled RSS above the start on the CPU; on a GPU the torch allocator's
peak, which onnxruntime's own CUDA memory is not part of) and how far the masks differ. On a GPU a float16
row shows whether half precision keeps the masks within the parity bound (mean <= 0.5/255, max <= 3/255,
IoU >= 0.999 against float32); the torch runtime uses float32 until that is measured.
"""

from __future__ import annotations

import time

import torch
from common import PeakMemory, arguments, load_pack, photo_batch

DEFAULTS = dict(model="u2netp", alpha_matting=False, alpha_matting_foreground_threshold=240,
                alpha_matting_background_threshold=10, alpha_matting_erode_size=10, only_mask=False,
                post_process_mask=False, background="transparent")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_times(candidates: dict, repeat: int, device: torch.device) -> dict:
    """Best wall time per candidate over ``repeat`` interleaved rounds, after one warm-up round."""
    for fn in candidates.values():
        fn()
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(repeat):
        for name, fn in candidates.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, float]:
    """Mean and max |a - b| of two masks in 1/255 steps, IoU of mask > 0.5."""
    a, b = a.float().cpu(), b.float().cpu()
    diff = (a - b).abs()
    iou = ((a > 0.5) & (b > 0.5)).sum().item() / max(1, ((a > 0.5) | (b > 0.5)).sum().item())
    return diff.mean().item() * 255, diff.max().item() * 255, iou


def runtime_rows(node, device: torch.device, sizes: list[int], repeat: int) -> list[str]:
    lines = ["| batch (1024²) | torch ms/img | onnxruntime ms/img | torch speed-up | torch peak MB | "
             "onnxruntime peak MB | mask mean / max diff (/255) | IoU |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        batch = photo_batch(n, 1024, device=device)
        runs = {name: (lambda name=name, batch=batch: node.run(batch, **DEFAULTS, runtime=name))
                for name in ("torch", "onnxruntime")}
        best = best_times(runs, repeat, device)
        peaks, masks = {}, {}
        for name, fn in runs.items():
            with PeakMemory(device) as mem:
                masks[name] = fn()[1]
            peaks[name] = mem.peak / 2**20
        mean, most, iou = agreement(masks["torch"], masks["onnxruntime"])
        lines.append(f"| {n} | {1000 * best['torch'] / n:.1f} | {1000 * best['onnxruntime'] / n:.1f} | "
                     f"{best['onnxruntime'] / best['torch']:.2f}x | {peaks['torch']:.0f} | "
                     f"{peaks['onnxruntime']:.0f} | "
                     f"{mean:.3f} / {most:.0f} | {iou:.4f} |")
    return lines


def half_rows(pack, node, device: torch.device, sizes: list[int], repeat: int) -> list[str]:
    """float16 against float32 on the torch runtime (GPU only): speed and the masks' agreement."""
    backends = pack.utils.rembg.backends
    real = backends.torch_dtype
    lines = ["| batch (1024²) | float16 ms/img | float32 ms/img | float16 speed-up | mask mean / max diff (/255) | "
             "IoU |", "|---:|---:|---:|---:|---:|---:|"]

    def run(batch, dtype):
        backends.torch_dtype = lambda model, device: dtype
        try:
            return node.run(batch, **DEFAULTS, runtime="torch")[1]
        finally:
            backends.torch_dtype = real

    for n in sizes:
        batch = photo_batch(n, 1024, device=device)
        best = best_times({"half": lambda b=batch: run(b, torch.float16),
                           "full": lambda b=batch: run(b, torch.float32)}, repeat, device)
        mean, most, iou = agreement(run(batch, torch.float16), run(batch, torch.float32))
        lines.append(f"| {n} | {1000 * best['half'] / n:.1f} | {1000 * best['full'] / n:.1f} | "
                     f"{best['full'] / best['half']:.2f}x | {mean:.3f} / {most:.0f} | {iou:.4f} |")
    return lines


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    device = torch.device(args.device)
    pack = load_pack()
    node = pack.NODE_CLASS_MAPPINGS["CleanCutRembg"]()
    if device.type == "cuda":
        sizes = [1, 2] if args.quick else [1, 8, 32]
    else:
        sizes = [1, 2] if args.quick else [1, 8]
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}); torch "
          f"{torch.__version__}; {torch.get_num_threads()} torch threads; u2netp, default settings, 1024² photos")
    print()
    print("\n".join(runtime_rows(node, device, sizes, args.repeat)))
    if device.type == "cuda":
        print()
        print("\n".join(half_rows(pack, node, device, sizes[1:], args.repeat)))


if __name__ == "__main__":
    main()
