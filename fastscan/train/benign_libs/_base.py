"""Shared helpers for the per-library benign generators: the registry entry, how users save
(pickle in every protocol, joblib with every compressor, torch.save both formats), and seeded
synthetic data. Wall-clock time never enters the bytes (see benign._fixed_clock)."""

from __future__ import annotations

import importlib.util
import io
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Gen = Callable[[random.Random, str], tuple[bytes, str]]

# fmt: off
WORDS = ("model", "data", "train", "value", "graph", "token", "vector", "sample", "feature",
         "label", "score", "layer", "noise", "signal", "river", "market", "price", "cloud",
         "green", "north", "quick", "brown", "lazy", "fox", "dog", "cat", "bird", "tree", "stone",
         "water", "light", "night", "day", "time", "field")
# fmt: on


@dataclass(frozen=True)
class LibSource:
    """One benign source: `fn(rng, scale)` builds an object with `library` and saves it."""

    name: str
    library: str  # the distribution (PyPI) name: the unit of leave-one-library-out
    fn: Gen
    imports: tuple[str, ...]  # top-level modules that must be installed

    def missing(self) -> list[str]:
        """Modules of `imports` that are not installed (found without importing them)."""
        return [m for m in self.imports if importlib.util.find_spec(m) is None]


def source(library: str, *imports: str) -> Callable[[Gen], LibSource]:
    """Decorator: register `fn` (named `<module family>_<what>`) as a LibSource."""

    def wrap(fn: Gen) -> LibSource:
        return LibSource(fn.__name__, library, fn, imports or (library,))

    return wrap


def dump(obj: Any, rng: random.Random, exts: tuple[str, ...] = (".pkl",)) -> tuple[bytes, str]:
    """pickle.dumps in a random protocol 0-5 (0-2 with fix_imports: Python-2 module names and
    `_codecs.encode` for bytes), falling back upward for objects an old protocol cannot hold
    (__slots__ without __getstate__, protocol-5 buffers)."""
    first = rng.randint(0, 5)
    error: Exception | None = None
    for proto in [*range(first, 6), *range(first - 1, -1, -1)]:
        try:
            return pickle.dumps(obj, protocol=proto, fix_imports=True), rng.choice(exts)
        except Exception as exc:
            error = exc
    raise RuntimeError(f"no protocol pickles {type(obj).__name__}") from error


def joblib_dump(obj: Any, rng: random.Random) -> tuple[bytes, str]:
    """joblib.dump with a random compressor (benign.JOBLIB_COMPRESSORS), in memory."""
    import joblib

    from ..benign import JOBLIB_COMPRESSORS, _fixed_clock

    method = rng.choice(JOBLIB_COMPRESSORS)
    buf = io.BytesIO()
    with _fixed_clock():  # gzip stamps time.time()
        joblib.dump(obj, buf, compress=(method, rng.randint(1, 9)) if method else 0,
                    protocol=rng.randint(2, 5))  # fmt: skip
    return buf.getvalue(), rng.choice((".joblib", ".pkl", f".joblib.{method or 'raw'}"))


def torch_save(obj: Any, rng: random.Random, legacy: bool | None = None) -> tuple[bytes, str]:
    """torch.save to the zip format or the legacy stacked-pickle format."""
    import torch

    from ..benign import _fixed_clock, _legacy_bytes

    legacy = rng.random() < 0.25 if legacy is None else legacy
    ext = rng.choice((".pt", ".pth", ".bin", ".ckpt"))
    if legacy:  # storage keys renamed from memory addresses, see benign._legacy_bytes
        return _legacy_bytes(obj), ext
    buf = io.BytesIO()
    with _fixed_clock():
        torch.save(obj, buf)
    return buf.getvalue(), ext


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


def sentences(rng: random.Random, n: int, length: int = 8) -> list[list[str]]:
    return [words(rng, rng.randint(3, length)) for _ in range(n)]


def size(rng: random.Random, scale: str, lo: int = 20, hi: int = 200) -> int:
    return rng.randint(lo, hi * {"small": 1, "medium": 3, "large": 10}[scale])
