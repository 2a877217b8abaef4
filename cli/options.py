"""The command line's options: every choice, default and range taken from the library and the nodes.

Preprocessing flags come from ``pipeline.Settings``' fields, rembg and threshold defaults from
``RembgOptions`` / ``ThresholdOptions``, kinds, ranges and help text from the nodes' declarations; only
the short flag names are the CLI's own. :func:`resolve` fills in defaults and rejects options that do
not apply (exit code 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from pathlib import Path

from .. import NODE_CLASS_MAPPINGS
from ..utils import edges, imageio, pipeline, saving, video_write
from ..utils import rembg as rb
from ..utils import threshold as th
from ..utils.checks import CleanCutError

METHODS = {"rembg": "CleanCutRembg", "threshold": "CleanCutAlphaThreshold"}
# CLI flag (dest) -> the option's field and node input: the short names are the CLI's only own facts.


REMBG_FLAGS = {"model": "model", "alpha_matting": "alpha_matting",
               "foreground_threshold": "alpha_matting_foreground_threshold",
               "background_threshold": "alpha_matting_background_threshold",
               "erode_size": "alpha_matting_erode_size", "only_mask": "only_mask",
               "post_process_mask": "post_process_mask", "background": "background", "edges": "edges",
               "decontaminate": "decontaminate", "runtime": "runtime", "model_file": "model_file"}


REFINE_NODE = "CleanCutRefineEdges"  # --refine runs it after the cut; --band-width is its input of that name


THRESHOLD_FLAGS = {"mode": "mode", "threshold": "threshold", "tolerance": "threshold_tolerance",
                   "legacy_alternating": "legacy_alternating"}


MATTING_FLAGS = ("foreground_threshold", "background_threshold", "erode_size")


VIDEO_NAMING = """\
videos (recognised by content): <stem>_cutout.<ext> (alpha; opaque on a --background colour) and
  <stem>_mask.<ext> (the grey matte), ext from --video-format (png: a folder of frame_000001.png, ...)
"""


# video flag (dest) -> (node, its input): the Save Cut-out Video node's format and quality, Refine Mask's temporal
VIDEO_FLAGS = {"video_format": ("CleanCutSaveVideo", "format"), "video_quality": ("CleanCutSaveVideo", "quality"),
               "temporal": ("CleanCutMask", "temporal")}


PREPROCESS = tuple(f.name for f in dataclasses.fields(pipeline.Settings))


DEMO_PREPROCESS = {"clip_limit": 2.0, "saturation": 1.2, "sharpness": 0.5}  # the demo shows a visible change


FORMAT_NAMES = {**{name.split()[0]: name for name in saving.FORMATS}, **{n: n for n in saving.FORMATS}}


BATCH_SIZE = 8
ENGINES = ["local", "ray"]
ENGINE_FLAGS = ("address", "workers", "gpus_per_worker")  # apply with --engine ray only
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


EXIT_CODES = ("exit codes: 0 done, 1 an input failed (or no model, or the run stopped early: a full disk, no output "
              "folder), 2 usage error, 130 interrupted (Ctrl-C)")


class UsageError(Exception):
    """A command line that cannot run as given (exit code 2); the message names the flag."""


def option_defaults(command: str) -> dict:
    """Every resolved option's default, from the options dataclasses (the demo turns some steps on)."""
    rembg = {f.name: f.default for f in dataclasses.fields(rb.RembgOptions)}
    thresh = {f.name: f.default for f in dataclasses.fields(th.ThresholdOptions)}
    return {"method": next(iter(METHODS)), **{k: rembg[v] for k, v in REMBG_FLAGS.items()},
            **{k: thresh[v] for k, v in THRESHOLD_FLAGS.items()},
            **{f.name: f.default for f in dataclasses.fields(pipeline.Settings)},
            **(DEMO_PREPROCESS if command == "demo" else {}),
            "save": ",".join(saving.ROLES), "format": next(iter(saving.FORMATS)), "batch_size": BATCH_SIZE,
            "max_pixels": imageio.MAX_PIXELS, "overwrite": False, "quiet": False, "engine": ENGINES[0],
            "band_width": edges.RefineOptions().band_width, "video_format": next(iter(video_write.FORMATS)),
            "video_quality": video_write.DEFAULT_QUALITY, "temporal": 0.0}


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def flag_of(name: str) -> str:
    """The CLI flag of a node input / options field named in a ``SettingError``."""
    video = {name: dest for dest, (_, name) in VIDEO_FLAGS.items()}
    return flag({v: k for k, v in {**REMBG_FLAGS, **THRESHOLD_FLAGS}.items()}.get(name, video.get(name, name)))


def add_node_option(group, dest: str, node_id: str, name: str, default) -> None:
    """``--dest`` from the node input ``name``: its kind, choices, range and tooltip; ``default`` is shown."""
    cls = NODE_CLASS_MAPPINGS[node_id]
    kind, opts = {**cls.REQUIRED, **cls.OPTIONAL}[name]
    tip = opts.get("tooltip", "").replace("%", "%%")
    if isinstance(kind, (list, tuple)):
        group.add_argument(flag(dest), dest=dest, choices=list(kind), metavar=dest.upper(),
                           help=f"{tip} (choices: {', '.join(kind)}; default {default})")
    elif kind in ("INT", "FLOAT"):
        # The node's range, not the library's wider one: the CLI runs the node, which enforces it.
        group.add_argument(flag(dest), dest=dest, type=int if kind == "INT" else float,
                           metavar="N" if kind == "INT" else "X",
                           help=f"{tip} (range {opts['min']}..{opts['max']}, default {default})")
    elif kind == "STRING":
        group.add_argument(flag(dest), dest=dest, metavar=dest.upper(),
                           help=f"{tip} (default {default!r})")
    else:
        group.add_argument(flag(dest), dest=dest, action="store_true", default=None,
                           help=f"{tip} (default {'on' if default else 'off'})")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see: {self.prog} --help)\n")  # one line, no usage dump


def add_cutout_options(p: argparse.ArgumentParser, command: str) -> None:
    """The options of ``cutout`` and ``demo``; all default to ``None`` so :func:`resolve` sees what was given."""
    d = option_defaults(command)
    if command == "demo":
        p.add_argument("--out", type=Path, default=Path("demo_out"),
                       help="output folder; the demo replaces its own files there (default demo_out)")
    else:
        p.add_argument("--out", type=Path, required=True, help="output folder, created if missing")
    p.add_argument("--method", choices=list(METHODS), help="rembg: a rembg model (the rembg options below); "
                   "threshold: WAS's fixed grey threshold (--mode, --threshold, --tolerance) (default rembg)")
    p.add_argument("--save", help=f"roles to write, comma-separated, from: {', '.join(saving.ROLES)} "
                   f"(default {d['save']}). 'original' is the decoded input as the nodes saw it (orientation "
                   "applied, 8- or 16-bit PNG/WebP, without the source's ICC profile or EXIF), not a copy "
                   "of the file: drop it from --save to keep only the cut-outs. Videos get cutout and mask only "
                   "(original and extracted are not written for videos)")
    p.add_argument("--format", choices=list(FORMAT_NAMES), metavar="FORMAT",
                   help="png or webp, both lossless ('webp (lossless)', the node's name, works too) "
                        f"(default {d['format']})")
    if command == "cutout":
        p.add_argument("--batch-size", type=positive, metavar="N",
                       help=f"same-size images processed together (default {d['batch_size']})")
        p.add_argument("--max-pixels", type=positive, metavar="N",
                       help="pixel budget of a batch (height x width, summed): batches stay below it, a larger "
                            f"image goes alone; lower it if memory runs out (default {d['max_pixels']}, 16 MP)")
        p.add_argument("--overwrite", action="store_true", default=None,
                       help="redo inputs whose outputs all exist, replacing those files (default off: such "
                            "inputs are skipped; an incomplete set is always redone)")
        g = p.add_argument_group("engine (where the work runs)")
        g.add_argument("--engine", choices=ENGINES, help="local: this process (default). ray: a Ray cluster, "
                       "one long-lived worker per model session; needs pip install \"cleancut[ray]\" and an --out "
                       "that every worker can reach (a shared file system)")
        g.add_argument("--address", help="ray: the cluster to join (e.g. ray://head:10001, or 'auto' for the one "
                       "`ray start` made here); default: start a local Ray instance on this machine")
        g.add_argument("--workers", type=positive, metavar="N",
                       help="ray: number of workers, each with one model session (default: one per two CPUs "
                            "of the cluster, or per GPU share with --gpus-per-worker)")
        g.add_argument("--gpus-per-worker", type=float, metavar="F",
                       help="ray: GPUs each worker reserves, e.g. 1 or 0.5 to share one (default 0: CPU workers)")
        add_video_options(p, d)
    p.add_argument("--quiet", action="store_true", default=None, help="no progress bar (default off)")
    g = p.add_argument_group("rembg method (--method rembg)")
    for dest, name in REMBG_FLAGS.items():
        add_node_option(g, dest, METHODS["rembg"], name, d[dest])
    g = p.add_argument_group("edge refinement (Refine Edges, after either method)")
    tip = NODE_CLASS_MAPPINGS[REFINE_NODE].REQUIRED["method"][1]["tooltip"]
    g.add_argument("--refine", choices=list(edges.METHODS), metavar="METHOD",
                   help=f"refine the mask's edge with Refine Edges. {tip} closed-form takes "
                        "--foreground-threshold, --background-threshold and --erode-size; --decontaminate "
                        "then estimates the colours for the refined alpha (choices: "
                        f"{', '.join(edges.METHODS)}; default off)")
    add_node_option(g, "band_width", REFINE_NODE, "band_width", d["band_width"])
    g = p.add_argument_group("threshold method (--method threshold)")
    for dest, name in THRESHOLD_FLAGS.items():
        add_node_option(g, dest, METHODS["threshold"], name, d[dest])
    g = p.add_argument_group("preprocessing, before the cut (the all-in-one node)",
                             "Run in the node's order. " + ("The demo turns CLAHE, saturation and sharpening on."
                                                            if command == "demo" else
                                                            "The defaults leave the image unchanged."))
    for name in PREPROCESS:
        add_node_option(g, name, "CleanCutPreprocess", name, d[name])


def add_video_options(p: argparse.ArgumentParser, d: dict) -> None:
    g = p.add_argument_group("video inputs (each written as <stem>_cutout and <stem>_mask videos)", textwrap.fill(
                             "Videos (recognised by content) stream through in chunks within the batch size and "
                             "pixel budget above: every option applies to each frame; fps, frame count, timestamps "
                             "and the sound (webm: Opus, mov: PCM; webp and png hold none) are kept, and a rotated "
                             "clip comes out upright. Original and extracted are not written for videos. With "
                             "temporal smoothing the order is model mask, temporal, Refine Edges (the method of "
                             "--refine, else none), compose.", 100, break_on_hyphens=False))
    for dest, (node_id, name) in VIDEO_FLAGS.items():
        add_node_option(g, dest, node_id, name, d[dest])


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="cleancut", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    p_demo = sub.add_parser("demo", help="run the whole chain on built-in sample photos", formatter_class=fmt,
                            description=textwrap.fill(
                                "The chain on scikit-image's sample photos: the download set of each photo plus "
                                "contact_sheet.png. A run into a folder that holds an earlier demo replaces its "
                                "files.", 100),
                            epilog=EXIT_CODES)
    add_cutout_options(p_demo, "demo")
    p_demo.add_argument("--size", type=positive, default=512, metavar="N",
                        help="side of the square sample images (default 512)")
    p_cut = sub.add_parser("cutout", help="remove backgrounds of files, folders or globs", formatter_class=fmt,
                           description=textwrap.fill(
                               "Remove the backgrounds of image files (PNG, JPEG/JFIF, WebP, BMP, TIFF, GIF; 8 or "
                               "16 bits, RGBA; decoded by content, EXIF orientation applied) and of video files "
                               "(MP4, MOV, MKV, WebM, AVI...; recognised by content; animated GIF / WebP stay "
                               "images). An input whose outputs all exist is skipped (--overwrite redoes it); "
                               "earlier CleanCut outputs in folders and globs are not inputs, so --out may be an "
                               "input folder.", 100),
                           epilog=f"{imageio.NAMING}{VIDEO_NAMING}\n{EXIT_CODES}")
    p_cut.add_argument("inputs", nargs="+", help="image or video files, folders (not recursive) or glob patterns")
    add_cutout_options(p_cut, "cutout")
    p_models = sub.add_parser("models", help="list or fetch rembg models", epilog=EXIT_CODES)
    p_models.add_argument("action", choices=["list", "fetch"])
    p_models.add_argument("name", nargs="?", choices=list(rb.MODEL_NAMES), default=rb.RembgOptions().model,
                          metavar="name", help=f"model to fetch (default {rb.RembgOptions().model})")
    return parser


def resolve(args: argparse.Namespace) -> None:
    """Fill in the defaults, then refuse what does not apply and check every setting: once, up front."""
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out: {args.out} is a file, not a folder; name a folder (it is created if missing)")
    given = {k for k, v in vars(args).items() if v is not None}
    for k, v in option_defaults(args.command).items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    problem = not_applicable(args, given)
    if problem:
        raise UsageError(problem)
    args.format = FORMAT_NAMES[args.format]
    args.roles = [r.strip() for r in args.save.split(",") if r.strip()]
    unknown = [r for r in args.roles if r not in saving.ROLES]
    if unknown or not args.roles:
        raise UsageError(f"--save: {'unknown ' + ', '.join(unknown) if unknown else 'nothing to save'}; "
                         f"name one or more of {', '.join(saving.ROLES)}, comma-separated")
    try:
        for node_id, options in build_options(args):
            NODE_CLASS_MAPPINGS[node_id].check_widgets(dataclasses.asdict(options))  # the node's (narrower) ranges
            options.check()
        for dest, (node_id, name) in VIDEO_FLAGS.items():
            NODE_CLASS_MAPPINGS[node_id].check_widgets({name: getattr(args, dest)})
    except CleanCutError as exc:
        raise UsageError(f"{flag_of(exc.name)}: {exc.message}" if exc.name else exc.message) from exc


def build_options(args: argparse.Namespace) -> list[tuple[str, object]]:
    """``args.settings``, ``args.options`` and ``args.refine_options`` from the flags; ``(node id, options)``
    of each, for checking."""
    args.settings = pipeline.Settings(**{k: getattr(args, k) for k in PREPROCESS})
    if args.method == "rembg":
        args.options = rb.RembgOptions(**{v: getattr(args, k) for k, v in REMBG_FLAGS.items()})
    else:
        args.options = th.ThresholdOptions(**{v: getattr(args, k) for k, v in THRESHOLD_FLAGS.items()})
    args.refine_options = None
    checks = [("CleanCutPreprocess", args.settings), (METHODS[args.method], args.options)]
    if args.refine or args.temporal:  # --temporal: Refine Edges composes the cut-out from the smoothed mask
        args.refine_options = edges.RefineOptions(
            method=args.refine or "none", band_width=args.band_width, foreground_threshold=args.foreground_threshold,
            background_threshold=args.background_threshold, erode_size=args.erode_size,
            decontaminate=args.decontaminate)
        checks.append((REFINE_NODE, args.refine_options))
        if args.method == "rembg":  # the colours are estimated once, by Refine Edges, for its alpha
            args.options = dataclasses.replace(args.options, decontaminate=False)
            checks[1] = (METHODS[args.method], args.options)
    return checks


def as_flags(values: dict) -> list[str]:
    """``{dest: value}`` as command-line flags: ``True`` a bare flag, ``False`` / ``None`` none, else flag and value."""
    out: list[str] = []
    for dest, value in values.items():
        if value is not None and value is not False:
            out += [flag(dest)] if value is True else [flag(dest), str(value)]
    return out


def canonical_flags(args: argparse.Namespace) -> list[str]:
    """The flags that reproduce ``args``' resolved cut-out settings (each that differs from its default), so a
    worker in another process rebuilds the same options with :func:`resolve` (and the same checks)."""
    defaults = option_defaults("cutout")
    dests = (*REMBG_FLAGS, *THRESHOLD_FLAGS, *PREPROCESS, *VIDEO_FLAGS, "method", "save", "format", "batch_size",
             "max_pixels", "band_width", "refine", "overwrite")
    return as_flags({d: getattr(args, d, None) for d in dests if getattr(args, d, None) != defaults.get(d)})


def not_applicable(args: argparse.Namespace, given: set[str]) -> str | None:
    """The first given option that would be ignored, worded as an error; ``None`` when all apply."""
    other = "threshold" if args.method == "rembg" else "rembg"
    closed_form = args.refine == "closed-form"
    composes = bool(args.refine or args.temporal)  # Refine Edges runs: after --refine, or to compose --temporal's
    refines = set(MATTING_FLAGS if closed_form else ()) | ({"decontaminate"} if composes else set())
    for dest in THRESHOLD_FLAGS if other == "threshold" else REMBG_FLAGS:
        if dest in given and dest not in refines:  # Refine Edges' inputs, after either method
            also = (", or with --refine or --temporal (Refine Edges then estimates the colours)"
                    if dest == "decontaminate" else "")
            return f"{flag(dest)} applies to --method {other} only{also} (this run uses --method {args.method})"
    rules = [(MATTING_FLAGS, not (args.alpha_matting or closed_form),
              "applies with --alpha-matting or --refine closed-form only"),
             (("band_width",), args.refine != "guided filter", "applies with --refine 'guided filter' only"),
             (("refine",), args.only_mask, "does nothing with --only-mask (the cut-out is the mask)"),
             (("alpha_matting", "edges"), bool(args.refine),
              "does nothing with --refine (Refine Edges sets the edge and its colours)"),
             (("alpha_matting", "edges"), bool(args.temporal), "does nothing with --temporal (Refine Edges composes "
              "the cut-out from the smoothed mask; for matting, use --refine closed-form: it runs after smoothing)"),
             (("temporal",), args.only_mask, "does not go with --only-mask (the cut-out would be composed from the "
              "smoothed mask); --save mask writes the smoothed masks"),
             (("decontaminate",), args.only_mask or args.alpha_matting,
              "does nothing with --only-mask or --alpha-matting (matting estimates the colours already)"),
             (("alpha_matting",), args.only_mask, "does nothing with --only-mask (rembg does not matte a mask)"),
             (("background", "edges"), args.only_mask, "does nothing with --only-mask (the cut-out is the mask)"),
             (("edges",), args.alpha_matting, "does nothing with --alpha-matting (matting estimates the edge "
              "colours)"),
             (("tile_grid",), args.clip_limit == 0, "applies with --clip-limit above 0 only (CLAHE is off)"),
             (("sharpen_radius",), args.sharpness == 0, "applies with --sharpness above 0 only (sharpening is off)")]
    rules.append((ENGINE_FLAGS, getattr(args, "engine", "local") != "ray", "applies with --engine ray only"))
    for dests, inapplicable, why in rules:
        for dest in dests:
            if dest in given and inapplicable:
                return f"{flag(dest)} {why}"
    return None
