"""Throughput of ``cleancut cutout`` on the local engine and on the ray engine, in one run, ratios printed.

    python benchmarks/bench_ray.py [--count 64] [--size 1024] [--workers 1,2]

Writes ``count`` JPEGs of ``size``² (scikit-image photos, resized, flipped and shifted so no two are the same)
to a temporary folder, then runs the command line in a fresh process per case, end to end as a user would
(start-up, the model load, Ray's start for the ray engine, writing every file): the local engine, then the
ray engine with each worker count (a local Ray instance on this machine). Each case writes to a new folder.
Needs the u2netp model (``cleancut models fetch u2netp``) and Ray (``pip install "cleancut[ray]"``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_photos(folder: Path, count: int, size: int) -> None:
    from skimage import data

    names = ["astronaut", "chelsea", "coffee", "rocket"]
    for i in range(count):
        photo = np.asarray(Image.fromarray(getattr(data, names[i % 4])()).convert("RGB").resize((size, size)))
        photo = np.roll(photo[:, ::-1] if i % 8 >= 4 else photo, 7 * i, axis=1)
        Image.fromarray(photo).save(folder / f"photo{i:03d}.jpg", quality=90)


def run(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cleancut", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    return seconds, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else f"exit {done.returncode}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=64)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--workers", default="1,2", help="ray worker counts, comma-separated")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "in").mkdir()
    write_photos(tmp / "in", a.count, a.size)
    common = [str(tmp / "in"), "--quiet", "--save", "cutout,mask"]
    print(f"{a.count} JPEGs of {a.size}², u2netp, {os.cpu_count()} CPUs; end-to-end wall time of the command")
    print("| engine | wall s | images/s | vs local |")
    print("|---|---:|---:|---:|")
    local_s, summary = run(["cutout", *common, "--out", str(tmp / "local")])
    print(f"| local | {local_s:.1f} | {a.count / local_s:.2f} | 1.00x |", flush=True)
    for n in (int(w) for w in a.workers.split(",")):
        ray_s, ray_summary = run(["cutout", *common, "--out", str(tmp / f"ray{n}"), "--engine", "ray",
                                  "--workers", str(n)])
        print(f"| ray, {n} worker{'s' if n > 1 else ''} | {ray_s:.1f} | {a.count / ray_s:.2f} | "
              f"{local_s / ray_s:.2f}x |", flush=True)
        same = all((tmp / "local" / f.name).read_bytes() == f.read_bytes() for f in (tmp / f"ray{n}").iterdir())
        print(f"  identical files: {same}; {ray_summary}", file=sys.stderr)
    print(f"  local: {summary}", file=sys.stderr)


if __name__ == "__main__":
    main()
