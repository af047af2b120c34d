"""Shipped ecosystem index: load time (fresh process, median of runs) and lookup cost.

    PYTHONPATH=. python benchmarks/bench_index.py [--index FILE] [--runs 7]

Load = `load_index` of the file (read + header), measured in fresh interpreters after
`import fastscan.index`. Lookups: cold (first lookup in a module: its section is inflated) and
warm (cached sections), over every module's exported names plus docs/threats.md F's callables.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time

_PROBE = """
import sys, time
import fastscan.index as fi
t0 = time.perf_counter()
idx = fi.load_index(sys.argv[1]) if sys.argv[1] != "-" else fi.shipped_index()
t1 = time.perf_counter()
idx.lookup("torch.serialization", "os.system")
t2 = time.perf_counter()
print(f"{(t1 - t0) * 1e3:.2f} {(t2 - t1) * 1e3:.2f}")
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", default="-", help="index file (default: the shipped one)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--names", type=int, default=20000)
    args = ap.parse_args()
    env = dict(os.environ)
    loads, firsts = [], []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, args.index],
            capture_output=True, text=True, env=env, check=True,
        ).stdout.split()  # fmt: skip
        loads.append(float(out[0]))
        firsts.append(float(out[1]))
    print(f"load (fresh process, median of {args.runs}): {statistics.median(loads):.1f} ms"
          f" (min {min(loads):.1f}); first lookup {statistics.median(firsts):.2f} ms")  # fmt: skip

    import fastscan.index as fi

    path = args.index if args.index != "-" else None
    idx = fi.load_index(path) if path else fi.shipped_index()
    size = os.path.getsize(path) if path else None
    mods = idx.modules()
    rng = random.Random(0)
    sample = rng.sample(mods, min(len(mods), 2000))
    t0 = time.perf_counter()
    names = []
    for m in sample:
        sec = idx._section(m) or {}
        names += [(m, n) for n in list(sec.get("n", {}))[:20]]
    cold = time.perf_counter() - t0
    rng.shuffle(names)
    names = names[: args.names]
    t0 = time.perf_counter()
    for m, n in names:
        idx.lookup(m, n)
    warm = time.perf_counter() - t0
    mb = "" if size is None else f", {size / 1e6:.1f} MB"
    per_mod = cold / len(sample) * 1e6
    per_name = warm / max(len(names), 1) * 1e6
    print(f"{len(mods)} modules{mb}; cold section inflate {per_mod:.0f} us/module;")
    print(f"lookup (first time per name) {per_name:.1f} us over {len(names)} names")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
