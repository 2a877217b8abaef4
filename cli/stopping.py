"""How a ``cutout`` run stops: Ctrl-C, a full disk, and what a stopped run has on disk.

A run ends with its summary whatever stops it: the first Ctrl-C after the current batch, the second at once
(one KeyboardInterrupt), any later one not at all; a full disk at the first write that fails.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import threading
from pathlib import Path


def say(line: str) -> None:
    """One line on stderr, above the progress bar if there is one."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


class StopAfterBatch:
    """Ctrl-C while ``cutout`` runs. The first: finish the current batch, then stop. The second: stop at once (one
    KeyboardInterrupt, raised while the batches run). Any later one, or one after :meth:`finish`, changes nothing,
    so the run always ends with its summary.

    ``for_process``: ``main`` is the process's command line; Ctrl-C then stays ignored after the run until the
    process exits. A Ctrl-C during the interpreter's teardown of torch and onnxruntime killed the process (-2)
    or aborted it (-6, "terminate called without an active exception") after its summary.
    """

    def __init__(self, for_process: bool = False):
        self.for_process = for_process

    def __enter__(self):
        self.presses, self.running = 0, True
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C is not ours to handle
            self.previous = None
        return self

    def __exit__(self, *exc):
        self.running = False
        if self.previous is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN if self.for_process else self.previous)

    @property
    def requested(self) -> bool:
        return self.presses > 0

    def finish(self) -> None:
        """The batches are over: a Ctrl-C from now on stops nothing (the summary follows)."""
        self.running = False

    def _handle(self, *_):
        self.presses += 1
        if self.presses == 1 and self.running:
            say("\nstopping after the current batch (Ctrl-C again to stop now)")
        elif self.presses == 2 and self.running:
            self.running = False  # raised once: cleanup (pools joined, temporary files removed) runs undisturbed
            raise KeyboardInterrupt


def file_id(path: Path) -> tuple[int, int] | None:
    """``(inode, mtime)`` of the file at ``path``, ``None`` if there is none: a file written later differs."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
INTERRUPTED = "interrupted"  # Run.stopped by Ctrl-C: exit code 130
STALE_TEMP_S = 600  # a temporary file untouched this long is no live write's (one item is encoded in seconds)


def disk_full(exc: BaseException | None) -> OSError | None:
    """The "no space" / "quota exceeded" error behind ``exc`` (a SaveError names its cause), if any."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return exc
        exc = exc.__cause__
    return None


@contextlib.contextmanager
def ctrl_c_ignored_after(for_process: bool):
    """``for_process``: Ctrl-C is ignored once the block is over (see :class:`StopAfterBatch`)."""
    try:
        yield
    finally:
        if for_process and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the summary is out: nothing is left to stop
