"""Soak `fastscan bulk` on a large mirror: the same rows for every --workers and chunk size, no
memory-error rows, and a bounded per-process RSS.

Run by hand (the README has the numbers of a full run):

    python benchmarks/soak_bulk.py --work /tmp/soak --scale medium --copies 40 \
        --workers 1 2 --chunk-sizes 64 7

The mirror is `fastscan corpus --seed 0` (benign and malicious checkpoints, archives, 7z,
compressed joblib, torch zips; malicious samples carry a harmless `echo` payload and are never
loaded) hard-linked `--copies` times. Every (workers, chunk size) pair runs `bulk` once, as users
run it (`python -P -m fastscan bulk`), sampling the RSS of every process in its tree. Prints, per
run, files/s and the largest single-process RSS, then the rows (path, verdict, status, rule ids,
findings) that differ from the first run, the rows that carry a memory error, and the largest
RSS; exits 1 when a target is missed (0 differing rows, 0 memory-error rows, RSS < --max-rss-mb).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY_COLUMNS = ("verdict", "status", "rule_ids", "findings")
MEMORY_ERRORS = ("MemoryError", "Cannot allocate memory", "memory budget")


def _fastscan() -> list[str]:
    return [sys.executable, "-P", "-m", "fastscan"]  # -P: never import from the cwd


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(HERE.parent)  # this checkout's fastscan, also when not installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def build_mirror(work: Path, scale: str, copies: int) -> Path:
    """work/corpus (generated once) hard-linked into work/mirror-<scale>-<copies>/copy-NNN."""
    corpus = work / f"corpus-{scale}"
    if not (corpus / "manifest.jsonl").exists():
        subprocess.run(
            [*_fastscan(), "corpus", str(corpus), "--seed", "0", "--scale", scale],
            env=_env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    mirror = work / f"mirror-{scale}-{copies}"
    done = work / f"mirror-{scale}-{copies}.complete"  # outside the mirror: not a scanned file
    if done.exists():
        return mirror
    files = [p for p in sorted(corpus.rglob("*")) if p.is_file() and p.name != "manifest.jsonl"]
    for i in range(copies):
        for src in files:
            dst = mirror / f"copy-{i:03d}" / src.relative_to(corpus)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                os.link(src, dst)
    done.touch()
    return mirror


@dataclass
class Run:
    workers: int
    chunk_size: int
    seconds: float
    max_process_rss: int  # bytes, the largest single process seen
    rows: dict[str, tuple[str, ...]]
    memory_errors: list[str]
    returncode: int

    @property
    def label(self) -> str:
        return f"--workers {self.workers} --chunk-size {self.chunk_size}"


def run_bulk(mirror: Path, out: Path, workers: int, chunk_size: int) -> Run:
    import psutil
    import pyarrow.parquet as pq

    argv = [*_fastscan(), "bulk", str(mirror), "--out", str(out), "--no-progress",
            "--workers", str(workers), "--chunk-size", str(chunk_size)]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in procs:
            try:
                peak = max(peak, p.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    _, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.decode()[-2000:]}")
    table = pq.read_table(out, columns=["path", "error", *KEY_COLUMNS])
    rows: dict[str, tuple[str, ...]] = {}
    memory_errors: list[str] = []
    for row in table.to_pylist():
        key = tuple(json.dumps(row[c], sort_keys=True, default=str) for c in KEY_COLUMNS)
        rows[row["path"]] = key
        text = (row["error"] or "") + json.dumps(row["findings"], default=str)
        if any(m in text for m in MEMORY_ERRORS):
            memory_errors.append(row["path"])
    return Run(workers, chunk_size, seconds, peak, rows, memory_errors, proc.returncode)


def differing(a: Run, b: Run) -> list[str]:
    paths = sorted(set(a.rows) | set(b.rows))
    return [p for p in paths if a.rows.get(p) != b.rows.get(p)]


def soak(
    work: Path, scale: str, copies: int, workers: list[int], chunk_sizes: list[int]
) -> tuple[list[Run], list[str]]:
    """Every (workers, chunk size) run; the paths whose row differs from the first run's."""
    mirror = build_mirror(work, scale, copies)
    runs = []
    for w in workers:
        for c in chunk_sizes:
            out = work / f"soak-w{w}-c{c}.parquet"
            runs.append(run_bulk(mirror, out, w, c))
    diff = sorted({p for r in runs[1:] for p in differing(runs[0], r)})
    return runs, diff


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="corpus, mirror and outputs go here")
    ap.add_argument("--scale", choices=("small", "medium"), default="medium")
    ap.add_argument("--copies", type=int, default=40)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--chunk-sizes", type=int, nargs="+", default=[64, 7])
    ap.add_argument("--max-rss-mb", type=int, default=400)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    runs, diff = soak(args.work, args.scale, args.copies, args.workers, args.chunk_sizes)
    n = len(runs[0].rows)
    print(f"mirror: {n} files ({args.scale} corpus x {args.copies})")
    for r in runs:
        mb = r.max_process_rss / 2**20
        print(f"  {r.label:32} {r.seconds:8.1f} s {n / r.seconds:8.1f} files/s  "
              f"max process RSS {mb:6.0f} MB  exit {r.returncode}")  # fmt: skip
    mem = sorted({p for r in runs for p in r.memory_errors})
    rss = max(r.max_process_rss for r in runs) / 2**20
    print(f"differing rows:        {len(diff)}")
    for p in diff[:20]:
        print(f"  {p}")
    print(f"memory-error rows:     {len(mem)}")
    for p in mem[:20]:
        print(f"  {p}")
    print(f"largest process RSS:   {rss:.0f} MB (target < {args.max_rss_mb})")
    return 0 if not diff and not mem and rss < args.max_rss_mb else 1


if __name__ == "__main__":
    raise SystemExit(main())
