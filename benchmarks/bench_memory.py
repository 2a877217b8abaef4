"""Peak memory of ``cleancut cutout`` on camera-sized photos, by batching rule or by Refine Edges option.

    python benchmarks/bench_memory.py [--count 8] [--megapixels 24] [--method rembg|threshold]
    python benchmarks/bench_memory.py --refine [--megapixels 48]

Writes ``count`` JPEGs of ``megapixels`` (real photos from scikit-image, upscaled) to a temporary folder,
then runs the CLI in a fresh process per case and reads its peak resident memory (``ru_maxrss``):
the default pixel budget, and ``--batch-size 8`` with the budget lifted (what the CLI did before it
batched by pixels). With ``--refine``: one photo (48 MP unless ``--megapixels``), the cut-out alone, with
``--refine "guided filter"``, and with ``--decontaminate`` too (issue #22: under 3.2 GB at 48 MP). Needs the
u2netp model for ``--method rembg`` (``cleancut models fetch u2netp``).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def write_photos(folder: Path, count: int, megapixels: float) -> None:
    from skimage import data

    w = int((megapixels * 1e6 * 3 / 2) ** 0.5)  # 3:2, as camera sensors
    h = int(w * 2 / 3)
    names = ["astronaut", "chelsea", "coffee", "rocket"]
    for i in range(count):
        photo = Image.fromarray(np.asarray(getattr(data, names[i % 4])())).convert("RGB")
        photo.resize((w, h), Image.BICUBIC).save(folder / f"photo{i}.jpg", quality=90)


def peak_rss_mb(args: list[str]) -> tuple[float, float, int]:
    """Run the CLI in a child process: (peak RSS in MB, seconds, exit code)."""
    link = Path(tempfile.mkdtemp()) / "cleancut"
    link.symlink_to(ROOT, target_is_directory=True)  # `python -m cleancut` needs the package name
    code = ("import resource, runpy, sys; sys.argv = ['cleancut', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('cleancut', run_name='__main__')\nexcept SystemExit as e:\n"
            "    code = e.code\nelse:\n    code = 0\n"
            "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
            "sys.exit(code)\n")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=link.parent, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(link.parent)})
    seconds = time.perf_counter() - t0
    rss = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("MAXRSS")]
    if done.returncode not in (0,) or not rss:
        print(done.stderr[-2000:], file=sys.stderr)
    return (int(rss[0]) / 1024 if rss else float("nan")), seconds, done.returncode


BATCHING = {"default (pixel budget)": [],
            "--batch-size 8, budget lifted (the old rule)": ["--batch-size", "8", "--max-pixels", str(10 ** 12)]}
REFINE = {"cut-out only": [], '--refine "guided filter"': ["--refine", "guided filter"],
          '--refine "guided filter" --decontaminate': ["--refine", "guided filter", "--decontaminate"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, help="photos (default 8; 1 with --refine)")
    p.add_argument("--megapixels", type=float, help="size of each photo (default 24; 48 with --refine)")
    p.add_argument("--method", default="rembg", choices=["rembg", "threshold"])
    p.add_argument("--refine", action="store_true", help="Refine Edges cases on one photo instead of batching")
    args = p.parse_args()
    count = args.count or (1 if args.refine else 8)
    megapixels = args.megapixels or (48.0 if args.refine else 24.0)
    cases = REFINE if args.refine else BATCHING
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        write_photos(src, count, megapixels)
        print(f"{count} photo(s) of {megapixels:g} MP, --method {args.method}; "
              f"{os.cpu_count()} CPU cores; parent RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
        print(f"| {'case' if args.refine else 'batching'} | peak RSS MB | bytes/pixel | s | exit |")
        print("|---|---:|---:|---:|---:|")
        for i, (name, extra) in enumerate(cases.items()):
            out = Path(tmp) / f"out{i}"
            rss, seconds, code = peak_rss_mb(["cutout", str(src), "--out", str(out), "--method", args.method,
                                             "--quiet", *extra])
            per_pixel = rss * 2 ** 20 / (megapixels * 1e6)  # the whole process over one photo's pixels
            print(f"| {name} | {rss:.0f} | {per_pixel:.0f} | {seconds:.1f} | {code} |")


if __name__ == "__main__":
    main()
