"""The plan of a bulk run, the same for every engine: what to scan, what carries over, in what
chunks, and what the output's metadata says.

`make_plan` lists the files (sorted by path), keeps the rows that `resume`/`since` carry over
(only from a file computed like this run, see sources.PROVENANCE_KEYS), folds Hugging Face
snapshot paths onto the blob they link to, and fills the run's metadata (`Plan.info`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .bulkoptions import ENGINES, BulkOptions
from .sinks import format_for_path
from .sources import discover, hf_excludes
from .sources.hfcache import split_hf_aliases
from .sources.incremental import reuse_rows
from .sources.local import check_root
from .sources.ref import FileRef, is_remote
from .verdict import VERDICTS


class BulkError(RuntimeError):
    """The run cannot go on (e.g. the scanner cannot be built in the workers)."""


def output_format(options: BulkOptions) -> str:
    """The output format: as asked, else what `out` implies (a stream: JSON Lines)."""
    if options.fmt:
        return options.fmt
    return format_for_path(options.out) if isinstance(options.out, str) else "jsonl"


def validate(options: BulkOptions) -> None:
    """Refuse what no engine can do, before anything starts. A local `root` must exist."""
    if options.fail_on not in VERDICTS:
        raise ValueError(f"fail_on must be one of {VERDICTS}")
    if options.engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    fmt = output_format(options)
    if options.resume and (fmt != "parquet" or not isinstance(options.out, str)):
        raise ValueError("resume needs --format parquet and an output path")
    if options.engine == "dask" and (fmt != "parquet" or not isinstance(options.out, str)):
        raise ValueError("--engine dask writes Parquet only (--format parquet)")
    if not is_remote(options.root):
        check_root(options.root)


def resolve_workers(workers: int | None) -> int:
    """Pool size: as asked, else FASTSCAN_WORKERS, else every core."""
    if workers is None:
        env = os.environ.get("FASTSCAN_WORKERS", "").strip()
        if env:
            if not env.isdigit():
                raise ValueError(f"FASTSCAN_WORKERS must be a non-negative integer, not {env!r}")
            return int(env)
        return os.cpu_count() or 1
    if workers < 0:
        raise ValueError("workers must be >= 0")
    return workers


def storage_options(options: BulkOptions) -> dict[str, Any]:
    """Endpoint and options resolved where the run starts (workers may have an older env or
    none of it); explicit `storage_options` win over the environment's."""
    if not is_remote(options.root):
        return dict(options.storage_options)
    from .sources.stores import storage_options_from_env

    scheme = options.root.split("://", 1)[0]
    return {**storage_options_from_env(scheme), **options.storage_options}


@dataclass
class Plan:
    refs: list[FileRef]  # to scan, sorted by path
    carried: list[Mapping[str, Any]]  # rows kept from `resume`/`since`
    aliases: dict[str, list[FileRef]]  # scanned blob path -> snapshot refs that get its row
    info: dict[str, str]  # the output's metadata (`complete` is added when the run ends)
    discovered: int = 0
    resumed: int = 0
    skipped: int = 0
    stale: str = ""  # why earlier rows could not be reused ("" = they were)

    @property
    def aliased(self) -> int:
        return sum(len(a) for a in self.aliases.values())


def make_plan(options: BulkOptions, provenance: Mapping[str, str]) -> Plan:
    """`provenance`: how this run computes rows (scanner versions, engine, limits)."""
    info = {"version": __version__, **provenance}
    exclude = hf_excludes(options.root, list(options.exclude), options.with_safetensors)
    refs = sorted(
        discover(options.root, options.include, exclude, options.follow_symlinks),
        key=lambda r: r.path,
    )
    plan = Plan(refs=refs, carried=[], aliases={}, info=info, discovered=len(refs))
    if options.resume and isinstance(options.out, str):
        plan.refs, plan.carried, plan.stale = reuse_rows(
            plan.refs, options.out, info, require_unchanged=False
        )
        plan.resumed = len(plan.carried)
    if options.since:
        plan.refs, kept, stale = reuse_rows(plan.refs, options.since, info)
        plan.skipped = len(kept)
        plan.stale = "; ".join(filter(None, (plan.stale, stale)))
        plan.carried += kept
    plan.refs, plan.aliases = split_hf_aliases(plan.refs)  # a cache blob once, rows for each link

    # what the report shows: where, when, and whether rows were carried from older runs
    info["root"] = options.root if is_remote(options.root) else os.path.abspath(options.root)
    info["started"] = datetime.now(UTC).isoformat(timespec="seconds")
    if options.since:
        info["since"], info["carried"] = options.since, str(plan.skipped)
    if plan.resumed:
        info["resumed_rows"] = str(plan.resumed)
    return plan


def make_chunks(
    refs: Iterable[FileRef], chunk_size: int, chunk_bytes: int
) -> Iterator[list[FileRef]]:
    """Consecutive refs, closed at `chunk_size` files or `chunk_bytes` bytes."""
    chunk: list[FileRef] = []
    size = 0
    for ref in refs:
        chunk.append(ref)
        size += max(ref.size, 0)
        if len(chunk) >= chunk_size or size >= chunk_bytes:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk
