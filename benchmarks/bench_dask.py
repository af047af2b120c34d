"""Throughput of the local process pool against the Dask engine, same worker count, one machine.

Run by hand, not in CI:

    python benchmarks/bench_dask.py --files 600 --workers 2

Builds the bench_bulk mirror (benign files from real libraries, hand-made `echo` payloads that
are never loaded), then scans it with `run_bulk(workers=N)` and with `run_bulk(engine="dask")` on a
LocalCluster of N single-threaded worker processes on 127.0.0.1. Cluster start-up is timed
separately from the scan; every pass is also checked to produce the same rows. Rules only
(`--model none` by default) so the numbers do not depend on a model being shipped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--large-mb", type=int, default=64)
    parser.add_argument("--large-count", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2, help="best of N scans per engine")
    parser.add_argument("--model", default="none")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    import pyarrow.parquet as pq
    from bench_bulk import build_mirror

    from fastscan.bulk import run_bulk
    from fastscan.results import comparable
    from fastscan.scale.dask_backend import connect

    options = {"model": None if args.model == "none" else args.model}
    with tempfile.TemporaryDirectory(prefix="fastscan-bench-dask-") as tmp:
        root = Path(tmp) / "mirror"
        build_mirror(root, args.files, args.large_mb, args.large_count)
        total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(
            f"mirror: {args.files} files (+{args.large_count} x {args.large_mb} MB), "
            f"{total / 1e6:.1f} MB, workers={args.workers}, chunk={args.chunk_size}"
        )

        def report(name: str, seconds: float, rows: int) -> None:
            print(
                f"{name:<34} {seconds:7.2f} s  {rows / seconds:8.1f} files/s  "
                f"{total / 1e6 / seconds:8.1f} MB/s"
            )

        outputs = {}
        best = float("inf")
        for i in range(args.repeat):
            out = Path(tmp) / f"local{i}.parquet"
            t0 = time.perf_counter()
            summary = run_bulk(
                str(root),
                out=str(out),
                workers=args.workers,
                chunk_size=args.chunk_size,
                progress=False,
                scanner_options=options,
            )
            best = min(best, time.perf_counter() - t0)
            outputs["local"] = out
        report(f"local pool ({args.workers} processes)", best, summary.rows)

        t0 = time.perf_counter()
        with connect(None, args.workers) as client:
            started = time.perf_counter() - t0
            address = client.scheduler.address
            best = float("inf")
            for i in range(args.repeat):
                out = Path(tmp) / f"dask{i}.parquet"
                t0 = time.perf_counter()
                summary = run_bulk(
                    str(root),
                    engine="dask",
                    out=str(out),
                    scheduler=address,
                    chunk_size=args.chunk_size,
                    progress=False,
                    scanner_options=options,
                )
                best = min(best, time.perf_counter() - t0)
                outputs["dask"] = out
        print(f"{'LocalCluster start-up':<34} {started:7.2f} s")
        report(f"dask ({args.workers} worker processes)", best, summary.rows)
        same = comparable(pq.read_table(outputs["local"])).equals(
            comparable(pq.read_table(outputs["dask"]))
        )
        print(f"same rows: {same}")


if __name__ == "__main__":  # LocalCluster spawns workers that re-import this file
    main()
