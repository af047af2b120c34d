"""Run the fuzz campaign: build seeds, fuzz every (stage, seed group) pair, collect findings.

    python fuzz/run.py --minutes 30              # long run, time split evenly over the runs
    python fuzz/run.py --runs 3000               # bounded executions per run (CI smoke)
    python fuzz/run.py --only containers-zip --minutes 5 --work out/fuzz

Each run is a separate `harness.py` process (libFuzzer flags: -timeout, -rss_limit_mb,
-max_len, -artifact_prefix). Corpora grow under WORK/corpus/<run>/ and are reused by later
campaigns; crash/timeout/oom reproducers land in WORK/artifacts/. Turn each into a tiny file under
tests/regressions/ (see README there). Exit status 1 when any run found something.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# (run name, target, seed groups)
RUNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tokenizer", "tokenizer", ("pickles",)),
    ("containers-zip", "containers", ("zip",)),
    ("containers-tar", "containers", ("tar",)),
    ("containers-legacy", "containers", ("legacy",)),
    ("containers-joblib", "containers", ("joblib",)),
    ("containers-npy", "containers", ("npy",)),
    ("containers-compressed", "containers", ("compressed",)),
    ("containers-7z", "containers", ("7z",)),
    ("scan", "scan", ("pickles", "zip", "legacy", "joblib")),
)
_STATS = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)")
_DONE = re.compile(r"Done (\d+) (?:runs )?in (\d+) second")


def _prepare(work: Path, run: str, groups: tuple[str, ...], seeds: Path) -> Path:
    corpus = work / "corpus" / run
    if not corpus.exists():
        corpus.mkdir(parents=True)
        for group in groups:
            for seed in sorted((seeds / group).iterdir()):
                shutil.copy(seed, corpus / f"{group}-{seed.name}")
    return corpus


def fuzz_one(
    run: str, target: str, corpus: Path, artifacts: Path, *, runs: int, seconds: int
) -> dict[str, object]:
    artifacts.mkdir(parents=True, exist_ok=True)
    budget = [f"-atheris_runs={runs}"] if runs else [f"-max_total_time={seconds}"]
    command = [
        sys.executable, str(HERE / "harness.py"), target, *budget,
        "-timeout=10", "-rss_limit_mb=3072", "-max_len=262144", "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/{run}-", str(corpus),
    ]  # fmt: skip
    before = {p.name for p in artifacts.glob(f"{run}-*")}
    start = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    log = proc.stdout + proc.stderr
    cov = _STATS.findall(log)
    done = _DONE.findall(log)
    found = sorted(p.name for p in artifacts.glob(f"{run}-*") if p.name not in before)
    return {
        "run": run,
        "returncode": proc.returncode,
        "executions": int(done[-1][0]) if done else None,
        "seconds": round(wall, 1),
        "cov": int(cov[-1][0]) if cov else None,
        "ft": int(cov[-1][1]) if cov else None,
        "corpus": int(cov[-1][2]) if cov else None,
        "artifacts": found,
        "tail": "" if proc.returncode == 0 else log[-3000:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=0, help="total time over all runs")
    parser.add_argument("--runs", type=int, default=0, help="executions per run (instead)")
    parser.add_argument("--only", action="append", default=[], help="run name (repeatable)")
    parser.add_argument("--work", type=Path, default=Path("out/fuzz"))
    parser.add_argument("--json", action="store_true", help="print one JSON summary")
    args = parser.parse_args(argv)
    if not (args.minutes or args.runs):
        args.runs = 3000
    selected = [r for r in RUNS if not args.only or r[0] in args.only]
    if not selected:
        parser.error(f"--only must name one of {[r[0] for r in RUNS]}")
    seeds = args.work / "seeds"
    if not seeds.exists():
        from seeds import build  # heavy (torch, sklearn): only when needed

        build(seeds)
    seconds = max(10, int(args.minutes * 60 / len(selected))) if args.minutes else 0
    results = []
    for run, target, groups in selected:
        corpus = _prepare(args.work, run, groups, seeds)
        result = fuzz_one(
            run, target, corpus, args.work / "artifacts", runs=args.runs, seconds=seconds
        )
        results.append(result)
        if not args.json:
            print(
                f"{run:24s} rc={result['returncode']} execs={result['executions']} "
                f"cov={result['cov']} ft={result['ft']} corpus={result['corpus']} "
                f"{result['seconds']}s artifacts={result['artifacts']}",
                flush=True,
            )
    if args.json:
        print(json.dumps(results))
    return 1 if any(r["returncode"] or r["artifacts"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
