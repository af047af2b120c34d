"""The local engine of `fastscan bulk`: a forkserver process pool that scans chunks of refs.

Shape (see DESIGN "Parallelism"): chunks of `FileRef`s go to the pool, one chunk queued behind
each running one; each worker (`fastscan.worker`) builds ONE scanner (so the ONNX session loads
once) and returns one Arrow IPC batch per chunk, handed to the run's `on_results` as it comes.
- one bad file never kills the run: a per-file alarm in the worker turns slow files into error
  rows; a heartbeat lets the parent kill a worker stuck in native code; a worker crash re-runs
  the suspect files alone to find the culprit, which becomes an error row;
- a worker that ran out of memory or grew past its recycle mark asks (heartbeat) to retire: the
  parent stops submitting, lets the chunks in flight finish (a chunk the retiring worker refuses
  is re-queued unchanged) and replaces the pool, so memory stays flat and rows do not depend on
  what a worker scanned before.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from . import forkserver
from .bulkoptions import RECYCLE_RSS_MB
from .bulkplan import BulkError
from .results import results_to_batch
from .sources.ref import FileRef
from .verdict import SUSPICIOUS
from .worker import (
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

# (rows, features or None, chunk id): what a runner hands back for each chunk it scanned
OnResults = Callable[[pa.Table, pa.Table | None, int], None]

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


def _not_running(results: pa.Table, features: pa.Table | None, part: int) -> None:
    raise AssertionError("results arrived outside run()")


@dataclass
class _Task:
    task_id: int
    refs: list[FileRef]
    solo: bool = False  # suspect of a crash: runs with nothing else in flight


class Stop:
    """Turns SIGINT/SIGTERM into a flag; a second signal abandons in-flight work."""

    def __init__(self) -> None:
        self.signal_name = ""
        self.count = 0
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class PoolRunner:
    """Owns the pool: submits tasks, watches heartbeats, isolates crashes, hands results on."""

    def __init__(
        self,
        *,
        workers: int,
        factory: ScannerFactory | None,
        options: Mapping[str, Any],
        timeout: float,
        memory_mb: int,
        recycle_rss_mb: int = RECYCLE_RSS_MB,
        want_features: bool,
        stop: Stop,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.storage_options = dict(storage_options or {})
        self.workers = workers
        self.custom_factory = factory is not None
        self.factory = factory or default_scanner_factory
        self.options = dict(options)
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.recycle_rss_mb = recycle_rss_mb
        self.want_features = want_features
        self.on_results: OnResults = _not_running
        self.stop = stop
        self.crashed = 0
        self.recycled = 0  # pools replaced because a worker asked to retire
        self._retiring = False
        self._next_id = 0
        self._unexplained = 0  # pool failures in a row with no file in hand
        self._pool: ProcessPoolExecutor | None = None
        self._heartbeat: Any = None

    def start(self) -> None:
        """Spawn the workers now, so they build their scanners while the parent lists files."""
        if not self.custom_factory:
            _check_default_scanner()
        if self.workers > 0:
            pool = self._pool_or_new()
            for _ in range(self.workers):
                pool.submit(ready)  # a failure surfaces as a broken pool at the first chunk

    def versions(self) -> dict[str, str]:
        """How the default scanner computes rows (built here, while the workers build theirs)."""
        if self.custom_factory:
            return {}
        return dict(default_scanner_factory(**self.options).versions)

    def limits(self) -> dict[str, str]:
        return {"timeout": f"{self.timeout:g}", "memory_mb": str(self.memory_mb)}

    def close(self) -> None:
        self._shutdown(kill=True)

    def run(self, chunks: Iterable[list[FileRef]], on_results: OnResults) -> None:
        """Scan `chunks`; `on_results(rows, features, chunk id)` as each one comes back."""
        self.on_results = on_results
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
                    self.on_results(from_ipc(results_ipc), features, task.task_id)
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
            features = from_ipc(features_ipc) if features_ipc else None
            self.on_results(from_ipc(results_ipc), features, task.task_id)

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
            self._emit_errors(task.task_id, [culprit], message)
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
                self._emit_errors(task.task_id, task.refs, CRASH_ERROR)
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

    def _emit_errors(self, task_id: int, refs: list[FileRef], message: str) -> None:
        batch = results_to_batch(error_result(r, message, SUSPICIOUS) for r in refs)
        self.on_results(pa.Table.from_batches([batch]), None, task_id)

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
