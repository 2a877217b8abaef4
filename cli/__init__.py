"""Command line, outside ComfyUI: ``cleancut demo | cutout | models``.

The commands drive the same node classes ComfyUI runs, so a CLI result equals a graph's result. Every
choice, default and range comes from the library (``pipeline.Settings``, ``RembgOptions``,
``ThresholdOptions``, ``saving``, ``video_write``) and the nodes' declarations; the CLI adds only its own
flags' names. This module is the face: arguments in, a command run, an exit code out.

==================  ==========================================================================================
``options.py``      the flags, derived from the library and the nodes; :func:`resolve` checks them once
``cut.py``          the cut-out of one batch as named steps that drive the nodes (preprocess, remove, refine)
``engine.py``       work items (:func:`gather`), the local engine (:class:`Run`), the summary (:func:`report`)
``images.py``       an image input's output files and how a set is written
``videos.py``       a video input: one item, streamed chunk by chunk into ``<stem>_cutout`` / ``<stem>_mask``
``ray_engine.py``   ``--engine ray``: the same work items in a pool of Ray actors
``stopping.py``     Ctrl-C, a full disk, what a stopped run has on disk
``demo.py``         ``cleancut demo`` and its contact sheet
==================  ==========================================================================================
"""

from __future__ import annotations

import contextlib
import logging
import sys

from ..utils.rembg import download, models
from .cut import check_model
from .demo import demo_command
from .engine import gather, run_cutout
from .options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError, build_parser, resolve
from .stopping import ctrl_c_ignored_after, say

log = logging.getLogger("cleancut")


def cutout_command(args) -> int:
    if args.engine == "ray":  # Ray is imported only here: the pack and the local CLI never need it
        from .ray_engine import require_ray, run_on_ray

        require_ray()  # before any input is read or the output folder made
    found, todo, failed, skipped = gather(args)
    if todo and args.method == "rembg":
        check_model(args.options)
    if args.engine == "ray":
        return run_on_ray(args, found, todo, failed, skipped)
    return run_cutout(args, found, todo, failed, skipped)


def models_command(args) -> int:
    if args.action == "list":
        sys.stdout.write("".join(row + "\n" for row in models.status_rows()))
    else:
        sys.stdout.write(f"{args.name}: verified, at {download.fetch(args.name)}\n")
    return EXIT_OK


class _Say(logging.Handler):
    """The library's log lines (a model download, a decoder's warning) on stderr, above the progress bar."""

    def emit(self, record):
        say(self.format(record))


@contextlib.contextmanager
def _logging():
    handler, previous = _Say(logging.INFO), (log.level, log.propagate)  # default format: the message alone
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the lines go to stderr once, whatever the root logger does
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.level, log.propagate = previous


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see ``EXIT_CODES``). Errors are one line on stderr.

    ``argv`` ``None``: the process's own command line (the console script, ``python -m cleancut``); Ctrl-C is
    then ignored once the command is over, as only the process's exit follows (see :class:`StopAfterBatch`).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported in one line
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    commands = {"demo": demo_command, "cutout": cutout_command, "models": models_command}
    with _logging(), ctrl_c_ignored_after(argv is None):
        try:
            if args.command != "models":
                resolve(args)
            args.for_process = argv is None
            return commands[args.command](args)
        except UsageError as exc:
            say(f"cleancut {args.command}: {exc}")
            return EXIT_USAGE
        except KeyboardInterrupt:
            say(f"cleancut {args.command}: interrupted")
            return EXIT_INTERRUPTED
        except (ValueError, RuntimeError, OSError) as exc:
            say(f"cleancut {args.command}: {exc}")
            return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
