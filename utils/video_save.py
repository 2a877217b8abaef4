"""Save Cut-out Video: an IMAGE batch (with its alpha, or a MASK as alpha) as one video in the output folder.

Names follow Save Cut-outs (:mod:`.filenames`): ``<prefix>_<counter>_.<ext>`` (a PNG sequence: the folder
``<prefix>_<counter>_/`` of ``frame_000001.png``...), core's ``%year%``-style variables, ``folder/name``
sub-folders, the counter after the highest one present, and an existing file is never overwritten: a name
taken while the video was encoded moves it on to the next counter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import Tensor

from . import runtime
from .checks import InputError, as_mask, check_image, check_same_batch, fail
from .filenames import expand_variables, next_counter, split_prefix
from .saving import SaveError, _make_folder
from .video_read import require_av
from .video_write import FORMATS, VideoWriter, place_new

TRIES = 1000  # counters tried when other saves keep taking the next name


def check_frames(images: object, mask: object = None) -> tuple[Tensor, Tensor | None, int]:
    """``(images, mask, frame count)`` checked for an alpha video: every format stores alpha, so RGB ``images``
    need a ``mask``; a ``mask`` replaces the images' own alpha. Batches of 1 go with every frame of the other."""
    check_image(images, "images")
    images = images.detach()
    if mask is None:
        if images.shape[-1] != 4:
            fail("images", f"are RGB ({images.shape[-1]} channels) and no mask is connected, but a cut-out video "
                 "stores alpha: connect the cut-out's MASK to 'mask', or RGBA cut-outs to 'images'.", InputError)
        return images, None, images.shape[0]
    mask = as_mask(mask, "mask", like=images)
    return images, mask, check_same_batch(images, mask, "images", "mask")


def _frames(batch: Tensor, start: int, stop: int) -> Tensor:
    """Items ``start:stop`` of the clip, a batch of one standing for every frame."""
    return batch[start:stop] if batch.shape[0] > 1 else batch.expand(stop - start, *batch.shape[1:])


def _rgba(images: Tensor, mask: Tensor | None, start: int, stop: int) -> Tensor:
    """Frames ``start:stop`` as RGBA ``[b, H, W, 4]``: the images' colour with the mask (or their own alpha)."""
    if mask is None:
        return _frames(images, start, stop)
    rgb = _frames(images, start, stop)[..., :3]
    return torch.cat([rgb, _frames(mask, start, stop).unsqueeze(-1).to(rgb.dtype)], dim=-1)


def _placer(folder: str, name: str, ext: str, counter: int):
    """``place(temp, path)`` for :class:`VideoWriter`: the first free ``<name>_<counter>_<ext>`` from ``counter``."""

    def place(temp: str, _path: str) -> str:
        number = max(counter, next_counter(folder, name))
        for _ in range(TRIES):
            try:
                return place_new(temp, os.path.join(folder, f"{name}_{number:05}_{ext}"))
            except FileExistsError:  # taken meanwhile by another save: the next one
                number += 1
        raise FileExistsError(f"no free name for {name!r} in {folder!r} after {TRIES} tries")

    return place


def save_video(root: str, prefix: str, images: Tensor, fps: float, fmt: str = "webm", quality: int = 80,
               mask: Tensor | None = None, audio: object = None, metadata: Mapping[str, str] | None = None) -> dict:
    """Write ``images`` (with ``mask`` as alpha) as one video under ``root``; returns its ComfyUI preview entry.

    Args:
        root: the output folder; ``prefix`` (e.g. ``"cleancut/video"``) may add sub-folders and variables.
        images: IMAGE ``[B, H, W, 4]`` cut-outs, or ``[B, H, W, 3]`` with ``mask``. fps: > 0.
        fmt, quality, audio: as :class:`VideoWriter`. mask: MASK ``[B, H, W]``, 1 = subject (the alpha).
        metadata: text entries stored in the file (the prompt and workflow as JSON).
    Returns:
        ``{"filename", "subfolder", "type": "output", "path", "frames", "previews"}``: ``previews`` lists what
        ComfyUI's front end can show (the video; for ``png`` each frame of the folder).
    Raises:
        InputError / SettingError: bad inputs, before anything is written. SaveError: writing failed; no file
        and no temporary is left.
    """
    av = require_av()  # RuntimeError without PyAV, before anything else
    images, mask, n = check_frames(images, mask)
    writer = VideoWriter(os.devnull, fmt, fps, (images.shape[2], images.shape[1]), quality, audio,
                         metadata=metadata)  # checks fmt, fps, quality and audio before any file is made
    if isinstance(prefix, str):
        prefix = expand_variables(prefix, size=(images.shape[2], images.shape[1]))
    folder, name = split_prefix(prefix, root)
    _make_folder(folder, root)
    counter, ext = next_counter(folder, name), FORMATS[fmt].ext
    writer.path, writer.place = os.path.join(folder, f"{name}_{counter:05}_{ext}"), _placer(folder, name, ext, counter)
    step, progress = runtime.chunk_size(images), runtime.Progress(n)
    try:
        with writer:
            for start in range(0, n, step):
                runtime.raise_if_cancelled()
                writer.write(_rgba(images, mask, start, min(n, start + step)))
                progress.reach(min(n, start + step))
    except (OSError, av.FFmpegError) as exc:  # disk full, no permission, an encoder's refusal
        raise SaveError("filename_prefix", f"could not write {os.path.basename(writer.path)!r} in {folder!r} "
                        f"({type(exc).__name__}: {exc}); nothing was kept. Check the free space and permissions "
                        "of the output folder, then queue again.") from exc
    subfolder = os.path.relpath(os.path.dirname(writer.path), os.path.abspath(root))
    entry = {"filename": os.path.basename(writer.path), "subfolder": "" if subfolder == "." else subfolder,
             "type": "output"}
    if fmt == "png":  # the front end shows files, not folders: each frame of the sequence
        inner = os.path.join(entry["subfolder"], entry["filename"])
        previews = [{"filename": f, "subfolder": inner, "type": "output"} for f in sorted(os.listdir(writer.path))]
    else:
        previews = [dict(entry)]
    return {**entry, "path": writer.path, "frames": writer.frames, "previews": previews}
