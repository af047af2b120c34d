"""Keep the scanned tree and the current directory out of every import fastscan makes.

Python puts the script's directory ('' for `-c`, the current directory for `-m`) first on
`sys.path`, so a `numpy.py` planted in an untrusted tree would be imported by a process started
there. The parent drops that entry (`scrub_sys_path`); every child fastscan starts (the
forkserver and its workers, Dask's nannies and workers) inherits `PYTHONSAFEPATH=1`, so its
`-c` bootstrap never adds it either, and multiprocessing's spawn data copies the scrubbed path.
"""

from __future__ import annotations

import os
import sys


def _is_cwd(entry: str) -> bool:
    try:
        return entry == "" or os.path.samefile(entry, os.curdir)
    except OSError:
        return False


def scrub_sys_path() -> None:
    """Drop the interpreter-added first entry when it is the current directory.

    Only that entry: PYTHONPATH entries are the user's explicit choice (tests point one at a
    worktree). Under `-P`/PYTHONSAFEPATH there is no such entry.
    """
    if not sys.flags.safe_path and sys.path and _is_cwd(sys.path[0]):
        del sys.path[0]


def protect_children() -> None:
    """Environment for every process fastscan starts from here on (idempotent)."""
    os.environ["PYTHONSAFEPATH"] = "1"  # no '' / cwd entry in a child's sys.path
    quiet_onnxruntime()


def quiet_onnxruntime() -> None:
    """Call before `import onnxruntime`: otherwise its import writes a telemetry device id and
    an events DB under ~/.cache (and prints an ANSI error where it cannot)."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"


def harden() -> None:
    scrub_sys_path()
    protect_children()
