"""The process server that forks `fastscan bulk` workers.

Kept free of heavy imports: the CLI starts the server before it loads pyarrow and the model
itself, so the workers' imports run on one core while the parent's run on another.
"""

from __future__ import annotations

import multiprocessing as mp
import os
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


# The server's (and so every worker's) environment on top of the parent's. Arrow's default
# mimalloc pool reserves a 1 GiB writable arena at its first allocation: untouched, but the
# workers' RLIMIT_DATA budget counts it (a quarter of the default gone at the first chunk). A
# worker's Arrow use is one small batch per chunk; malloc serves that. The parent keeps mimalloc.
WORKER_ENV = {"ARROW_DEFAULT_MEMORY_POOL": "system"}


def start() -> None:
    """Start the server now rather than at the first submitted chunk (idempotent)."""
    context()
    saved = {key: os.environ.get(key) for key in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        forkserver.ensure_running()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
