"""Video inputs of ``cutout``: each clip is one work item, streamed chunk by chunk into two videos.

``<stem>_cutout.<ext>`` (the subject with alpha; opaque on a background colour) and ``<stem>_mask.<ext>`` (the
matte as a grey video) are written by :class:`..utils.video_write.VideoWriter`, atomically: a failure, Ctrl-C
or a stop leaves neither a partial video nor its temporary. A chunk is read, cut out by :mod:`.cut`'s steps and
written before the next is read, so memory does not grow with the clip's length. With ``--temporal`` the
model's masks are smoothed across frames (:class:`..utils.temporal.TemporalStream`, the same masks as Refine
Mask's ``temporal`` on the whole clip), then Refine Edges refines and composes: model mask -> temporal ->
refine -> compose; the frames wait for their smoothed masks (the stream's lookahead: 22 frames at 0.5).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..utils import imageio, video_read
from ..utils.temporal import TemporalStream
from ..utils.video_write import FORMATS, VideoWriter
from . import cut
from .cut import settings_metadata

ROLES = ("cutout", "mask")  # what a video input gets; original and extracted are written for images only


@dataclass(frozen=True)
class Clip:
    """One video input: ``stem`` names its outputs; ``frames`` is the frame count or its estimate (progress)."""

    path: Path
    stem: str
    frames: int = 1


class Stopped(Exception):
    """The run asked to stop between two chunks (the first Ctrl-C, a full disk): the clip is dropped whole."""


def is_clip(path: Path) -> bool:
    """A video file, decided by content: Pillow cannot open it (animated images stay images) and PyAV finds a
    video stream in a video container. A file neither can open whose name says video is taken as one, so that a
    damaged clip fails as a video ("not a readable video"), not as an image."""
    if imageio.probe(path).format not in (None, "MPEG"):
        return False
    return video_read.is_video(path) or path.suffix.lower() in video_read.EXTENSIONS


def roles(args) -> list[str]:
    return [r for r in args.roles if r in ROLES]


def target(out: Path, stem: str, role: str, fmt: str) -> Path:
    return out / f"{stem}_{role}{FORMATS[fmt].ext}"


def targets(args, clip: Clip) -> list[Path]:
    """The two outputs of ``clip`` (those of --save's roles that apply to videos)."""
    return [target(args.out, clip.stem, r, args.video_format) for r in roles(args)]


def exists(path: Path) -> bool:
    """A finished output: a video file, or a PNG sequence's folder (named only when complete)."""
    return path.is_dir() if path.suffix == "" else path.is_file()


def chunk_frames(args, info: video_read.VideoInfo) -> int:
    """Frames per chunk: at most --batch-size, and --max-pixels in all (at least one), as image batches."""
    return max(1, min(args.batch_size, args.max_pixels // max(1, info.width * info.height)))


def _writer(args, clip: Clip, info: video_read.VideoInfo, role: str) -> VideoWriter:
    fmt = args.video_format
    sound = info.has_audio and role == "cutout" and FORMATS[fmt].audio is not None  # the matte stays silent
    meta = {"source": str(clip.path), "role": role, **settings_metadata(args)}
    return VideoWriter(target(args.out, clip.stem, role, fmt), fmt, info.fps, (info.width, info.height),
                       args.video_quality, str(clip.path) if sound else None, time_base=info.time_base,
                       overwrite=True, metadata={imageio.OUTPUT_KEY: json.dumps(meta)})


class _Waiting:
    """Preprocessed frames and their timestamps, waiting for the temporal stream to finish their masks."""

    def __init__(self):
        self.frames: list[torch.Tensor] = []
        self.pts: list[int | None] = []

    def add(self, frames: torch.Tensor, pts: list[int | None]) -> None:
        self.frames += list(frames)  # views of the chunk: no copy
        self.pts += pts

    def take(self, k: int) -> tuple[torch.Tensor, list[int | None]]:
        frames, pts = torch.stack(self.frames[:k]), self.pts[:k]
        del self.frames[:k], self.pts[:k]
        return frames, pts


def cut_clip(args, clip: Clip, on_frames: Callable[[int], None] | None = None,
             should_stop: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """Cut out every frame of ``clip`` and write its videos; ``(frames, files)`` written.

    Raises:
        Stopped: ``should_stop()`` turned true after a chunk; nothing of the clip is kept.
        InputError (ValueError): the file is not a readable video, or is truncated or damaged midway.
        OSError / RuntimeError: writing failed (a full disk: ``OSError`` with ``errno.ENOSPC`` behind it).
    """
    av = video_read.require_av()
    info = video_read.probe(clip.path)
    step = chunk_frames(args, info)
    writers = {role: _writer(args, clip, info, role) for role in roles(args)}
    stream = TemporalStream(args.temporal) if args.temporal else None
    waiting, done = _Waiting(), 0
    try:
        with contextlib.ExitStack() as stack:  # each writer closes, or aborts on an error: no partial video
            for writer in writers.values():
                stack.enter_context(writer)
            for batch, pts in video_read.read_frames(clip.path, step * info.width * info.height, info):
                if stream is None:
                    out = cut.cut_out(batch, args)
                    done += _write(writers, out["cutout"], out["mask"], pts, on_frames)
                else:
                    processed = cut.preprocess(batch, args)
                    mask = cut.remove(batch, processed, args)[2]  # the model's mask; its cut-out is composed later
                    waiting.add(processed, pts)
                    done += _compose(args, writers, waiting, stream.push(mask), step, on_frames)
                if should_stop():
                    raise Stopped
            if stream is not None:
                done += _compose(args, writers, waiting, stream.flush(), step, on_frames)
    except av.FFmpegError as exc:  # an encoder's or muxer's refusal PyAV reports as its own error
        if isinstance(exc, (OSError, ValueError, RuntimeError, MemoryError)):
            raise
        raise RuntimeError(f"{clip.path}: {exc}") from exc
    return done, len(writers)


def _write(writers: dict, cutout: torch.Tensor, mask: torch.Tensor, pts: list, on_frames) -> int:
    """A chunk's cut-outs and masks into their videos; the frame count."""
    for role, frames in (("cutout", cutout), ("mask", mask)):
        if role in writers:
            writers[role].write(frames, pts)
    if on_frames is not None:
        on_frames(len(pts))
    return len(pts)


def _compose(args, writers: dict, waiting: _Waiting, masks: torch.Tensor, step: int, on_frames) -> int:
    """Refine Edges on the frames whose smoothed ``masks`` are finished, ``step`` frames at a time; written."""
    done = 0
    for start in range(0, masks.shape[0], step):
        part = masks[start:start + step]
        frames, pts = waiting.take(part.shape[0])
        cutout, mask = cut.refine(frames, part, args)
        done += _write(writers, cutout, mask, pts, on_frames)
    return done
