"""Ecosystem index: what every importable name of real packages is and runs at load time.

Built from package sources with the stdlib `ast` (never imported); see the README's
"Ecosystem index" section.

    idx = shipped_index()
    sym = idx.lookup("torch.serialization", "os.system")   # -> Symbol(origin="posix.system", ...)
    idx.has_module("torch.serialization"); idx.package_of("sklearn.base")
    mine = combine(load_index("my.index"), idx)             # user index over the shipped one
"""

from __future__ import annotations

import threading
from importlib import resources

from .store import Index, IndexFormatError, Reach, Symbol, combine, load_index

__all__ = [
    "SHIPPED",
    "Index",
    "IndexFormatError",
    "Reach",
    "Symbol",
    "combine",
    "load_index",
    "shipped_index",
]

SHIPPED = "data/ecosystem.fsidx"  # inside this package; built by `python -m fastscan.index.ship`
_lock = threading.Lock()
_shipped: Index | None = None


def shipped_index() -> Index:
    """The index shipped in the package, loaded once per process on first use."""
    global _shipped
    if _shipped is None:
        with _lock:
            if _shipped is None:
                ref = resources.files(__name__).joinpath(SHIPPED)
                with resources.as_file(ref) as path:
                    _shipped = load_index(path)
    return _shipped
