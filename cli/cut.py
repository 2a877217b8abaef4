"""The cut-out of one batch, as named steps that drive the nodes: preprocess, remove the background, refine.

Shared by the local engine, the ray engine's workers, the video stream (:mod:`.videos`, which runs the steps
apart to smooth the masks in between) and ``CutoutImages``. A CLI result therefore equals a graph's result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging

from .. import NODE_CLASS_MAPPINGS
from ..utils import pipeline, runtime
from ..utils import rembg as rb
from ..utils.rembg import download, models
from .options import METHODS, PREPROCESS, REFINE_NODE, REMBG_FLAGS, THRESHOLD_FLAGS

log = logging.getLogger("cleancut")


def call(node_id: str, **inputs) -> dict:
    """Run a node with ``inputs``; its outputs by ``RETURN_NAMES``. Library prints stay off stdout (the summary's):
    pymatting's "PERFORMANCE WARNING" (ichol retried with a larger shift: slower, not wrong) is dropped."""
    cls = NODE_CLASS_MAPPINGS[node_id]
    with contextlib.redirect_stdout(io.StringIO()) as printed:  # pymatting prints from worker threads
        out = getattr(cls(), cls.FUNCTION)(**inputs)
    text = printed.getvalue()
    if "PERFORMANCE WARNING" in text:
        log.debug("pymatting: %s", text.strip())
    elif text.strip():
        log.info("%s", text.rstrip())
    return dict(zip(cls.RETURN_NAMES, out, strict=True))


def preprocess(batch, args):
    """The all-in-one preprocessing node on ``batch``; ``batch`` itself when the settings are neutral (the node
    would return a copy)."""
    if args.settings == pipeline.Settings():
        return batch
    return call("CleanCutPreprocess", image=batch, **dataclasses.asdict(args.settings))["image"]


def remove(batch, processed, args, on_progress=None) -> tuple:
    """The method's node on the preprocessed batch: ``(cutout, extracted, mask)``. ``extracted`` holds the pixels
    before preprocessing (rembg); ``on_progress(fraction)`` hears the node's progress."""
    extra = {"original": batch} if args.method == "rembg" else {}
    listen = runtime.progress_listener(lambda done, total: on_progress(done / total)) if on_progress else \
        contextlib.nullcontext()
    with listen:  # the cut-out is the slow part: the bar follows it image by image
        out = call(METHODS[args.method], images=processed, **dataclasses.asdict(args.options), **extra)
    if args.method == "rembg":
        return out["image"], out["extracted"], out["mask"]
    return out["images"], out["images"], out["mask"]


def refine(processed, mask, args) -> tuple:
    """Refine Edges on the image the mask was made from: ``(cutout, mask)``, the cut-out on the rembg method's
    white / black background when one is asked for (composited once, in place)."""
    refined = call(REFINE_NODE, image=processed, mask=mask, **dataclasses.asdict(args.refine_options))
    cut, mask = refined["image"], refined["mask"]
    colour = rb.BACKGROUNDS.get(getattr(args.options, "background", "transparent"))
    if colour is not None:
        cut = rb.cutout.apply_background(refined["foreground"], mask.unsqueeze(-1), colour)  # (not saved)
    return cut, mask


def cut_out(batch, args, on_progress=None) -> dict:
    """Preprocess (if asked), then remove the background of one IMAGE batch, then refine (if asked); tensors by
    save role (plus ``processed``, which is not saved). ``on_progress(fraction)`` hears the cut-out's progress."""
    processed = preprocess(batch, args)
    cut, extracted, mask = remove(batch, processed, args, on_progress)
    if args.refine_options is not None:  # Refine Edges on the image the mask was made from
        del cut  # replaced: freed before Refine Edges makes its own (768 MB at 48 MP)
        cut, mask = refine(processed, mask, args)
    return {"original": batch, "processed": processed, "cutout": cut, "extracted": extracted, "mask": mask}


def settings_metadata(args) -> dict:
    """What a run's files record about how they were made (the options that applied)."""
    flags = REMBG_FLAGS if args.method == "rembg" else THRESHOLD_FLAGS
    refine = {"refine": args.refine_options.method, "band_width": args.band_width,  # Refine Edges' decontaminate
              "decontaminate": args.decontaminate} if args.refine_options is not None else {}
    temporal = {"temporal": args.temporal} if getattr(args, "temporal", 0) else {}
    return {"method": args.method, **{k: getattr(args, k) for k in (*flags, *PREPROCESS)}, **refine, **temporal}


def check_model(options) -> None:
    """The verified model file, before anything is read: the default one is fetched if missing; for any other (a
    ``*_custom`` model's ``model_file`` included) the RuntimeError of ``models.resolve`` says where to put it."""
    if options.model == rb.RembgOptions().model and not options.model_file:
        download.ensure(options.model)  # a fresh machine has no model yet: fetch it, checksum-verified
    else:
        models.resolve(options.model, options.model_file)
