"""Where a bulk run's rows go, whichever engine scanned them.

- `SortedOutput` (any format): batches stream into a spool Parquet as chunks finish; at the end
  the spool plus the carried rows, sorted by path, are written to a temp file and atomically
  renamed, so an interrupted run still leaves a valid, resumable file.
- `DatasetOutput` (the Dask engine's `--out DIR`): one part per chunk, rows sorted by path inside
  each (`part-NNNNNN.parquet`, carried rows in part 0), plus `_common_metadata` and `_metadata`;
  written into a temp folder next to `out` and swapped in whole.
- Feature batches of either: concatenated, sorted by path, written atomically.
The run's metadata (`info`) goes into every file; `complete` says whether the run finished.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from .results import RESULT_SCHEMA, conform_table, file_metadata, read_parquet
from .sinks import ParquetSink, open_sink

SPOOL_ROW_GROUP = 4096  # rows the parent buffers before writing them to the spool
CARRIED_PART = 0  # the dataset part holding carried rows (chunks count from 1)


class Output(Protocol):
    def carry(self, rows: list[Mapping[str, Any]]) -> None: ...
    def write(self, part: int, tables: list[pa.Table], features: pa.Table | None) -> None: ...
    def close(self, complete: bool) -> None: ...
    def discard(self) -> None: ...


def open_output(
    out: str | IO[str], fmt: str, info: dict[str, str], features_out: str | None, dataset: bool
) -> Output:
    """A dataset folder when asked (Dask, `out` not ending .parquet), else one sorted file."""
    if dataset:
        assert isinstance(out, str)
        return DatasetOutput(out, info, features_out)
    return SortedOutput(out, fmt, info, features_out)


class _Features:
    """Feature batches as they come back; one sorted Parquet file at the end."""

    def __init__(self, features_out: str | None) -> None:
        self.features_out = features_out
        self.parts: list[pa.Table] = []

    def add(self, features: pa.Table | None) -> None:
        if features is not None:
            self.parts.append(features)

    def write(self) -> None:
        if not (self.features_out and self.parts):
            return
        table = pa.concat_tables(self.parts, promote_options="default")
        if "path" in table.column_names:
            table = table.sort_by([("path", "ascending")])
        tmp = f"{self.features_out}.tmp-{os.getpid()}"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, self.features_out)


class SortedOutput:
    """One file sorted by path, in any format (see the module doc)."""

    def __init__(
        self, out: str | IO[str], fmt: str, info: dict[str, str], features_out: str | None
    ) -> None:
        self.out, self.fmt, self.info = out, fmt, info
        self.features = _Features(features_out)
        self.carried: list[Mapping[str, Any]] = []
        spool_dir = os.path.dirname(os.path.abspath(out)) if isinstance(out, str) else None
        fd, self.spool_path = tempfile.mkstemp(
            prefix=".fastscan-spool-", suffix=".parquet", dir=spool_dir
        )
        os.close(fd)
        # Small row groups: the spool is re-read and sorted at the end anyway, and each buffered
        # batch pins its whole IPC message (the parent grew 125 -> 425 MB over 42k rows in
        # 7-file chunks when the spool buffered 65,536 rows).
        self.spool = ParquetSink(self.spool_path, info, row_group_rows=SPOOL_ROW_GROUP)

    def carry(self, rows: list[Mapping[str, Any]]) -> None:
        self.carried += rows  # merged with the spool at the end

    def write(self, part: int, tables: list[pa.Table], features: pa.Table | None) -> None:
        for table in tables:
            for batch in table.to_batches():
                self.spool.write(batch)
        self.features.add(features)

    def close(self, complete: bool) -> None:
        """Merge spool + carried rows, sort by path, write `out` atomically."""
        try:
            self.spool.close()
            self.info["complete"] = "true" if complete else "false"
            table = conform_table(read_parquet(self.spool_path))
            if self.carried:
                carried = pa.Table.from_pylist(list(self.carried), schema=RESULT_SCHEMA)
                table = pa.concat_tables([table, carried])
            _write_sorted(table.sort_by([("path", "ascending")]), self.out, self.fmt, self.info)
            self.features.write()
        finally:
            self.discard()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.spool.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.spool_path)


def _write_sorted(table: pa.Table, out: str | IO[str], fmt: str, info: Mapping[str, str]) -> None:
    if isinstance(out, str) and out != "-":
        tmp = f"{out}.tmp-{os.getpid()}"
        try:
            if fmt == "parquet":
                _write_table(open_sink(fmt, path=tmp, metadata=info), table)
            else:
                with open(tmp, "w", encoding="utf-8") as fh:
                    _write_table(open_sink(fmt, stream=fh, metadata=info), table)
            os.replace(tmp, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    else:
        stream = sys.stdout if out == "-" else out
        assert not isinstance(stream, str)
        _write_table(open_sink(fmt, stream=stream, metadata=info), table)


def _write_table(sink: Any, table: pa.Table) -> None:
    try:
        for batch in table.to_batches(max_chunksize=65_536):
            sink.write(batch)
    finally:
        sink.close()


class DatasetOutput:
    """A Parquet dataset folder, one part per chunk (see the module doc)."""

    def __init__(self, out: str, info: dict[str, str], features_out: str | None = None) -> None:
        if os.path.isfile(out) or (
            os.path.isdir(out)
            and os.listdir(out)
            and not os.path.exists(os.path.join(out, "_common_metadata"))
        ):
            raise ValueError(f"{out} exists and is not a fastscan Parquet dataset")
        self.out, self.info = out, info
        self.features = _Features(features_out)
        self.tmp = f"{out.rstrip('/')}.tmp-{os.getpid()}"
        os.makedirs(self.tmp, exist_ok=True)
        self._collector: list[Any] = []

    def _schema(self) -> pa.Schema:
        return RESULT_SCHEMA.with_metadata(file_metadata(self.info))

    def carry(self, rows: list[Mapping[str, Any]]) -> None:
        if rows:
            table = pa.Table.from_pylist(list(rows), schema=RESULT_SCHEMA)
            self.write(CARRIED_PART, [table], None)

    def write(self, part: int, tables: list[pa.Table], features: pa.Table | None) -> None:
        name = f"part-{part:06d}.parquet"
        table = conform_table(pa.concat_tables(tables) if len(tables) > 1 else tables[0])
        table = table.sort_by([("path", "ascending")]).cast(self._schema())
        collector: list[Any] = []
        pq.write_table(
            table, os.path.join(self.tmp, name), compression="zstd", metadata_collector=collector
        )
        for md in collector:
            md.set_file_path(name)
        self._collector.extend(collector)
        self.features.add(features)

    def close(self, complete: bool) -> None:
        try:
            self.info["complete"] = "true" if complete else "false"
            # the folder's metadata (what `report` and `--since` read) knows how the run ended
            schema = self._schema()
            pq.write_metadata(schema, os.path.join(self.tmp, "_common_metadata"))
            pq.write_metadata(
                schema, os.path.join(self.tmp, "_metadata"), metadata_collector=self._collector
            )
            old = None
            if os.path.exists(self.out):
                old = f"{self.out.rstrip('/')}.old-{os.getpid()}"
                os.replace(self.out, old)
            os.replace(self.tmp, self.out)
            if old:
                shutil.rmtree(old, ignore_errors=True)
            self.features.write()
        finally:
            self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
