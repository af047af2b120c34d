"""What a bulk run is asked to do: one frozen options object, every default written here once.

The CLI's `bulk` flags take their defaults from it (`option_default`), the Python API
(`bulk.run_bulk`) builds it from keyword arguments, and both engines read it. Light imports
only: the CLI imports it while building its parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import IO, Any

from .verdict import SUSPICIOUS

ENGINES = ("local", "dask")
RECYCLE_RSS_MB = 384  # a pool worker past this resident size is replaced after its chunk


@dataclass(frozen=True)
class BulkOptions:
    root: str  # directory, file or URL (s3://, hf://ORG/NAME[@REV])
    out: str | IO[str]  # path ("-": stdout), a Dask dataset folder, or a text stream
    fmt: str | None = None  # None: from `out` (sinks.format_for_path)
    engine: str = "local"  # "local": the process pool (fastscan.pool); "dask": a cluster
    scheduler: str | None = None  # Dask scheduler address; None: a LocalCluster
    workers: int | None = None  # None: all cores or FASTSCAN_WORKERS; 0: in-process
    chunk_size: int = 64  # files sent to a worker at once
    chunk_bytes: int = 256 << 20  # a chunk also closes at this many bytes (big checkpoints)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    with_safetensors: bool = False  # read *.safetensors of hf:// repositories (no pickle there)
    follow_symlinks: bool = False
    since: str | None = None  # previous verdicts: rows of unchanged files carry over
    resume: bool = False  # complete an interrupted `out`
    timeout: float = 120.0  # seconds per file
    memory_mb: int = 4096  # heap + private writable mappings per worker (RLIMIT_DATA)
    recycle_rss_mb: int = RECYCLE_RSS_MB
    features_out: str | None = None  # also write the feature batches to this Parquet file
    fail_on: str = SUSPICIOUS  # lowest verdict that makes the exit code 1
    strict_errors: bool = False  # an unread file exits 2 even when others are flagged
    scanner_options: Mapping[str, Any] = field(default_factory=dict)  # Scanner(**these)
    storage_options: Mapping[str, Any] = field(default_factory=dict)  # on top of the env's

    def __post_init__(self) -> None:
        # lists from argparse or callers become tuples: the object stays immutable
        for name in ("include", "exclude"):
            value: Iterable[str] = getattr(self, name)
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "scanner_options", dict(self.scanner_options))
        object.__setattr__(self, "storage_options", dict(self.storage_options))


def option_default(name: str) -> Any:
    """The default of one `BulkOptions` field (for the CLI's flags)."""
    for f in fields(BulkOptions):
        if f.name == name:
            if f.default is MISSING:
                raise KeyError(f"{name} has no default")
            return f.default
    raise KeyError(name)
