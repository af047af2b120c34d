"""`fastscan bulk --engine dask`: the bulk batch function on a Dask distributed cluster.

- The client lists the files (local tree or any fsspec URL), applies `--since`, cuts sorted
  chunks and submits one task per chunk. The task is `scan_partition` (in `fastscan.*`, because
  the scheduler unpickles the task graph too); it runs `fastscan.worker.scan_batch` with a Scanner
  cached per worker process and per options, so the model loads once per process.
- Results come back as Arrow IPC as tasks finish (`distributed.as_completed`) and are written by
  the client: a Parquet dataset (one `part-NNNNNN.parquet` per chunk, rows sorted by path inside
  each, plus `_common_metadata` and `_metadata`), or one sorted file when `out` ends `.parquet`.
- A worker that dies is replaced by its nanny and Dask re-runs its tasks elsewhere. A chunk whose
  task keeps failing is split into one task per file, and a file that fails alone becomes an
  error row (fail closed: suspicious), so one poison file never loses the other rows.
- Without a scheduler address a LocalCluster starts with every listener on 127.0.0.1.
- Storage: workers read objects themselves. The client sends its non-secret storage options
  (the S3 endpoint, `FASTSCAN_STORAGE_OPTIONS`); credentials come from each worker's environment.
- No per-file alarm here (tasks run in worker threads; signals need the main thread), and no
  RLIMIT_DATA budget or worker recycling: use the workers' `--memory-limit` (the nanny restarts
  a worker past it). Each task ends with a GC pass (`scan_batch`), so memory stays flat.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..bulk import DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_SIZE, BulkError, make_chunks
from ..exitcodes import outcomes
from ..isolation import protect_children
from ..progress import Progress, make_progress
from ..remote import MissingExtra, configure, storage_options_from_env
from ..report import BulkSummary
from ..results import RESULT_SCHEMA, conform_table, file_metadata, results_to_batch
from ..sinks import ParquetSink
from ..sources import (
    FileRef,
    alias_rows,
    check_root,
    discover,
    is_remote,
    reuse_rows,
    split_hf_aliases,
)
from ..verdict import SUSPICIOUS, VERDICTS
from ..worker import default_scanner_factory, error_result, from_ipc, scan_batch, to_ipc

DASK_HINT = "the dask engine needs dask.distributed: pip install 'fastscan[dask]'"
TASK_FAILED = "dask task failed on this file: {}"
CARRIED_PART = "part-000000.parquet"  # rows carried forward by --since (chunks count from 1)


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise MissingExtra(DASK_HINT) from exc
    return distributed


# --- worker side ------------------------------------------------------------------------------

_scanners: dict[str, Any] = {}
_scanners_lock = threading.Lock()


def _options_key(options: Mapping[str, Any]) -> str:
    return json.dumps(sorted(options.items()), default=repr)


def worker_scanner(options: Mapping[str, Any]) -> Any:
    """This process's Scanner for `options`, built on first use (model loaded once)."""
    key = _options_key(options)
    with _scanners_lock:
        scanner = _scanners.get(key)
        if scanner is None:
            scanner = _scanners[key] = default_scanner_factory(**dict(options))
        return scanner


def scan_partition(
    task_id: int,
    refs: list[FileRef],
    want_features: bool,
    options: Mapping[str, Any],
    storage_options: Mapping[str, Any],
) -> tuple[bytes, bytes | None]:
    """The Dask task: the same batch function the local pool runs, on one chunk."""
    configure(storage_options)
    return scan_batch(worker_scanner(options), task_id, refs, want_features)


def scanner_versions(options: Mapping[str, Any]) -> dict[str, str]:
    """Provenance from a worker (also proves the scanner can be built there)."""
    return dict(worker_scanner(options).versions)


# --- client side ------------------------------------------------------------------------------


@contextlib.contextmanager
def connect(
    scheduler: str | None, workers: int | None = None, local_directory: str | None = None
) -> Iterator[Any]:
    """A Client for `scheduler`, or for a LocalCluster on 127.0.0.1 when it is None."""
    protect_children()  # the LocalCluster's processes: no cwd on their sys.path, no telemetry
    distributed = _distributed()
    if scheduler:
        client = distributed.Client(scheduler, timeout="30s")
        try:
            yield client
        finally:
            client.close()
        return
    import logging

    cluster = distributed.LocalCluster(
        n_workers=max(1, workers or os.cpu_count() or 1),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        # the default binds 0.0.0.0:8787 (docs/design.md#dask-loopback)
        dashboard_address="127.0.0.1:0",
        local_directory=local_directory or tempfile.gettempdir(),
        silence_logs=logging.ERROR,
    )
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


class _DatasetWriter:
    """Partitions into a temp folder next to `out`, then swapped in whole on close."""

    def __init__(self, out: str, info: Mapping[str, str]) -> None:
        if os.path.isfile(out) or (
            os.path.isdir(out)
            and os.listdir(out)
            and not os.path.exists(os.path.join(out, "_common_metadata"))
        ):
            raise ValueError(f"{out} exists and is not a fastscan Parquet dataset")
        self.out = out
        self.schema = RESULT_SCHEMA.with_metadata(file_metadata(info))
        self.tmp = f"{out.rstrip('/')}.tmp-{os.getpid()}"
        os.makedirs(self.tmp, exist_ok=True)
        self._collector: list[Any] = []

    def write(self, name: str, table: pa.Table) -> None:
        table = table.sort_by([("path", "ascending")]).cast(self.schema)
        collector: list[Any] = []
        pq.write_table(
            table, os.path.join(self.tmp, name), compression="zstd", metadata_collector=collector
        )
        for md in collector:
            md.set_file_path(name)
        self._collector.extend(collector)

    def close(self) -> None:
        pq.write_metadata(self.schema, os.path.join(self.tmp, "_common_metadata"))
        pq.write_metadata(
            self.schema, os.path.join(self.tmp, "_metadata"), metadata_collector=self._collector
        )
        old = None
        if os.path.exists(self.out):
            old = f"{self.out.rstrip('/')}.old-{os.getpid()}"
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class _FileWriter:
    """One sorted Parquet file, written atomically at the end."""

    def __init__(self, out: str, info: Mapping[str, str]) -> None:
        self.out = out
        self.info = dict(info)
        self._parts: list[pa.Table] = []

    def write(self, name: str, table: pa.Table) -> None:
        self._parts.append(table)

    def close(self) -> None:
        table = (
            pa.concat_tables(self._parts)
            if self._parts
            else pa.Table.from_batches([results_to_batch([])])
        )
        table = table.sort_by([("path", "ascending")])
        tmp = f"{self.out}.tmp-{os.getpid()}"
        sink = ParquetSink(tmp, self.info)
        try:
            for batch in table.to_batches(max_chunksize=65_536):
                sink.write(batch)
        finally:
            sink.close()
        os.replace(tmp, self.out)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{self.out}.tmp-{os.getpid()}")


def run_dask(args: argparse.Namespace, scanner_options: Mapping[str, Any]) -> BulkSummary:
    """The CLI's `bulk --engine dask` (see `scan_with_dask`)."""
    if args.resume:
        raise ValueError("--resume is not supported with --engine dask; use --since OUT")
    if args.format != "parquet":
        raise ValueError("--engine dask writes Parquet only (--format parquet)")
    return scan_with_dask(
        args.root,
        out=args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        chunk_size=args.chunk_size,
        include=args.include,
        exclude=args.exclude,
        follow_symlinks=args.follow_symlinks,
        since=args.since,
        features_out=args.features,
        progress=False if args.no_progress else None,
        scanner_options=scanner_options,
        fail_on=args.fail_on,
        strict_errors=args.strict_errors,
    )


def scan_with_dask(
    root: str,
    *,
    out: str,
    scheduler: str | None = None,
    workers: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    follow_symlinks: bool = False,
    since: str | None = None,
    features_out: str | None = None,
    progress: bool | Progress | None = None,
    scanner_options: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    fail_on: str = SUSPICIOUS,
    strict_errors: bool = False,
    on_partition: Callable[[Any, int], None] | None = None,
) -> BulkSummary:
    """Scan `root` on a Dask cluster into `out` (a dataset folder, or one `.parquet` file).

    `on_partition(client, rows)` is called after each partition is written (tests use it to
    kill a worker mid-run).
    """
    if fail_on not in VERDICTS:
        raise ValueError(f"fail_on must be one of {VERDICTS}")
    started = time.monotonic()
    options = dict(scanner_options or {})
    remote_opts = dict(storage_options or {})
    if is_remote(root):
        remote_opts = {**storage_options_from_env(root.split("://", 1)[0]), **remote_opts}
    summary = BulkSummary(out=out, fail_on=fail_on, strict_errors=strict_errors)
    if not is_remote(root):
        check_root(root)
    refs = sorted(discover(root, include, exclude, follow_symlinks), key=lambda r: r.path)
    summary.discovered = len(refs)

    with connect(scheduler, workers) as client:
        try:
            versions = client.submit(scanner_versions, options, pure=False).result()
        except Exception as exc:
            raise BulkError(f"cannot build the scanner on the Dask workers: {exc}") from exc
        info = {"version": __version__, "engine": "dask", **versions}
        carried: list[Mapping[str, Any]] = []
        if since:  # only rows computed like this run carry over (sources.PROVENANCE_KEYS)
            refs, carried, summary.stale = reuse_rows(refs, since, info)
            summary.skipped = len(carried)
        refs, aliases = split_hf_aliases(refs)  # a cache blob once, rows for every snapshot
        summary.aliased = sum(len(a) for a in aliases.values())
        single = out.endswith(".parquet")
        writer: _DatasetWriter | _FileWriter = (
            _FileWriter(out, info) if single else _DatasetWriter(out, info)
        )
        counts = _Counts()
        features: list[pa.Table] = []
        try:
            if carried:
                table = pa.Table.from_pylist(list(carried), schema=RESULT_SCHEMA)
                writer.write(CARRIED_PART, table)
                counts.add(table)
            _run_tasks(
                client,
                refs,
                chunk_size=chunk_size,
                chunk_bytes=chunk_bytes,
                want_features=features_out is not None,
                options=options,
                storage_options=remote_opts,
                writer=writer,
                counts=counts,
                features=features,
                aliases=aliases,
                progress=make_progress(progress, len(refs), sum(max(r.size, 0) for r in refs)),
                on_partition=on_partition,
            )
            writer.close()
        except BaseException:
            writer.discard()
            raise
    if features_out and features:
        table = pa.concat_tables(features, promote_options="default")
        if "path" in table.column_names:
            table = table.sort_by([("path", "ascending")])
        tmp = f"{features_out}.tmp-{os.getpid()}"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, features_out)

    summary.rows = counts.rows
    summary.scanned = counts.rows - len(carried) - summary.aliased
    summary.outcomes = dict(counts.outcomes)
    summary.crashed = counts.failed_tasks
    summary.bytes = sum(max(r.size, 0) for r in refs)
    summary.seconds = time.monotonic() - started
    return summary


class _Counts:
    def __init__(self) -> None:
        self.rows = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.failed_tasks = 0

    def add(self, table: pa.Table) -> tuple[int, int]:
        verdicts = table.column("verdict").to_pylist()
        statuses = table.column("status").to_pylist()
        self.rows += table.num_rows
        self.outcomes.update(outcomes(verdicts, statuses))
        return sum(v != "clean" for v in verdicts), sum(s == "error" for s in statuses)


def _run_tasks(
    client: Any,
    refs: list[FileRef],
    *,
    chunk_size: int,
    chunk_bytes: int,
    want_features: bool,
    options: Mapping[str, Any],
    storage_options: Mapping[str, Any],
    writer: _DatasetWriter | _FileWriter,
    counts: _Counts,
    features: list[pa.Table],
    aliases: Mapping[str, list[FileRef]],
    progress: Progress,
    on_partition: Callable[[Any, int], None] | None,
) -> None:
    distributed = _distributed()
    run_id = uuid.uuid4().hex[:8]
    next_id = 0
    tasks: dict[str, tuple[int, list[FileRef]]] = {}

    def submit(chunk: list[FileRef]) -> Any:
        nonlocal next_id
        next_id += 1
        key = f"fastscan-scan-{run_id}-{next_id}"
        tasks[key] = (next_id, chunk)
        return client.submit(
            scan_partition,
            next_id,
            chunk,
            want_features,
            options,
            storage_options,
            key=key,
            pure=False,
        )

    futures = [submit(chunk) for chunk in make_chunks(refs, chunk_size, chunk_bytes)]
    pending = distributed.as_completed(futures)
    try:
        for future in pending:
            task_id, chunk = tasks.pop(future.key)
            try:
                results_ipc, features_ipc = future.result()
            except Exception as exc:
                if len(chunk) > 1:  # find the culprit: one task per file
                    for ref in chunk:
                        pending.add(submit([ref]))
                    continue
                counts.failed_tasks += 1
                row = error_result(chunk[0], TASK_FAILED.format(exc), SUSPICIOUS)
                results_ipc, features_ipc = to_ipc(results_to_batch([row])), None
            table = conform_table(from_ipc(results_ipc))
            copies = alias_rows(table, aliases) if aliases else None
            if copies is not None:
                table = pa.concat_tables([table, copies])
            writer.write(f"part-{task_id:06d}.parquet", table)
            flagged, errors = counts.add(table)
            if features_ipc:
                features.append(from_ipc(features_ipc))
            progress.update(table.num_rows, sum(max(r.size, 0) for r in chunk), flagged, errors)
            if on_partition is not None:
                on_partition(client, counts.rows)
    except BaseException:
        client.cancel(list(pending.futures))
        raise
    finally:
        progress.close()
