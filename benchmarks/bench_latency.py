"""One-file scan latency: median wall time of N runs of `fastscan scan FILE` (issue #14: at most
0.3 s), on a small benign pickle, a small malicious pickle and a small torch zip.

    PYTHONPATH=. python benchmarks/bench_latency.py [--runs 11] [--command "fastscan"]

Each run is a fresh process (imports, rules, index, model, scan, output, interpreter exit), after
one warm-up run per file so the OS file cache and the bytecode caches are warm. The default
command is `python -P -m fastscan` (the code on PYTHONPATH); `--command fastscan` times the
installed console script. Wall time is the issue's measure; the children's CPU time (user + sys)
is printed next to it because it moves far less when other jobs share the cores.

The malicious fixture is a hand-assembled `os.system('echo fastscan-test')` pickle: it is only
scanned, never loaded. The torch zip is skipped when torch is not installed.
"""

from __future__ import annotations

import argparse
import io
import pickle
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_S = 0.3  # issue #14's bound on a one-file scan


def _fixtures(root: Path) -> dict[str, tuple[Path, int]]:
    """name -> (file, expected exit code: 0 clean, 1 flagged)."""
    out: dict[str, tuple[Path, int]] = {}
    benign = root / "benign.pkl"
    benign.write_bytes(pickle.dumps({"vocab": [f"t{i}" for i in range(40)], "n": 40}, protocol=4))
    out["benign pickle"] = (benign, 0)
    arg = b"echo fastscan-test"
    evil = root / "malicious.pkl"
    evil.write_bytes(b"\x80\x02cos\nsystem\n(X" + len(arg).to_bytes(4, "little") + arg + b"tR.")
    out["malicious pickle"] = (evil, 1)
    try:
        import torch
    except ImportError:
        print("torch not installed: no torch zip", file=sys.stderr)
        return out
    buf = io.BytesIO()
    torch.save({"weight": torch.arange(64, dtype=torch.float32)}, buf)
    zipped = root / "small.pt"
    zipped.write_bytes(buf.getvalue())
    out["torch zip"] = (zipped, 0)
    return out


def _run(command: list[str], path: Path, expected: int) -> tuple[float, float]:
    """(wall, cpu) seconds of one scan; fails loudly when the verdict is not the expected one."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [*command, "scan", str(path)], check=False, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != expected:
        raise SystemExit(
            f"{path.name}: exit {proc.returncode}, expected {expected}\n{proc.stdout}{proc.stderr}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--command", help="scanner command (default: python -P -m fastscan)")
    args = ap.parse_args()
    command = (
        shlex.split(args.command) if args.command else [sys.executable, "-P", "-m", "fastscan"]
    )
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="fastscan-latency-") as tmp:
        fixtures = _fixtures(Path(tmp))
        for path, expected in fixtures.values():
            _run(command, path, expected)  # warm-up
        walls: dict[str, list[float]] = {name: [] for name in fixtures}
        cpus: dict[str, list[float]] = {name: [] for name in fixtures}
        for _ in range(args.runs):  # interleaved, so a burst of load hits every file alike
            for name, (path, expected) in fixtures.items():
                wall, cpu = _run(command, path, expected)
                walls[name].append(wall)
                cpus[name].append(cpu)
    print(f"fastscan scan, one file, median of {args.runs} runs ({' '.join(command)}):")
    for name in fixtures:
        wall = statistics.median(walls[name])
        worst = max(worst, wall)
        print(
            f"  {name:17s} wall {wall:.3f} s (min {min(walls[name]):.3f})"
            f"   cpu {statistics.median(cpus[name]):.3f} s"
        )
    verdict = "within" if worst <= LIMIT_S else "OVER"
    print(f"worst median {worst:.3f} s: {verdict} the {LIMIT_S} s bound")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
