"""Rules-only (no model) false-positive rates per library on a corpus's benign side.

    PYTHONPATH=$PWD python -P benchmarks/benign_fpr.py /tmp/fsb/medium2 [--rules]

Reads CORPUS/manifest.jsonl (its `library` per row), scans every benign file in this process
with `Scanner(model=None)` and prints, per library, the share of files whose rules-only verdict
is malicious and the share at suspicious or above; `--rules` adds the rule ids behind them.
`--reach-table` prints the trade-off behind indexed.REACH_STEPS_MAX: per bound K, the benign
files with an FS110 reach of at most K steps against the docs/threats.md section F callables whose
shortest index reach is at most K steps (the index's malicious side, denylist withheld).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from fastscan.findings import Severity
from fastscan.scan import Scanner
from fastscan.verdict import MALICIOUS, SUSPICIOUS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--rules", action="store_true", help="list rule ids behind flagged files")
    ap.add_argument("--library", action="append", default=[], help="only these libraries")
    ap.add_argument("--reach-table", action="store_true", help="FS110 step-bound trade-off")
    ap.add_argument("--malicious", action="store_true", help="verdicts of the malicious side")
    args = ap.parse_args(argv)
    if args.malicious:
        return malicious_side(args.corpus)
    if args.reach_table:
        return reach_table(args.corpus)
    scanner = Scanner(model=None)
    files: dict[str, int] = Counter()
    mal: dict[str, int] = Counter()
    sus: dict[str, int] = Counter()
    why: dict[str, Counter[str]] = defaultdict(Counter)
    with (args.corpus / "manifest.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            lib = row.get("library") or ""
            if row.get("label") != "benign" or not lib:
                continue
            if args.library and lib not in args.library:
                continue
            result = scanner.scan_path(str(args.corpus / row["path"]))
            files[lib] += 1
            if result.verdict in (MALICIOUS, SUSPICIOUS):
                sus[lib] += 1
                level = {MALICIOUS: "M", SUSPICIOUS: "S"}[result.verdict]
                ids = sorted(
                    {
                        f.rule_id
                        for f in result.findings
                        if f.severity >= Severity.SUSPICIOUS and not f.suppressed
                    }
                )
                why[lib][f"{level}:{','.join(ids)}"] += 1
            if result.verdict == MALICIOUS:
                mal[lib] += 1
    print(f"{'library':28} {'files':>5} {'mal%':>6} {'sus+%':>6}")
    for lib in sorted(files):
        n = files[lib]
        line = f"{lib:28} {n:5d} {100 * mal[lib] / n:6.1f} {100 * sus[lib] / n:6.1f}"
        if args.rules and why[lib]:
            line += "  " + "; ".join(f"{k} x{v}" for k, v in why[lib].most_common(4))
        print(line)
    rates = [(mal[lib] / files[lib], sus[lib] / files[lib]) for lib in files]
    if rates:
        mean_m = 100 * sum(r[0] for r in rates) / len(rates)
        mean_s = 100 * sum(r[1] for r in rates) / len(rates)
        worst = max(files, key=lambda lib: (mal[lib] / files[lib], sus[lib] / files[lib]))
        print(
            f"{'MEAN over ' + str(len(rates)) + ' libraries':28} {sum(files.values()):5d} "
            f"{mean_m:6.1f} {mean_s:6.1f}"
        )
        print(
            f"worst malicious: {worst} {100 * mal[worst] / files[worst]:.1f}%; "
            f"files malicious {sum(mal.values())}, suspicious+ {sum(sus.values())}"
        )
    return 0


def malicious_side(corpus: Path) -> int:
    """Rules-only verdicts of the corpus's malicious files (none may fall below malicious)."""
    scanner = Scanner(model=None)
    verdicts: Counter[str] = Counter()
    below: list[str] = []
    with (corpus / "manifest.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("label") != "malicious":
                continue
            verdict = scanner.scan_path(str(corpus / row["path"])).verdict
            verdicts[verdict] += 1
            if verdict != MALICIOUS:
                below.append(f"{row['path']} {verdict}")
    print(f"malicious files {sum(verdicts.values())}: {dict(verdicts)}")
    for text in below[:20]:
        print("  ", text)
    return 0


_STEPS = re.compile(r"reaches a sink: (.*?) \(")


def reach_table(corpus: Path) -> int:
    """Benign files flagged by FS110 within K steps vs section F callables reached within K."""
    from fastscan.index import shipped_index
    from fastscan.train.matrix import F_CALLABLES

    index = shipped_index()
    assert index is not None, "no shipped index in this build"
    shortest: list[int] = []
    for module, name, *_ in F_CALLABLES:
        symbol = index.lookup(module, name)
        if symbol is not None and symbol.reaches:
            shortest.append(min(len(r.path) for r in symbol.reaches))
    scanner = Scanner(model=None)
    benign: list[int] = []  # per benign file with an FS110: its shortest reach
    with (corpus / "manifest.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("label") != "benign":
                continue
            steps = [
                m.group(1).count(" -> ") + 1
                for f in scanner.scan_path(str(corpus / row["path"])).findings
                if f.rule_id == "FS110" and (m := _STEPS.search(f.message))
            ]
            if steps:
                benign.append(min(steps))
    n_f = len(F_CALLABLES)
    print(
        f"F callables {n_f}, reached by the index {len(shortest)}; benign files with FS110 "
        f"{len(benign)}"
    )
    print(f"{'K':>3} {'F within K':>11} {'benign FS110 files within K':>28}")
    for k in range(1, 11):
        f_in = sum(s <= k for s in shortest)
        b_in = sum(s <= k for s in benign)
        print(f"{k:3d} {f_in:5d} ({100 * f_in / n_f:4.1f}%) {b_in:18d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
