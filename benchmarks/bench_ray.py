"""Throughput of ``cleancut cutout`` on the local engine and on the ray engine, in one run, ratios printed.

    python benchmarks/bench_ray.py [--count 64] [--size 1024] [--workers 1,2]

Writes ``2 * count`` JPEGs of ``size``² (scikit-image photos, resized, flipped and shifted so no two are the
same), then runs the command line in a fresh process per case, end to end as a user would (start-up, the
model load, Ray's start and stop for the ray engine, writing every file) on the first ``count`` and on all
``2 * count``: the local engine, then the ray engine with each worker count (a local Ray instance on this
machine). From the two runs: the end-to-end time of ``count`` images, the steady throughput (the extra
``count`` images over the extra time: fixed costs cancel) and the fixed cost (what remains). Every case writes
to a new folder, and its files are compared with the local engine's. Needs the u2netp model (``cleancut
models fetch u2netp``) and Ray (``pip install "cleancut[ray]"``).
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
    for name, n in (("small", a.count), ("large", 2 * a.count)):
        (tmp / name).mkdir()
        write_photos(tmp / name, n, a.size)
    print(f"{a.count} and {2 * a.count} JPEGs of {a.size}², u2netp, {os.cpu_count()} CPUs; wall time of the command")
    print(f"| engine | {a.count} images, s | images/s | vs local | steady images/s | vs local | fixed cost s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    cases = [("local", [])] + [(f"ray, {n} worker{'s' if n > 1 else ''}", ["--engine", "ray", "--workers", str(n)])
                               for n in (int(w) for w in a.workers.split(","))]
    base = None
    for k, (name, extra) in enumerate(cases):
        times = {}
        for size in ("small", "large"):
            out = tmp / f"out{k}_{size}"
            times[size], summary = run(["cutout", str(tmp / size), "--quiet", "--save", "cutout,mask", "--out",
                                        str(out), *extra])
            if k:
                same = all((tmp / f"out0_{size}" / f.name).read_bytes() == f.read_bytes() for f in out.iterdir())
                print(f"  {name}, {size}: identical files to local: {same}; {summary}", file=sys.stderr)
        steady = a.count / (times["large"] - times["small"])
        fixed = times["small"] - a.count / steady
        base = base or (times["small"], steady)
        print(f"| {name} | {times['small']:.1f} | {a.count / times['small']:.2f} | {base[0] / times['small']:.2f}x | "
              f"{steady:.2f} | {steady / base[1]:.2f}x | {fixed:.1f} |", flush=True)


if __name__ == "__main__":
    main()
