"""The worker side of `fastscan bulk`: what runs inside each pool process (and Dask task).

A worker builds ONE scanner (so the ONNX session loads once), scans the files of a chunk one by
one under a per-file alarm and a memory budget, scores the chunk with one model call, and
returns the rows (and feature batches) as Arrow IPC bytes. A heartbeat slot shared with the
parent says which file is in hand, so the parent can blame the right file when a worker dies,
and whether the worker asks to be retired (it ran out of memory, or its RSS passed the recycle
mark): the parent then replaces the pool between chunks, so no state leaks into later files.
"""

from __future__ import annotations

import gc
import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from .bulkoptions import RECYCLE_RSS_MB
from .results import results_to_batch
from .sources.ref import FileRef, error_row, hf_coordinates, unreadable_result
from .verdict import SUSPICIOUS, FileResult


class BatchScanner(Protocol):
    """What a worker needs of its scanner (`scan.Scanner`; tests pass fakes): every stage but
    the model per file, under the alarm, then one model call per chunk."""

    def prepare(self, ref: FileRef, buffer: Any = None) -> tuple[FileResult, Any]: ...

    def score(
        self, results: list[FileResult], analyses: list[Any], *, with_features: bool = False
    ) -> pa.RecordBatch | None: ...


ScannerFactory = Callable[..., BatchScanner]  # (**scanner_options) -> scanner

TIMEOUT_ERROR = "timeout: scan took longer than {:g}s"
MEMORY_ERROR = "memory budget exceeded ({} MB)"
# Heartbeat slot: pid, task id, file index, start (0: idle), retire (1: replace this worker).
SLOT = 5
GC_GROWTH_MB = 32  # data-size growth since the last full GC pass that triggers another


def default_scanner_factory(**options: Any) -> Any:
    from .scan import Scanner

    return Scanner(**options)


_scanner: Any = None
_timeout = 0.0
_memory_mb = 0
_heartbeat: Any = None  # shared array of SLOT doubles per worker
_slot = -1
_recycle_rss = 0  # bytes; 0: never
_in_pool = False
_retire = False  # set once this pool process should be replaced
_data_floor = 0  # data size (statm) right after the last full GC pass


class WorkerRetired(Exception):
    """A retiring pool worker refuses a chunk; the parent re-queues it, unchanged."""


class _FileTimeout(BaseException):
    """The per-file alarm: a BaseException, so no reader's or the scanner's `except Exception`
    turns it into an anomaly or an "internal error" row and scans on."""


@dataclass(frozen=True)
class WorkerConfig:
    factory: ScannerFactory
    options: Mapping[str, Any]
    timeout: float
    memory_mb: int
    in_pool: bool = True
    recycle_rss_mb: int = RECYCLE_RSS_MB
    storage_options: Mapping[str, Any] | None = (
        None  # for URL sources (see fastscan.sources.stores)
    )


def init_worker(config: WorkerConfig, heartbeat: Any = None, slot_counter: Any = None) -> None:
    global _scanner, _timeout, _memory_mb, _heartbeat, _slot, _recycle_rss, _in_pool
    _in_pool = config.in_pool
    if config.in_pool:
        # Ctrl-C goes to the whole process group; only the parent decides what happens.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _scanner = config.factory(**dict(config.options))
    if config.storage_options:
        from .sources.stores import configure

        configure(config.storage_options)
    _timeout = config.timeout
    _memory_mb = config.memory_mb
    if config.memory_mb > 0 and config.in_pool:
        _limit_data(config.memory_mb)
    if config.in_pool:
        _tune_gc()
        _recycle_rss = config.recycle_rss_mb << 20 if config.recycle_rss_mb > 0 else 0
    if heartbeat is not None:
        with slot_counter.get_lock():
            _slot = slot_counter.value
            slot_counter.value += 1
        if (_slot + 1) * SLOT <= len(heartbeat):
            _heartbeat = heartbeat
            heartbeat[_slot * SLOT] = os.getpid()


def _tune_gc() -> None:
    """A scan allocates ~1M small records per 1,000 checkpoints and keeps few: with the default
    thresholds the collector ran every 700 allocations over the rule tables too (~8% of a
    worker's time). The start-up objects move out of its sight; cycles are still collected."""
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def _statm(field: int) -> int:
    """A /proc/self/statm field in bytes (1: resident, 5: data + stack); 0 where absent."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _limit_data(memory_mb: int) -> None:
    """Bound what a scan allocates, not what it maps: RLIMIT_DATA (Linux >= 4.7) counts the heap
    and private writable mappings (malloc arenas, decompression and archive buffers) but not
    read-only file mappings, so a checkpoint of any size still maps. (RLIMIT_AS did count them:
    a 5 GB file failed to map under the 4 GB default.)"""
    baseline = _statm(5)
    if not baseline:
        return  # no /proc: no budget rather than a wrong one
    limit = baseline + memory_mb * (1 << 20)
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def _beat(task_id: int, index: int, started: float) -> None:
    if _heartbeat is not None:
        base = _slot * SLOT
        _heartbeat[base + 3] = 0.0  # mark idle first so a torn read never looks overdue
        _heartbeat[base + 1] = task_id
        _heartbeat[base + 2] = index
        _heartbeat[base + 3] = started


def _raise_timeout(signum: int, frame: Any) -> None:
    raise _FileTimeout


def error_result(ref: FileRef, message: str, verdict: str = SUSPICIOUS) -> FileResult:
    return error_row(ref, message, verdict=verdict)


def _scan_one(ref: FileRef, scanner: BatchScanner) -> tuple[FileResult, Any]:
    """(result, analysis): the file prepared but not yet scored (analysis None when there is
    nothing to score, e.g. an error row); the chunk scores them together."""
    result, analysis = _scan_one_file(ref, scanner)
    # Where the file sits in a Hugging Face cache/mirror, for local and remote refs alike.
    result.hf_repo, result.hf_revision = hf_coordinates(ref.path)
    return result, analysis


def _scan_one_file(ref: FileRef, scanner: BatchScanner) -> tuple[FileResult, Any]:
    if ref.error:  # discovery could not open it: suspicious, FS316
        return unreadable_result(ref), None
    started = time.perf_counter()
    result, analysis = _attempt(ref, scanner)
    if _ran_out(result):
        # What filled the budget may be garbage that earlier files left: collect and try once
        # more, so the row does not depend on what this process scanned before. Either way
        # this worker is replaced after its chunk.
        _ask_retire()
        gc.collect()
        result, analysis = _attempt(ref, scanner)
    result.scan_seconds = time.perf_counter() - started
    return result, analysis


def _ran_out(result: FileResult) -> bool:
    return bool(result.findings) and bool(_scan_module().out_of_memory(result))


def _attempt(ref: FileRef, scanner: BatchScanner) -> tuple[FileResult, Any]:
    """`scanner.prepare(ref)` (local or remote alike) under the per-file alarm; every row it
    returns carries the ref's identity (path, size, mtime, etag)."""
    use_alarm = _timeout > 0 and threading.current_thread() is threading.main_thread()
    try:
        if use_alarm:
            signal.signal(signal.SIGALRM, _raise_timeout)
            signal.setitimer(signal.ITIMER_REAL, _timeout)
        try:
            return scanner.prepare(ref)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _FileTimeout:
        # A file that stalls the scanner is hostile to scanners: never report it as clean.
        return error_result(ref, TIMEOUT_ERROR.format(_timeout), SUSPICIOUS), None
    except MemoryError:
        detail = MEMORY_ERROR.format(_memory_mb)
        budget = _scan_module().budget_result(ref.path, ref.size, ref.mtime, ref.etag, detail)
        return budget, None
    except Exception as exc:  # the scanner should never raise; one file must not sink a chunk
        return error_result(ref, f"scanner raised {type(exc).__name__}: {exc}"), None


def _scan_module() -> Any:
    from . import scan  # not at import time: bulk checks first that it imports at all

    return scan


def _ask_retire() -> None:
    """After a MemoryError the heap may be fragmented or half-built state may linger: this
    worker finishes its chunk, then the parent replaces it."""
    global _retire
    _retire = _in_pool  # the in-process and Dask scanners have no pool to replace them
    if _retire and _heartbeat is not None:
        _heartbeat[_slot * SLOT + 4] = 1.0


def _check_rss() -> None:
    if _recycle_rss and _statm(1) > _recycle_rss:
        _ask_retire()


def ready() -> int:
    """A no-op task: submitting one per worker spawns the pool (and builds its scanners) early."""
    return os.getpid()


def scan_chunk(
    task_id: int, refs: list[FileRef], want_features: bool
) -> tuple[bytes, bytes | None]:
    """Worker entry point: scan files one by one, return results (and features) as Arrow IPC."""
    if _retire:
        raise WorkerRetired(os.getpid())
    out = scan_batch(None, task_id, refs, want_features)
    _check_rss()
    return out


def scan_batch(
    scanner: Any, task_id: int, refs: list[FileRef], want_features: bool
) -> tuple[bytes, bytes | None]:
    """`scan_chunk` with an explicit scanner (None: this process's pool scanner).

    Other engines (fastscan.scale.dask_backend) run exactly this function.
    """
    scanner = scanner or _scanner
    results: list[FileResult] = []
    analyses: list[Any] = []
    for index, ref in enumerate(refs):
        _beat(task_id, index, time.monotonic())
        result, analysis = _scan_one(ref, scanner)
        results.append(result)
        analyses.append(analysis)
    _beat(task_id, len(refs), 0.0)  # finished: innocent if the pool breaks before it returns
    # one model call per chunk instead of one per file
    features = scanner.score(results, analyses, with_features=want_features)
    features_ipc = None
    if features is not None and features.num_rows:
        features_ipc = to_ipc(pa.Table.from_batches([features]).combine_chunks())
    out = to_ipc(results_to_batch(results)), features_ipc
    _collect_if_grown()
    return out


def _collect_if_grown() -> None:
    """Readers leave reference cycles that own native buffers (py7zr: Folder <-> file list,
    each holding its decompressor, ~19 MB of mostly untouched buffers even for a 300-byte
    archive). The tuned thresholds make a full pass rare, so they piled up: RSS +55 MB per
    434-file pass, and the data size (what RLIMIT_DATA counts, untouched pages included) until
    7z members hit MemoryError. A full pass after every chunk cost ~5% of scan time; one
    whenever the data size grew GC_GROWTH_MB since the last keeps both flat for free."""
    global _data_floor
    if _statm(5) > _data_floor + (GC_GROWTH_MB << 20):
        gc.collect()
        _data_floor = _statm(5)


def to_ipc(data: pa.RecordBatch | pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        writer.write(data)
    return sink.getvalue().to_pybytes()


def from_ipc(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(blob).read_all()
