"""Scan a whole tree: one plan, one output, and an engine that runs the chunks.

A run (`run`, or `run_bulk` with keyword options) is the same for every engine:
- `bulkoptions.BulkOptions` says what is asked; `bulkplan` lists the files, keeps what
  `resume`/`since` carry over and cuts chunks;
- an engine runs the chunks: `pool.PoolRunner` (a local process pool, `engine="local"`) or
  `scale.dask_backend.DaskRunner` (`engine="dask"`); each hands back one Arrow batch per chunk;
- `bulkout` writes what comes back as it comes (a spool, or a dataset part), and at the end the
  sorted output with the run's metadata; a signal stops the run and leaves a valid output
  marked incomplete (`--resume` finishes it).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import pyarrow as pa

from .bulkoptions import BulkOptions
from .bulkout import open_output
from .bulkplan import (
    make_chunks,
    make_plan,
    output_format,
    resolve_workers,
    storage_options,
    validate,
)
from .exitcodes import outcomes
from .pool import OnResults, PoolRunner, Stop
from .progress import Progress, make_progress
from .report import BulkSummary
from .sources.hfcache import alias_rows
from .sources.ref import FileRef
from .worker import ScannerFactory


class ChunkRunner(Protocol):
    crashed: int  # files that became error rows because their worker or task died

    def start(self) -> None: ...  # workers start (imports, model) while the parent plans
    def versions(self) -> dict[str, str]: ...  # how the scanner computes rows
    def limits(self) -> dict[str, str]: ...  # per-file limits the engine enforces
    def run(self, chunks: Iterable[list[FileRef]], on_results: OnResults) -> None: ...
    def close(self) -> None: ...


def run_bulk(
    root: str,
    *,
    out: Any,
    progress: bool | Progress | None = None,
    scanner_factory: ScannerFactory | None = None,
    metadata: Mapping[str, str] | None = None,
    on_partition: Callable[[Any, int], None] | None = None,
    **options: Any,
) -> BulkSummary:
    """`run` with the fields of `BulkOptions` as keyword arguments (e.g. `workers=2`)."""
    return run(
        BulkOptions(root, out, **options),
        progress=progress,
        scanner_factory=scanner_factory,
        metadata=metadata,
        on_partition=on_partition,
    )


def run(
    options: BulkOptions,
    *,
    progress: bool | Progress | None = None,
    scanner_factory: ScannerFactory | None = None,
    metadata: Mapping[str, str] | None = None,
    on_partition: Callable[[Any, int], None] | None = None,
) -> BulkSummary:
    """Scan every file under `options.root` and write one row per file to `options.out`.

    `out` is a path (or a text stream for jsonl/sarif/console); with the Dask engine a folder
    (a Parquet dataset) unless it ends `.parquet`. `workers=0` scans in-process.
    `resume=True` keeps rows already in `out` (Parquet) and scans only the missing paths;
    `since=PARQUET` carries forward rows of files whose (path, size, mtime|etag) did not change.
    Both reuse rows only from a file computed like this run (sources.PROVENANCE_KEYS), else
    every file is scanned again and `summary.stale` says why.
    `metadata` None: the scanner's versions (fastscan, rules, index, model, config, limits) go
    into the output. A local `root` that does not exist raises FileNotFoundError.
    `scanner_factory`: a picklable `(**scanner_options) -> scanner` (local engine only);
    `on_partition(client, rows)`: Dask engine only, after each chunk (tests).
    """
    validate(options)
    fmt = output_format(options)
    if options.engine == "dask" and scanner_factory is not None:
        raise ValueError("the dask engine builds the default scanner on its workers")
    started = time.monotonic()
    stop = Stop()
    runner = _runner(options, stop, scanner_factory, on_partition)
    try:
        runner.start()
        versions = dict(metadata) if metadata is not None else runner.versions()
        plan = make_plan(options, {"engine": options.engine, **versions, **runner.limits()})
        dataset = options.engine == "dask" and not str(options.out).endswith(".parquet")
        output = open_output(options.out, fmt, plan.info, options.features_out, dataset)
        tally = _Tally()
        output.carry(plan.carried)
        tally.add_rows(plan.carried)
        reporter = make_progress(progress, len(plan.refs), sum(max(r.size, 0) for r in plan.refs))

        def on_results(results: pa.Table, features: pa.Table | None, part: int) -> None:
            copies = alias_rows(results, plan.aliases) if plan.aliases else None
            tables = [results] if copies is None else [results, copies]
            output.write(part, tables, features)
            flagged, errors = tally.add(tables)
            scanned = sum(max(s or 0, 0) for s in results.column("size").to_pylist())
            tally.bytes += scanned
            reporter.update(results.num_rows, scanned, flagged, errors)

        try:
            with stop:
                chunks = make_chunks(plan.refs, options.chunk_size, options.chunk_bytes)
                runner.run(chunks, on_results)
                output.close(complete=not stop.signal_name)
        except BaseException:
            output.discard()
            raise
        finally:
            reporter.close()
    finally:
        runner.close()  # also when planning failed or was interrupted: no pool left behind

    summary = BulkSummary(
        out=options.out if isinstance(options.out, str) else "<stream>",
        fail_on=options.fail_on,
        strict_errors=options.strict_errors,
        discovered=plan.discovered,
        skipped=plan.skipped,
        resumed=plan.resumed,
        aliased=plan.aliased,
        stale=plan.stale,
        interrupted=stop.signal_name,
        crashed=runner.crashed,
        rows=tally.rows,
        bytes=tally.bytes,
        outcomes=dict(tally.outcomes),
    )
    summary.scanned = tally.rows - len(plan.carried) - plan.aliased
    summary.seconds = time.monotonic() - started
    return summary


def _runner(
    options: BulkOptions,
    stop: Stop,
    factory: ScannerFactory | None,
    on_partition: Callable[[Any, int], None] | None,
) -> ChunkRunner:
    want_features = options.features_out is not None
    if options.engine == "dask":
        from .scale.dask_backend import DaskRunner

        return DaskRunner(
            scheduler=options.scheduler,
            workers=options.workers,
            options=options.scanner_options,
            want_features=want_features,
            stop=stop,
            storage_options=storage_options(options),
            on_partition=on_partition,
        )
    return PoolRunner(
        workers=resolve_workers(options.workers),
        factory=factory,
        options=options.scanner_options,
        timeout=options.timeout,
        memory_mb=options.memory_mb,
        recycle_rss_mb=options.recycle_rss_mb,
        want_features=want_features,
        stop=stop,
        storage_options=storage_options(options),
    )


class _Tally:
    """Rows, (verdict, status) outcomes and bytes scanned, counted as rows are written."""

    def __init__(self) -> None:
        self.rows = 0
        self.bytes = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()

    def add(self, tables: list[pa.Table]) -> tuple[int, int]:
        """Count `tables`; (flagged, errors) of the first (the scanned rows, not their aliases)."""
        counts = []
        for table in tables:
            verdicts = table.column("verdict").to_pylist()
            statuses = table.column("status").to_pylist()
            self.rows += table.num_rows
            self.outcomes.update(outcomes(verdicts, statuses))
            counts.append(
                (sum(v != "clean" for v in verdicts), sum(s == "error" for s in statuses))
            )
        return counts[0]

    def add_rows(self, rows: list[Mapping[str, Any]]) -> None:
        self.rows += len(rows)
        self.outcomes.update(outcomes([r["verdict"] for r in rows], [r["status"] for r in rows]))
