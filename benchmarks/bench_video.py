"""A 1080p clip through ``cleancut cutout`` against the loop users write today, in one run.

    python benchmarks/bench_video.py [--frames 100 300] [--quick]

Writes an H.264 1080p clip of each length (a slow pan over a scikit-image photo, 25 fps), then, each in a
fresh process so peak memory is its own:

* ``cleancut cutout clip.mp4 --out DIR --save cutout`` (u2netp, default settings, WebM VP9 with alpha: the
  same one video the loop writes), and with the default ``--save`` (the mask video too);
* the plain loop: PyAV decode -> ``rembg.remove`` per frame (one cached session) -> a PNG per frame ->
  PyAV encode of the PNG frames to WebM VP9 with alpha (``yuva420p``, the same encoder and CRF).

Prints frames per second for both and peak RSS (``ru_maxrss`` of the child): the CLI streams, so its peak
should not grow with the clip's length. Needs rembg, av and the u2netp model (``cleancut models fetch u2netp``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FPS, SIZE = 25, (1920, 1080)

LOOP = r'''
import sys, io, av, numpy as np, rembg
from PIL import Image
src, frames_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
session = rembg.new_session("u2netp", providers=["CPUExecutionProvider"])
paths = []
with av.open(src) as container:
    for i, frame in enumerate(container.decode(video=0)):
        cut = rembg.remove(frame.to_image(), session=session)
        path = f"{frames_dir}/{i:06d}.png"
        cut.save(path)
        paths.append(path)
with av.open(out, "w") as container:
    stream = container.add_stream("libvpx-vp9", rate=25, options={"crf": "13", "b": "0"})
    stream.pix_fmt = "yuva420p"
    first = Image.open(paths[0])
    stream.width, stream.height = first.size
    for path in paths:
        frame = av.VideoFrame.from_ndarray(np.asarray(Image.open(path).convert("RGBA")), format="rgba")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
'''


def write_clip(path: Path, frames: int) -> None:
    """A 1080p H.264 clip: a slow pan and zoom over the astronaut photo (a subject and a background)."""
    import av
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut()).resize((2400, 2400), Image.BICUBIC)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for i in range(frames):
            x = int(200 * i / max(frames - 1, 1))
            crop = photo.crop((x, 400, x + 2133, 400 + 1200)).resize(SIZE, Image.BILINEAR)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(crop), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


MEASURE = ("import resource, subprocess, sys\n"
           "done = subprocess.run(sys.argv[1:])\n"
           "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
           "sys.exit(done.returncode)\n")


def run_child(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MB) of ``cmd`` in a fresh process (measured by a launcher that runs only it)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    rss = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("MAXRSS")]
    if done.returncode != 0 or not rss:
        raise RuntimeError(f"{cmd[:3]} failed: {done.stderr[-800:]}")
    return seconds, int(rss[0]) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, nargs="+", default=[100, 300])
    p.add_argument("--quick", action="store_true", help="12 and 24 frames, for a smoke run")
    p.add_argument("--with-mask", action="store_true", help="also time the default --save (the mask video too)")
    args = p.parse_args()
    lengths = [12, 24] if args.quick else args.frames
    cleancut = [sys.executable, "-m", "cleancut"] if not (Path(sys.executable).parent / "cleancut").exists() \
        else [str(Path(sys.executable).parent / "cleancut")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in lengths:
            clip = tmp / f"clip{n}.mp4"
            write_clip(clip, n)
            ours_s, ours_mb = run_child([*cleancut, "cutout", str(clip), "--out", str(tmp / f"out{n}"), "--quiet",
                                         "--save", "cutout"])
            both_s, both_mb = float("nan"), float("nan")
            if args.with_mask:
                both_s, both_mb = run_child([*cleancut, "cutout", str(clip), "--out", str(tmp / f"both{n}"),
                                             "--quiet"])
            frames_dir = tmp / f"frames{n}"
            frames_dir.mkdir()
            loop_s, loop_mb = run_child([sys.executable, "-c", LOOP, str(clip), str(frames_dir),
                                         str(tmp / f"loop{n}.webm")])
            rows.append((n, ours_s, ours_mb, loop_s, loop_mb, both_s, both_mb))
    print(f"1080p H.264 clips at {FPS} fps -> WebM VP9 with alpha, u2netp, 2-core CPU; one run each, fresh processes")
    print()
    mask = " cleancut + mask video fps | its peak RSS MB |" if args.with_mask else ""
    print(f"| frames | cleancut fps | loop fps | speed-up | cleancut peak RSS MB | loop peak RSS MB |{mask}")
    print("|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.with_mask else ""))
    for n, ours_s, ours_mb, loop_s, loop_mb, both_s, both_mb in rows:
        extra = f" {n / both_s:.2f} | {both_mb:.0f} |" if args.with_mask else ""
        print(f"| {n} | {n / ours_s:.2f} | {n / loop_s:.2f} | {loop_s / ours_s:.2f}x | {ours_mb:.0f} | {loop_mb:.0f} |"
              + extra)

if __name__ == "__main__":
    main()
