"""Where results go: Parquet, JSON Lines and console writers (SARIF: sarif.py).

Every writer takes `pyarrow.RecordBatch`es built against `results.RESULT_SCHEMA`;
`results.conform_batch` is the single gate that keeps a batch with another schema away from the
Parquet writer.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import IO, Any, Protocol

import pyarrow as pa

from .results import RESULT_SCHEMA, conform_batch, file_metadata
from .text import clip


class Sink(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...
    def close(self) -> None: ...


class ParquetSink:
    """Streams batches into one Parquet file, one row group per `row_group_rows` rows."""

    def __init__(
        self,
        path: str,
        metadata: Mapping[str, str] | None = None,
        *,
        row_group_rows: int = 65_536,
    ) -> None:
        import pyarrow.parquet as pq

        schema = RESULT_SCHEMA.with_metadata(file_metadata(metadata or {}))
        self.path = path
        self.rows = 0
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self._row_group_rows = row_group_rows
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0

    def write(self, batch: pa.RecordBatch) -> None:
        batch = conform_batch(batch)
        if batch.num_rows == 0:
            return
        # Buffer small batches so row groups are not one per chunk.
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        self.rows += batch.num_rows
        if self._buffered >= self._row_group_rows:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            table = pa.Table.from_batches(self._buffer, schema=RESULT_SCHEMA)
            self._writer.write_table(table, row_group_size=self._row_group_rows)
            self._buffer.clear()
            self._buffered = 0

    def close(self) -> None:
        self.flush()
        self._writer.close()  # writes the footer: without it the file is unreadable


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def row_to_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _json_value(value) for key, value in row.items()}


class JsonLinesSink:
    """One JSON object per file, one per line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, batch: pa.RecordBatch) -> None:
        for row in conform_batch(batch).to_pylist():
            self._stream.write(json.dumps(row_to_json(row), sort_keys=False) + "\n")

    def close(self) -> None:
        self._stream.flush()


class ConsoleSink:
    """A human table: one line per flagged or errored file (all files with `show_clean`), then
    one line per reason. Reasons are clipped to `width` only on a terminal (default: 160
    there); written to a file or a pipe they stay whole, `member@offset` included."""

    def __init__(
        self,
        stream: IO[str],
        *,
        show_clean: bool = False,
        width: int | None = None,
        max_reasons: int = 1,
        accepted: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self._stream = stream
        self._show_clean = show_clean
        self._max_reasons = max_reasons
        isatty = getattr(stream, "isatty", None)
        self._width = width if width is not None else (160 if isatty and isatty() else 0)
        self._accepted = accepted  # baseline (sha256, rule_id) pairs, marked on their files
        self._header_done = False

    def write(self, batch: pa.RecordBatch) -> None:
        for row in conform_batch(batch).to_pylist():
            if not self._show_clean and row["verdict"] == "clean" and row["status"] != "error":
                continue
            if not self._header_done:
                self._stream.write(f"{'VERDICT':<11} {'STATUS':<11} {'RULES':<24} PATH\n")
                self._header_done = True
            rules = ",".join(row["rule_ids"] or ()) or "-"
            details = list(row["reasons"] or ())[: self._max_reasons]
            if row["error"] and not any(row["error"] in d for d in details):
                details.insert(0, row["error"])  # FS307-FS310 reasons already carry it
            line = f"{row['verdict']:<11} {row['status']:<11} {rules:<24} {row['path']}"
            if row["sha256"]:
                line += f"  sha256:{row['sha256']}"
                counted = {f["rule_id"] for f in row["findings"] or () if f["severity"] != "info"}
                if counted and all((row["sha256"], r) in self._accepted for r in counted):
                    line += "  (accepted in baseline)"
            self._stream.write(line + "\n")
            for detail in details[: max(1, self._max_reasons)]:
                self._stream.write(f"{'':<11} {clip(' '.join(detail.split()), self._width)}\n")

    def close(self) -> None:
        self._stream.flush()


FORMATS = ("parquet", "jsonl", "sarif", "console")

_FORMAT_OF_SUFFIX = {".jsonl": "jsonl", ".json": "jsonl", ".sarif": "sarif", ".parquet": "parquet"}


def format_for_path(out: str) -> str:
    """The output format an `--out` path implies: .jsonl/.json -> jsonl, .sarif -> sarif,
    "-" (stdout) -> jsonl, anything else (.parquet, a dataset folder) -> parquet."""
    if out == "-":
        return "jsonl"
    return _FORMAT_OF_SUFFIX.get(os.path.splitext(out.rstrip("/"))[1].lower(), "parquet")


def open_sink(
    fmt: str,
    *,
    path: str | None = None,
    stream: IO[str] | None = None,
    metadata: Mapping[str, str] | None = None,
    sarif: Mapping[str, Any] | None = None,
) -> Sink:
    """Build the writer for `fmt`. Parquet needs a path; the text formats write to `stream`.

    `sarif`: keyword options of `sarif.SarifSink` (root, include_clean, baseline).
    """
    if fmt == "parquet":
        if not path:
            raise ValueError("the parquet format needs an output path")
        return ParquetSink(path, metadata)
    if stream is None:
        raise ValueError(f"the {fmt} format needs a text stream")
    if fmt == "jsonl":
        return JsonLinesSink(stream)
    if fmt == "sarif":
        from .sarif import SarifSink

        meta = dict(metadata or {})
        version = meta.get("version") or meta.get("fastscan_version", "")
        return SarifSink(stream, tool_version=version, metadata=meta, **(sarif or {}))
    if fmt == "console":
        return ConsoleSink(stream)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
