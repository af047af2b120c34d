"""`fastscan bulk --engine dask`: the bulk run's chunks scanned on a Dask distributed cluster.

`DaskRunner` is one more way to run chunks: the plan (files, `--since`, chunks) and the output
(fastscan.bulkout: a dataset folder, or one sorted file when `out` ends `.parquet`) are the local
engine's, composed by `fastscan.bulk.run`.
- One task per chunk: `scan_partition` (in `fastscan.*`, because the scheduler unpickles the task
  graph too) runs `fastscan.worker.scan_batch` with a Scanner cached per worker process and per
  options, so the model loads once per process. Results come back as Arrow IPC as tasks finish.
- A worker that dies is replaced by its nanny and Dask re-runs its tasks elsewhere. A chunk whose
  task keeps failing is split into one task per file, and a file that fails alone becomes an
  error row (fail closed: suspicious), so one poison file never loses the other rows.
- Without a scheduler address a LocalCluster starts with every listener on 127.0.0.1.
- Storage: workers read objects themselves. The client sends its non-secret storage options
  (the S3 endpoint, `FASTSCAN_STORAGE_OPTIONS`); credentials come from each worker's environment.
- A signal (fastscan.bulk's `Stop`) cancels the tasks not yet returned; the output keeps what
  came back and says `complete = false`.
- No per-file alarm here (tasks run in worker threads; signals need the main thread), and no
  RLIMIT_DATA budget or worker recycling: use the workers' `--memory-limit` (the nanny restarts
  a worker past it). Each task ends with a GC pass (`scan_batch`), so memory stays flat.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..bulkplan import BulkError
from ..isolation import protect_children
from ..results import results_to_batch
from ..sources.ref import FileRef
from ..sources.stores import MissingExtra, configure
from ..verdict import SUSPICIOUS
from ..worker import default_scanner_factory, error_result, from_ipc, scan_batch

if TYPE_CHECKING:
    from ..pool import OnResults, Stop

DASK_HINT = "the dask engine needs dask.distributed: pip install 'fastscan[dask]'"
TASK_FAILED = "dask task failed on this file: {}"
POLL = 0.05  # seconds between looks for finished tasks (and for a stop signal)


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


class DaskRunner:
    """Runs a bulk plan's chunks on a Dask cluster (the interface of `fastscan.pool.PoolRunner`).

    `on_partition(client, rows)` is called after each chunk's rows were handed on (tests use it
    to kill a worker mid-run).
    """

    def __init__(
        self,
        *,
        scheduler: str | None,
        workers: int | None,
        options: Mapping[str, Any],
        want_features: bool,
        stop: Stop,
        storage_options: Mapping[str, Any],
        on_partition: Callable[[Any, int], None] | None = None,
    ) -> None:
        self.scheduler, self.workers = scheduler, workers
        self.options = dict(options)
        self.want_features = want_features
        self.stop = stop
        self.storage_options = dict(storage_options)
        self.on_partition = on_partition
        self.crashed = 0  # files whose task failed alone
        self._exit = contextlib.ExitStack()
        self._client: Any = None

    def start(self) -> None:
        self._client = self._exit.enter_context(connect(self.scheduler, self.workers))

    def versions(self) -> dict[str, str]:
        try:
            return dict(self._client.submit(scanner_versions, self.options, pure=False).result())
        except Exception as exc:
            raise BulkError(f"cannot build the scanner on the Dask workers: {exc}") from exc

    def limits(self) -> dict[str, str]:
        return {"timeout": "0", "memory_mb": "0"}  # none enforced here (see the module doc)

    def close(self) -> None:
        self._client = None
        self._exit.close()

    def run(self, chunks: Iterable[list[FileRef]], on_results: OnResults) -> None:
        client = self._client
        run_id = uuid.uuid4().hex[:8]
        next_id = 0
        rows = 0
        tasks: dict[str, tuple[int, list[FileRef]]] = {}

        def submit(chunk: list[FileRef]) -> Any:
            nonlocal next_id
            next_id += 1
            key = f"fastscan-scan-{run_id}-{next_id}"
            tasks[key] = (next_id, chunk)
            args = (next_id, chunk, self.want_features, self.options, self.storage_options)
            return client.submit(scan_partition, *args, key=key, pure=False)

        pending = _distributed().as_completed([submit(chunk) for chunk in chunks])
        try:
            while not pending.is_empty() and not self.stop.count:
                done = pending.next_batch(block=False)
                if not done:
                    time.sleep(POLL)  # a signal only sets a flag (bulk.Stop): look again soon
                    continue
                for future in done:
                    if self.stop.count:
                        break  # the rest of this batch is done, but the run is over
                    task_id, chunk = tasks.pop(future.key)
                    try:
                        results_ipc, features_ipc = future.result()
                    except Exception as exc:
                        if len(chunk) > 1:  # find the culprit: one task per file
                            for ref in chunk:
                                pending.add(submit([ref]))
                            continue
                        self.crashed += 1
                        row = error_result(chunk[0], TASK_FAILED.format(exc), SUSPICIOUS)
                        results = pa.Table.from_batches([results_to_batch([row])])
                        on_results(results, None, task_id)
                    else:
                        features = from_ipc(features_ipc) if features_ipc else None
                        results = from_ipc(results_ipc)
                        on_results(results, features, task_id)
                    rows += results.num_rows
                    if self.on_partition is not None:
                        self.on_partition(client, rows)
        finally:
            if not pending.is_empty():  # stopped or failed: nothing left running for us
                client.cancel(list(pending.futures))
