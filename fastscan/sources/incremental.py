"""Incremental runs: which rows of an earlier verdicts Parquet still hold (`--since`, `--resume`)
and which files must be scanned again."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..results import conform_table, read_parquet, read_provenance
from .ref import FileRef

# Parquet metadata keys that say how a row was computed. Rows carry over (--since, --resume)
# only from a file that agrees with this run on every one; otherwise every file is rescanned.
PROVENANCE_KEYS = (
    "fastscan_version",
    "opcode_table",
    "rules_hash",
    "model_hash",
    "config_hash",
    "index_hash",
)


def stale_reason(previous: Mapping[str, str], current: Mapping[str, str]) -> str:
    """ "" when rows computed under `previous` metadata are valid now, else what differs."""
    differ = [k for k in PROVENANCE_KEYS if previous.get(k) != current.get(k)]
    if not differ:
        return ""
    return "computed under another " + ", ".join(differ)


def load_previous(
    parquet_path: str, current: Mapping[str, str] | None = None
) -> tuple[dict[str, dict[str, Any]], str]:
    """(rows of an earlier fastscan Parquet keyed by path, stale reason).

    No rows when the file does not exist, or (with `current`, this run's metadata) when the
    file was computed under other rules, model, config, index or fastscan version: the
    reason says which, and every file is scanned again.
    """
    if not os.path.exists(parquet_path):
        return {}, ""
    if current is not None:
        reason = stale_reason(read_provenance(parquet_path), current)
        if reason:
            return {}, f"{parquet_path} {reason}"
    table = conform_table(read_parquet(parquet_path))
    return {row["path"]: row for row in table.to_pylist()}, ""


def unchanged(ref: FileRef, row: Mapping[str, Any]) -> bool:
    """True when `row` was produced from this very version of the file."""
    if ref.error or row.get("status") == "error":
        return False  # errors may be transient: always retry them
    if ref.etag and row.get("etag"):
        return bool(ref.etag == row["etag"] and ref.size == row.get("size"))
    return bool(ref.size == row.get("size") and ref.mtime == row.get("mtime"))


def reuse_rows(
    refs: Iterable[FileRef],
    parquet_path: str,
    current: Mapping[str, str],
    *,
    require_unchanged: bool = True,
) -> tuple[list[FileRef], list[Mapping[str, Any]], str]:
    """(refs to scan, rows carried forward, stale reason): `split_incremental` against the rows
    of `parquet_path` that are still valid under this run's metadata `current`."""
    previous, stale = load_previous(parquet_path, current)
    to_scan, carried = split_incremental(refs, previous, require_unchanged=require_unchanged)
    return to_scan, carried, stale


def split_incremental(
    refs: Iterable[FileRef],
    previous: Mapping[str, Mapping[str, Any]],
    *,
    require_unchanged: bool = True,
) -> tuple[list[FileRef], list[Mapping[str, Any]]]:
    """Split refs into (to scan, previous rows carried forward).

    With `require_unchanged=False` (resume) any path already present is kept as is.
    """
    to_scan: list[FileRef] = []
    carried: list[Mapping[str, Any]] = []
    for ref in refs:
        row = previous.get(ref.path)
        if row is not None and (not require_unchanged or unchanged(ref, row)):
            carried.append(row)
        else:
            to_scan.append(ref)
    return to_scan, carried
