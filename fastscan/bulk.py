"""Scan a whole tree in parallel: paths go to a process pool in chunks, Arrow batches come back.

Shape (see DESIGN "Parallelism"):
- the parent discovers files, skips what `resume`/`since` already covers, and sends chunks of
  `FileRef`s to a forkserver pool, one chunk queued behind each running one; each worker
  (`fastscan.worker`) builds ONE scanner (so the ONNX session loads once) and returns one Arrow
  IPC batch per chunk;
- the parent only writes: batches stream into a spool Parquet as chunks finish, and the final
  output is the spool plus carried-forward rows, sorted by path, written to a temp file and
  atomically renamed (so an interrupted run still leaves a valid, resumable file);
- one bad file never kills the run: a per-file alarm in the worker turns slow files into error rows;
  a heartbeat lets the parent kill a worker stuck in native code; a worker crash re-runs the
  suspect files alone to find the culprit, which becomes an error row;
- a worker that ran out of memory or grew past its recycle mark asks (heartbeat) to retire: the
  parent stops submitting, lets the chunks in flight finish (a chunk the retiring worker refuses
  is re-queued unchanged) and replaces the pool, so memory stays flat and rows do not depend on
  what a worker scanned before.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__, forkserver
from .progress import Progress, make_progress
from .report import BulkSummary
from .results import RESULT_SCHEMA, conform_table, read_parquet, results_to_batch
from .sinks import ParquetSink, open_sink
from .sources import (
    FileRef,
    alias_rows,
    check_root,
    discover,
    is_remote,
    reuse_rows,
    split_hf_aliases,
)
from .verdict import SUSPICIOUS, VERDICTS
from .worker import (
    RECYCLE_RSS_MB,
    SLOT,
    TIMEOUT_ERROR,
    ScannerFactory,
    WorkerConfig,
    WorkerRetired,
    default_scanner_factory,
    error_result,
    from_ipc,
    init_worker,
    ready,
    scan_chunk,
)

DEFAULT_CHUNK_SIZE = 64
DEFAULT_CHUNK_BYTES = 256 << 20  # a chunk also closes at this many bytes (big checkpoints)
DEFAULT_TIMEOUT = 120.0  # seconds per file
DEFAULT_MEMORY_MB = 4096  # heap + private writable mappings per worker (RLIMIT_DATA), see worker
SPOOL_ROW_GROUP = 4096  # rows the parent buffers before writing them to the spool
# Chunks in flight per worker: the running one and the next.
PREFETCH = 2
# Time a stuck worker gets past the per-file alarm before the parent kills it.
HARD_KILL_GRACE = 5.0

CRASH_ERROR = "worker crashed while scanning this file"


def _check_default_scanner() -> None:
    """Fail fast, with the real reason, when the scan stage cannot even be imported."""
    try:
        importlib.import_module("fastscan.scan")
    except ImportError as exc:
        raise BulkError(f"cannot import the scanner: {exc}") from exc


class BulkError(RuntimeError):
    """The run cannot go on (e.g. the scanner cannot be built in the workers)."""


# --- parent side ------------------------------------------------------------------------------


@dataclass
class _Task:
    task_id: int
    refs: list[FileRef]
    solo: bool = False  # suspect of a crash: runs with nothing else in flight


def make_chunks(
    refs: Iterable[FileRef], chunk_size: int, chunk_bytes: int
) -> Iterator[list[FileRef]]:
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


class _Stop:
    """Turns SIGINT/SIGTERM into a flag; a second signal abandons in-flight work."""

    def __init__(self) -> None:
        self.signal_name = ""
        self.count = 0
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _Runner:
    """Owns the pool: submits tasks, watches heartbeats, isolates crashes, writes results."""

    def __init__(
        self,
        *,
        workers: int,
        factory: ScannerFactory,
        options: Mapping[str, Any],
        timeout: float,
        memory_mb: int,
        recycle_rss_mb: int = RECYCLE_RSS_MB,
        want_features: bool,
        on_results: Callable[[pa.Table, pa.Table | None], None],
        stop: _Stop,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.storage_options = dict(storage_options or {})
        self.workers = workers
        self.factory = factory
        self.options = dict(options)
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.recycle_rss_mb = recycle_rss_mb
        self.want_features = want_features
        self.on_results = on_results
        self.stop = stop
        self.crashed = 0
        self.recycled = 0  # pools replaced because a worker asked to retire
        self._retiring = False
        self._next_id = 0
        self._unexplained = 0  # pool failures in a row with no file in hand
        self._pool: ProcessPoolExecutor | None = None
        self._heartbeat: Any = None

    def close(self) -> None:
        self._shutdown(kill=True)

    def warm_up(self) -> None:
        """Spawn the workers now, so they build their scanners while the parent lists files."""
        if self.workers > 0:
            pool = self._pool_or_new()
            for _ in range(self.workers):
                pool.submit(ready)  # a failure surfaces as a broken pool at the first chunk

    def run(self, chunks: Iterable[list[FileRef]]) -> None:
        queue: deque[_Task] = deque(self._task(c) for c in chunks)
        if self.workers <= 0:
            self._run_in_process(queue)
            return
        in_flight: dict[Future[tuple[bytes, bytes | None]], _Task] = {}
        try:
            while (queue and not self.stop.count) or in_flight:
                if self.stop.count > 1:
                    break  # second signal: abandon in-flight work
                self._submit(queue, in_flight)
                done, _ = wait(list(in_flight), timeout=0.2, return_when=FIRST_COMPLETED)
                broken: list[_Task] = []
                cause: BaseException | None = None
                for fut in done:
                    task = in_flight.pop(fut)
                    try:
                        results_ipc, features_ipc = fut.result()
                    except BrokenProcessPool as exc:
                        broken.append(task)
                        cause = exc.__cause__ or exc
                        continue
                    except WorkerRetired:
                        queue.appendleft(task)  # refused before it started: run it again
                        self._retiring = True
                        continue
                    features = from_ipc(features_ipc) if features_ipc else None
                    self.on_results(from_ipc(results_ipc), features)
                    self._unexplained = 0
                if broken and cause is not None:
                    self._handle_crash(broken, in_flight, queue, cause)
                else:
                    self._check_heartbeats(in_flight, queue)
                self._retire_if_asked(in_flight)
        finally:
            self._shutdown(kill=True)

    def _retire_if_asked(self, in_flight: dict[Future[Any], _Task]) -> None:
        """Replace the pool once a worker asked to retire and the chunks in flight are done."""
        hb = self._heartbeat
        if not self._retiring and hb is not None:
            self._retiring = any(hb[base + 4] for base in range(0, len(hb), SLOT))
        if self._retiring and not in_flight:
            if self._pool is not None:
                self.recycled += 1
            self._shutdown(kill=False)

    def _task(self, refs: list[FileRef], solo: bool = False) -> _Task:
        self._next_id += 1
        return _Task(self._next_id, refs, solo)

    def _run_in_process(self, queue: deque[_Task]) -> None:
        # No pool (workers=0): for debugging; no crash isolation, alarms still apply.
        init_worker(
            WorkerConfig(
                self.factory,
                self.options,
                self.timeout,
                0,
                in_pool=False,
                storage_options=self.storage_options,
            )
        )
        while queue and not self.stop.count:
            task = queue.popleft()
            results_ipc, features_ipc = scan_chunk(task.task_id, task.refs, self.want_features)
            self.on_results(from_ipc(results_ipc), from_ipc(features_ipc) if features_ipc else None)

    def _pool_or_new(self) -> ProcessPoolExecutor:
        if self._pool is None:
            forkserver.start()  # with the workers' environment, if not running yet
            ctx = forkserver.context()
            self._heartbeat = ctx.Array("d", SLOT * self.workers, lock=False)
            counter = ctx.Value("i", 0)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=ctx,
                initializer=init_worker,
                initargs=(
                    WorkerConfig(
                        self.factory,
                        self.options,
                        self.timeout,
                        self.memory_mb,
                        recycle_rss_mb=self.recycle_rss_mb,
                        storage_options=self.storage_options,
                    ),
                    self._heartbeat,
                    counter,
                ),
            )
        return self._pool

    def _submit(self, queue: deque[_Task], in_flight: dict[Future[Any], _Task]) -> None:
        if self.stop.count or self._retiring:
            return
        # A crash suspect runs alone, so if the pool breaks again we know whose fault it is.
        if any(t.solo for t in in_flight.values()):
            return
        # One chunk queued behind each running one, so a worker never idles while the parent
        # writes the results it just returned (a not-yet-started chunk is innocent of a crash).
        while queue and len(in_flight) < self.workers * PREFETCH:
            if queue[0].solo and in_flight:
                return
            task = queue.popleft()
            try:
                fut = self._pool_or_new().submit(
                    scan_chunk, task.task_id, task.refs, self.want_features
                )
            except BrokenProcessPool as exc:  # broke with nothing in flight (e.g. warm-up)
                queue.appendleft(task)
                self._pool_failed(exc)
                return
            in_flight[fut] = task
            if task.solo:
                return

    def _running(self) -> dict[int, tuple[int, float]]:
        """task id -> (index of the file in hand, when it started; 0 once the task is done)."""
        out: dict[int, tuple[int, float]] = {}
        hb = self._heartbeat
        if hb is None:
            return out
        for base in range(0, len(hb), SLOT):
            if hb[base] > 0 and hb[base + 1] > 0:
                out[int(hb[base + 1])] = (int(hb[base + 2]), hb[base + 3])
        return out

    def _check_heartbeats(self, in_flight: dict[Future[Any], _Task], queue: deque[_Task]) -> None:
        if self.timeout <= 0 or not in_flight:
            return
        now = time.monotonic()
        running = self._running()
        overdue = [
            task
            for task in in_flight.values()
            if task.task_id in running
            and running[task.task_id][1] > 0
            and now - running[task.task_id][1] > self.timeout + HARD_KILL_GRACE
        ]
        if not overdue:
            return
        # A worker stuck in native code ignores the alarm: kill the pool, blame the stuck file.
        self._shutdown(kill=True)
        for task in overdue:
            index = running[task.task_id][0]
            culprit = task.refs[index]
            self.crashed += 1
            message = TIMEOUT_ERROR.format(self.timeout) + " (worker killed)"
            self._emit_errors([culprit], message)
            rest = task.refs[:index] + task.refs[index + 1 :]
            if rest:
                queue.appendleft(self._task(rest, task.solo))
        for task in in_flight.values():
            if task not in overdue:
                queue.appendleft(task)  # collateral: run again unchanged
        in_flight.clear()

    def _handle_crash(
        self,
        broken: list[_Task],
        in_flight: dict[Future[Any], _Task],
        queue: deque[_Task],
        cause: BaseException,
    ) -> None:
        running = self._running()
        self._shutdown(kill=True)
        # Every task still in flight failed with the pool; collect them all.
        failed = broken + list(in_flight.values())
        in_flight.clear()
        solo_failed = [t for t in failed if t.solo]
        if solo_failed:
            # A suspect running alone broke the pool: it is the culprit.
            for task in solo_failed:
                self.crashed += 1
                self._emit_errors(task.refs, CRASH_ERROR)
            failed = [t for t in failed if not t.solo]
        explained = bool(solo_failed)
        for task in failed:
            index, started = running.get(task.task_id, (-1, 0.0))
            if started <= 0 or not 0 <= index < len(task.refs):
                queue.appendleft(task)  # not started, or already done: innocent
                continue
            explained = True
            rest = task.refs[:index] + task.refs[index + 1 :]
            if rest:
                queue.appendleft(self._task(rest))
            queue.appendleft(self._task([task.refs[index]], solo=True))
        if explained:
            self._unexplained = 0
            return
        self._pool_failed(cause)

    def _pool_failed(self, cause: BaseException) -> None:
        # No file was in hand: the pool itself is failing (e.g. the scanner cannot be built).
        self._shutdown(kill=True)
        self._unexplained += 1
        if self._unexplained >= 3:
            raise BulkError(f"the worker pool keeps failing to start: {cause}") from cause

    def _emit_errors(self, refs: list[FileRef], message: str) -> None:
        batch = results_to_batch(error_result(r, message, SUSPICIOUS) for r in refs)
        self.on_results(pa.Table.from_batches([batch]), None)

    def _shutdown(self, kill: bool) -> None:
        self._retiring, self._heartbeat = False, None  # the next pool starts with fresh slots
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:
            for proc in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)


# --- the whole run ----------------------------------------------------------------------------


def run_bulk(
    root: str,
    *,
    out: str | IO[str],
    fmt: str = "parquet",
    workers: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    follow_symlinks: bool = False,
    since: str | None = None,
    resume: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: int = DEFAULT_MEMORY_MB,
    recycle_rss_mb: int = RECYCLE_RSS_MB,
    features_out: str | None = None,
    progress: bool | Progress | None = None,
    scanner_options: Mapping[str, Any] | None = None,
    scanner_factory: ScannerFactory | None = None,
    metadata: Mapping[str, str] | None = None,
    fail_on: str = SUSPICIOUS,
    strict_errors: bool = False,
) -> BulkSummary:
    """Scan every file under `root` and write one row per file to `out` (sorted by path).

    `out` is a path (or a text stream for jsonl/sarif/console). `workers=0` scans in-process.
    `resume=True` keeps rows already in `out` (Parquet) and scans only the missing paths;
    `since=PARQUET` carries forward rows of files whose (path, size, mtime|etag) did not change.
    Both reuse rows only from a file computed like this run (sources.PROVENANCE_KEYS), else
    every file is scanned again and `summary.stale` says why.
    `metadata` None: the default scanner's versions (fastscan, rules, index, model, config,
    limits)
    go into the output. A local `root` that does not exist raises FileNotFoundError.
    """
    if fail_on not in VERDICTS:
        raise ValueError(f"fail_on must be one of {VERDICTS}")
    if resume and (fmt != "parquet" or not isinstance(out, str)):
        raise ValueError("resume needs --format parquet and an output path")
    workers = _resolve_workers(workers)
    if not is_remote(root):
        check_root(root)
    if scanner_factory is None:
        _check_default_scanner()
    started = time.monotonic()
    summary = BulkSummary(out=out if isinstance(out, str) else "<stream>", fail_on=fail_on)
    summary.strict_errors = strict_errors
    stop = _Stop()
    runner = _Runner(
        workers=workers,
        factory=scanner_factory or default_scanner_factory,
        options=scanner_options or {},
        timeout=timeout,
        memory_mb=memory_mb,
        recycle_rss_mb=recycle_rss_mb,
        want_features=features_out is not None,
        on_results=lambda results, features: None,  # set below, once the spool exists
        stop=stop,
        storage_options=_storage_options(root),
    )
    runner.warm_up()  # workers start (imports, model) while the parent lists files
    try:
        if metadata is None and scanner_factory is None:
            metadata = default_scanner_factory(**(scanner_options or {})).versions

        run = {"timeout": f"{timeout:g}", "memory_mb": str(memory_mb)}
        info = {"version": __version__, **(metadata or {}), **run}
        refs = sorted(discover(root, include, exclude, follow_symlinks), key=lambda r: r.path)
        summary.discovered = len(refs)
        carried: list[Mapping[str, Any]] = []
        if resume and isinstance(out, str):
            refs, carried, stale = reuse_rows(refs, out, info, require_unchanged=False)
            summary.resumed, summary.stale = len(carried), stale
        if since:
            refs, kept, stale = reuse_rows(refs, since, info)
            summary.skipped = len(kept)
            summary.stale = "; ".join(filter(None, (summary.stale, stale)))
            carried += kept
        refs, aliases = split_hf_aliases(refs)  # a cache blob once, rows for every snapshot
        summary.aliased = sum(len(a) for a in aliases.values())

        # what the report shows: where, when, and whether rows were carried from older runs
        info["root"] = root if is_remote(root) else os.path.abspath(root)
        info["started"] = datetime.now(UTC).isoformat(timespec="seconds")
        if since:
            info["since"], info["carried"] = since, str(summary.skipped)
        if summary.resumed:
            info["resumed_rows"] = str(summary.resumed)
        spool_dir = os.path.dirname(os.path.abspath(out)) if isinstance(out, str) else None
        fd, spool_path = tempfile.mkstemp(
            prefix=".fastscan-spool-", suffix=".parquet", dir=spool_dir
        )
        os.close(fd)
        # Small row groups: the spool is re-read and sorted at the end anyway, and each buffered
        # batch pins its whole IPC message (the parent grew 125 -> 425 MB over 42k rows in
        # 7-file chunks when the spool buffered 65,536 rows).
        spool = ParquetSink(spool_path, info, row_group_rows=SPOOL_ROW_GROUP)
        feature_parts: list[pa.Table] = []
        reporter = make_progress(progress, len(refs), sum(max(r.size, 0) for r in refs))
    except BaseException:
        runner.close()  # discovery failed or was interrupted: no pool left behind
        raise

    def on_results(results: pa.Table, features: pa.Table | None) -> None:
        for batch in results.to_batches():
            spool.write(batch)
        copies = alias_rows(results, aliases) if aliases else None
        if copies is not None:
            for batch in copies.to_batches():
                spool.write(batch)
        if features is not None:
            feature_parts.append(features)
        verdicts = results.column("verdict").to_pylist()
        statuses = results.column("status").to_pylist()
        reporter.update(
            results.num_rows,
            sum(max(s, 0) for s in results.column("size").to_pylist()),
            sum(v != "clean" for v in verdicts),
            sum(s == "error" for s in statuses),
        )

    runner.on_results = on_results
    try:
        with stop:
            runner.run(make_chunks(refs, chunk_size, chunk_bytes))
            spool.close()
            summary.interrupted = stop.signal_name
            info["complete"] = "false" if stop.signal_name else "true"
            final = _finalize(
                spool_path=spool_path,
                carried=carried,
                out=out,
                fmt=fmt,
                info=info,
                features_out=features_out,
                feature_parts=feature_parts,
            )
    finally:
        reporter.close()
        with contextlib.suppress(Exception):
            spool.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spool_path)

    summary.scanned = final.num_rows - len(carried) - summary.aliased
    summary.rows = final.num_rows
    summary.crashed = runner.crashed
    summary.count(final.column("verdict").to_pylist(), final.column("status").to_pylist())
    carried_paths = {row["path"] for row in carried}
    carried_paths.update(ref.path for refs_ in aliases.values() for ref in refs_)
    summary.bytes = sum(
        max(s or 0, 0)
        for p, s in zip(
            final.column("path").to_pylist(), final.column("size").to_pylist(), strict=True
        )
        if p not in carried_paths
    )
    summary.seconds = time.monotonic() - started
    return summary


def _storage_options(root: str) -> dict[str, Any]:
    """Endpoint and options resolved in the parent (pool workers may have an older env)."""
    if not is_remote(root):
        return {}
    from .remote import storage_options_from_env

    return storage_options_from_env(root.split("://", 1)[0])


def _resolve_workers(workers: int | None) -> int:
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


def _finalize(
    *,
    spool_path: str,
    carried: list[Mapping[str, Any]],
    out: str | IO[str],
    fmt: str,
    info: Mapping[str, str],
    features_out: str | None,
    feature_parts: list[pa.Table],
) -> pa.Table:
    """Merge spool + carried rows, sort by path, write `out` atomically; return the final table."""
    table = conform_table(read_parquet(spool_path))
    if carried:
        table = pa.concat_tables([table, pa.Table.from_pylist(list(carried), schema=RESULT_SCHEMA)])
    table = table.sort_by([("path", "ascending")])
    if isinstance(out, str) and out != "-":
        tmp = f"{out}.tmp-{os.getpid()}"
        try:
            if fmt == "parquet":
                sink = open_sink(fmt, path=tmp, metadata=info)
                _write_table(sink, table)
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
    if features_out and feature_parts:
        features = pa.concat_tables(feature_parts, promote_options="default")
        if "path" in features.column_names:
            features = features.sort_by([("path", "ascending")])
        tmp = f"{features_out}.tmp-{os.getpid()}"
        pq.write_table(features, tmp, compression="zstd")
        os.replace(tmp, features_out)
    return table


def _write_table(sink: Any, table: pa.Table) -> None:
    try:
        for batch in table.to_batches(max_chunksize=65_536):
            sink.write(batch)
    finally:
        sink.close()
