"""Scan throughput with the model on vs rules only (issue #4 target: within 20%).

    python benchmarks/bench_model.py [CORPUS] [--repeat 3] [--chunk 256] [--features-from FILE]

CORPUS is a folder (its manifest.jsonl, or every file under it); without one, a `small` corpus
is generated into a temporary folder. Files are read once first so the page cache is warm.
Three ways to scan every file, one process, best of `--repeat` (CPU seconds, so the other load
on a shared machine counts less):
- rules only:      Scanner(model=None).scan_path, one file at a time
- model, per file: Scanner(model=default).scan_path (what `fastscan bulk` does per file)
- model, batched:  Scanner(model=default).scan_refs on chunks (one ONNX call per chunk)
It also prints the cost of each model stage per file: features.extract (mean and percentiles:
a few string-heavy files, e.g. tokenizer vocabularies, dominate the tail) and the ONNX call.

`--features-from FILE` swaps in the `extract` of another copy of fastscan/features.py (e.g. the
version before an optimisation) for a before/after comparison; it is loaded as a submodule of
fastscan so its relative imports resolve.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastscan import features, model
from fastscan.scan import Scanner


def corpus_files(root: Path) -> list[str]:
    manifest = root / "manifest.jsonl"
    if manifest.is_file():
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        return [str(root / r["path"]) for r in rows]
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def best_cpu(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best CPU seconds, wall seconds of that run)."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        run = (time.process_time() - c0, time.perf_counter() - w0)
        best = min(best, run)
    return best


def use_features_from(path: str) -> None:
    """Make fastscan.features.extract (looked up at call time by the scanner) the one in `path`."""
    spec = importlib.util.spec_from_file_location("fastscan._bench_features", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if module.FEATURE_NAMES != features.FEATURE_NAMES:
        raise SystemExit(f"{path} has other FEATURE_NAMES than fastscan.features")
    features.extract = module.extract


def extract_percentiles(analyses: list, repeat: int) -> tuple[float, float, float]:
    """(median, p99, max) microseconds of one features.extract call, best of `repeat` per file."""
    times = []
    for a in analyses:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            features.extract(a.container, a.streams)
            best = min(best, time.perf_counter_ns() - t0)
        times.append(best / 1e3)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(0.99 * len(times)))], times[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--features-from", metavar="FILE", help="another features.py to time")
    args = parser.parse_args()
    if args.features_from:
        use_features_from(args.features_from)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.corpus) if args.corpus else Path(tmp)
        if not args.corpus:
            from fastscan.train.corpus import generate

            generate(root, seed=0, scale="small")
        files = corpus_files(root)
        total_bytes = sum(Path(f).stat().st_size for f in files)
        for f in files:  # warm the page cache
            Path(f).read_bytes()

        rules_only = Scanner(model=None)
        with_model = Scanner(model=model.default_model())

        def per_file(scanner: Scanner) -> Callable[[], object]:
            return lambda: [scanner.scan_path(f) for f in files]

        def batched(scanner: Scanner) -> Callable[[], object]:
            return lambda: [
                scanner.scan_refs(files[i : i + args.chunk])
                for i in range(0, len(files), args.chunk)
            ]

        runs = {
            "rules only": best_cpu(per_file(rules_only), args.repeat),
            "model, per file": best_cpu(per_file(with_model), args.repeat),
            f"rules only, batched ({args.chunk})": best_cpu(batched(rules_only), args.repeat),
            f"model, batched ({args.chunk})": best_cpu(batched(with_model), args.repeat),
        }
        analyses = [rules_only.analyse(f, f) for f in files]
        extract_cpu, _ = best_cpu(
            lambda: [features.extract(a.container, a.streams) for a in analyses], args.repeat
        )
        extract_p50, extract_p99, extract_max = extract_percentiles(analyses, args.repeat)
        matrix = features.to_matrix([features.extract(a.container, a.streams) for a in analyses])
        m = model.default_model()
        onnx_one, _ = best_cpu(
            lambda: [m.score_matrix(matrix[i : i + 1]) for i in range(len(files))], args.repeat
        )
        onnx_batch, _ = best_cpu(lambda: m.score_matrix(matrix), args.repeat)

    print(f"{len(files)} files, {total_bytes / 1e6:.1f} MB, best of {args.repeat} (CPU seconds)")
    base = runs["rules only"][0]
    print(f"{'mode':<28} {'cpu s':>8} {'wall s':>8} {'files/s':>9} {'MB/s':>8} {'vs rules':>9}")
    for name, (cpu, wall) in runs.items():
        print(
            f"{name:<28} {cpu:>8.3f} {wall:>8.3f} {len(files) / cpu:>9.0f} "
            f"{total_bytes / 1e6 / cpu:>8.1f} {100 * (cpu / base - 1):>+8.1f}%"
        )
    n = len(files)
    print(
        f"per file: features.extract {1e6 * extract_cpu / n:.0f} us, "
        f"ONNX one row {1e6 * onnx_one / n:.0f} us, ONNX batched {1e6 * onnx_batch / n:.1f} us"
    )
    print(
        f"features.extract per call (wall, best of {args.repeat}): median {extract_p50:.0f} us, "
        f"p99 {extract_p99:.0f} us, max {extract_max:.0f} us"
    )
    # like for like: per file against per file, batched (what `fastscan bulk` does) against batched
    per_file_cost = runs["model, per file"][0] / base - 1
    batched_cost = (
        runs[f"model, batched ({args.chunk})"][0] / runs[f"rules only, batched ({args.chunk})"][0]
        - 1
    )
    worst = max(per_file_cost, batched_cost)
    best = min(per_file_cost, batched_cost)
    print(f"target (model within 20% of rules only): best mode {100 * best:+.1f}%, "
          f"worst mode {100 * worst:+.1f}% -> {'PASS' if best <= 0.20 else 'FAIL'}")  # fmt: skip


if __name__ == "__main__":
    main()
