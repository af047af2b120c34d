"""The process server that forks `fastscan bulk` workers.

Kept free of heavy imports: the CLI starts the server before it loads pyarrow and the model
itself, so the workers' imports run on one core while the parent's run on another.
"""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing import forkserver

from .isolation import protect_children

# Imported once in the server, so every worker forks with them loaded (missing ones are skipped
# by multiprocessing).
PRELOAD = ["fastscan", "fastscan.scan", "fastscan.worker", "numpy", "onnxruntime", "pyarrow"]


def context() -> mp.context.BaseContext:
    """The multiprocessing context of the worker pool, preloading `PRELOAD`."""
    protect_children()  # the server is started with `-c`: without this, cwd is on its path
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start() -> None:
    """Start the server now rather than at the first submitted chunk (idempotent)."""
    context()
    forkserver.ensure_running()
