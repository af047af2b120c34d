"""Precision on libraries fastscan never saw (issue 15's generalisation). Run by hand, not in CI:

    cd REPO && PYTHONPATH=$PWD python -P benchmarks/unseen_libraries.py /tmp/unseen [--why]
    PYTHONPATH=$PWD python -P benchmarks/unseen_libraries.py --measure /tmp/unseen --why

Generates ~10 benign pickle-bearing files per library (benchmarks/unseen_sources.py: 34
installed libraries that are neither in the training corpus nor allowlisted by name in
fastscan/rules/; a library or object that does not pickle here is skipped and printed), saved
as users save them (fastscan/train/benign_libs/_base.py: pickle in a random protocol 0-5 with
fix_imports, joblib with a random compressor, torch.save for torch objects, cloudpickle for
dask, srsly.pickle_dumps), seeded (PYTHONHASHSEED=0: the same bytes on every run), under
DIR/benign/<library>/ with DIR/manifest.jsonl in the corpus's format. Generation runs in a
subprocess: this (measuring) process never imports a scanned library nor unpickles anything.

Then, per library, the share of files flagged (verdict suspicious or above) and malicious for
  (a) shipped: `Scanner()`, rules + the shipped model, as users run it;
  (b) rules:   `Scanner(model=None)`;
  (c) lolo:    rules + the shipped model with that library withheld from the ecosystem index
               (as `eval --lolo` judges a held-out library; the shipped model itself never saw
               any of these libraries, so (c) is (a) without the index's knowledge of it);
  (d) picklescan (if installed in --peers-venv, see benchmarks/setup_peers.sh): flagged = any
      dangerous global reported for the file; err% = files it could not parse (joblib's
      compressed streams, legacy torch files): neither flagged nor judged;
with the mean over libraries (each library weighs the same) and the worst. `--index FILE`
adds index files (`fastscan index`) to every mode, as `--index` does for a scan. `--why` lists the
findings (rule, severity, subject, message) behind every file flagged by (a) or (c).
`*` after a library: the rules name it (a denylist entry or alias for some of its callables;
never an allowlist), so it is not unseen in the strict sense; the strict mean leaves them out.

Takes ~6 s to generate (320 files of 32 libraries; patsy and frozenlist do not pickle and are
skipped) and ~2 s to measure (every file scanned 3 times, one scanner per library for (c),
picklescan 0.1 s) on the 2-core dev box, ~8 s in all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODES = ("shipped", "rules", "lolo")
# Libraries some rule names (deny_*.toml entries, aliases.toml): see the docstring's `*`.
NAMED_IN_RULES = frozenset(
    {"requests", "sqlalchemy", "huggingface-hub", "psutil", "aiohttp", "dask", "msgpack"}
)


# -- generation (a subprocess: it imports the libraries) -----------------------------------------


def _save(obj: Any, library: str, rng: random.Random) -> tuple[bytes, str, str]:
    """(bytes, extension, how) of `obj` saved the way its users save it."""
    from unseen_sources import CLOUDPICKLED, TORCH_SAVED

    from fastscan.train.benign_libs._base import dump, joblib_dump, torch_save

    if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "raw":
        return obj[1], ".pkl", "own"
    if library in TORCH_SAVED and rng.random() < 0.6:
        return (*torch_save(obj, rng), "torch")
    if library in CLOUDPICKLED and rng.random() < 0.7:
        import cloudpickle

        return cloudpickle.dumps(obj, protocol=rng.randint(2, 5)), ".pkl", "cloudpickle"
    if rng.random() < 0.25:
        return (*joblib_dump(obj, rng), "joblib")
    return (*dump(obj, rng), "pickle")


def generate(out: Path, per_lib: int, seed: int, only: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    import shutil

    from unseen_sources import SOURCES, install_labtypes

    from fastscan.train.benign import _fixed_clock
    from fastscan.train.corpus import _benign_container

    shutil.rmtree(out / "benign", ignore_errors=True)  # a rerun leaves no stale files
    install_labtypes(out)
    rows, skipped = [], {}
    for library, build in SOURCES.items():
        if only and library not in only:
            continue
        errors: Counter[str] = Counter()
        made = 0
        for i in range(per_lib):
            for attempt in range(4):  # a builder variant that does not pickle: try another
                rng = random.Random(f"{seed}:{library}:{i}:{attempt}")
                try:
                    with _fixed_clock():  # cookie jars and gzip stamp the time
                        data, ext, how = _save(build(rng), library, rng)
                    break
                except Exception as exc:
                    errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
            else:
                continue
            rel = f"benign/{library}/{library}-{i}{ext}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
            made += 1
            rows.append(
                {
                    "container": _benign_container(library, data),
                    "expected": "clean",
                    "family": f"{library}_{how}",
                    "group": "unseen",
                    "label": "benign",
                    "library": library,
                    "path": rel,
                    "saved": how,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                }
            )
        if errors:
            skipped[library] = f"{made}/{per_lib} made; " + "; ".join(
                f"{k} x{v}" for k, v in errors.most_common(2)
            )
    with (out / "manifest.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
    print(f"generated {len(rows)} files of {len({r['library'] for r in rows})} libraries in {out}")
    for library, why in skipped.items():
        print(f"  partly or wholly skipped {library}: {why}")
    return 0


# -- measurement (this process: fastscan only) ---------------------------------------------------


def _why(result: Any) -> list[str]:
    from fastscan.findings import Severity

    return [
        f"{f.rule_id} {f.severity.name} {f.subject!r}: {f.message[:160]}"
        for f in result.findings
        if f.severity >= Severity.SUSPICIOUS and not f.suppressed
    ]


def _category(message: str) -> str:
    m = re.search(r" (?:imported|called) (\[\w+\])", message)
    return m.group(1) if m else ""


def cause(result: Any) -> str:
    """What decides a flagged verdict: the rules at malicious, else the suspicious rules no
    classifier score may settle (findings.JUDGEABLE_RULES), else the model (FS90x)."""
    from fastscan.findings import JUDGEABLE_RULES, Severity

    counted = [f for f in result.findings if not f.suppressed and f.severity >= Severity.SUSPICIOUS]
    top = max((f.severity for f in counted), default=Severity.SUSPICIOUS)
    rules = {f.rule_id for f in counted if not f.rule_id.startswith("FS9")}
    if top >= Severity.MALICIOUS:  # denylist hits (FS101 imported / FS102 called) by category
        decisive = {
            re.sub(r"FS10[12]", "FS101/2", f.rule_id) + _category(f.message)
            for f in counted
            if f.severity >= Severity.MALICIOUS
        }
    else:
        decisive = rules - JUDGEABLE_RULES or {f.rule_id for f in counted}
    return "+".join(sorted(decisive))


def _picklescan(root: Path, venv: Path) -> dict[str, str] | None:
    """path (relative to root) -> "flagged" (a dangerous global) or "error" (picklescan could
    not parse it: joblib compressed streams, torch legacy files); None if not installed."""
    exe = venv / "bin" / "picklescan"
    if not exe.exists():
        return None
    proc = subprocess.run(  # picklescan exits non-zero when it finds something
        [str(exe), "--path", str(root / "benign")],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out: dict[str, str] = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"(.+?): dangerous import", line) or re.match(
            r"WARNING: could not parse (.+?) as pickle", line
        )
        if m:
            rel = str(Path(m.group(1)).resolve().relative_to(root.resolve()))
            out[rel] = "flagged" if "dangerous" in line else out.get(rel, "error")
    return out


def measure(
    root: Path,
    why: bool,
    peers: Path,
    out_json: Path | None,
    extra: list[str],
    *,
    model: str | None = None,
) -> int:
    from fastscan.scan import DEFAULT_MODEL, Scanner
    from fastscan.train.twins import scanner_without_index
    from fastscan.verdict import MALICIOUS, SUSPICIOUS

    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    by_lib: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_lib.setdefault(row["library"], []).append(row)
    t0 = time.perf_counter()
    shipped = Scanner(index=extra) if model is None else Scanner(index=extra, model=model)
    rules_only = Scanner(model=None, index=extra)
    results: dict[str, dict[str, Any]] = {}
    for library, lib_rows in sorted(by_lib.items()):
        lolo = scanner_without_index(
            frozenset({library}), model=model or DEFAULT_MODEL, extra_indexes=extra
        )
        for row in lib_rows:
            path = str(root / row["path"])
            results[row["path"]] = {
                m: s.scan_path(path)
                for m, s in zip(MODES, (shipped, rules_only, lolo), strict=True)
            }
    scan_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    peer = _picklescan(root, peers)
    peer_s = time.perf_counter() - t1

    level = {SUSPICIOUS: 1, MALICIOUS: 2}
    table: dict[str, dict[str, Any]] = {}
    head = f"{'library':18} {'files':>5}" + "".join(f" {m + ' fl%':>11} {'mal%':>5}" for m in MODES)
    print(head + (f" {'picklescan%':>11} {'err%':>5}" if peer is not None else ""))
    for library, lib_rows in sorted(by_lib.items()):
        n = len(lib_rows)
        entry: dict[str, Any] = {"files": n}
        line = f"{library + ('*' if library in NAMED_IN_RULES else ''):18} {n:5d}"
        for m in MODES:
            ranks = [level.get(results[r["path"]][m].verdict, 0) for r in lib_rows]
            entry[m] = (sum(x >= 1 for x in ranks) / n, sum(x >= 2 for x in ranks) / n)
            line += f" {100 * entry[m][0]:11.1f} {100 * entry[m][1]:5.1f}"
        if peer is not None:
            got = [peer.get(r["path"], "") for r in lib_rows]
            entry["picklescan"] = got.count("flagged") / n
            entry["picklescan_error"] = got.count("error") / n
            line += f" {100 * entry['picklescan']:11.1f} {100 * entry['picklescan_error']:5.1f}"
        table[library] = entry
        print(line)
    for label, libs in (
        ("mean", list(table)),
        ("mean strict", [x for x in table if x not in NAMED_IN_RULES]),
    ):
        line = f"{label:18} {sum(table[x]['files'] for x in libs):5d}"
        for m in MODES:
            line += f" {100 * sum(table[x][m][0] for x in libs) / len(libs):11.1f}"
            line += f" {100 * sum(table[x][m][1] for x in libs) / len(libs):5.1f}"
        if peer is not None:
            for key, width in (("picklescan", 11), ("picklescan_error", 5)):
                line += f" {100 * sum(table[x][key] for x in libs) / len(libs):{width}.1f}"
        print(line)
    strict = [x for x in table if x not in NAMED_IN_RULES]
    for label, libs in (("worst", list(table)), ("worst strict", strict)):
        line = f"{label:18} {'':5}"
        worst = {m: max(libs, key=lambda x: table[x][m]) for m in MODES}  # (flagged, malicious)
        for m in MODES:
            line += f" {100 * table[worst[m]][m][0]:11.1f} {100 * table[worst[m]][m][1]:5.1f}"
        print(f"{line}   ({', '.join(f'{m}={worst[m]}' for m in MODES)})")
    print(
        f"\n{len(rows)} files, {len(table)} libraries; fastscan 3 modes {scan_s:.1f}s"
        + (
            f", picklescan {peer_s:.1f}s"
            if peer is not None
            else f"; picklescan skipped (not in {peers}: benchmarks/setup_peers.sh)"
        )
    )
    causes: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        for m in ("shipped", "lolo"):
            r = results[row["path"]][m]
            if level.get(r.verdict, 0) >= 1:
                causes.setdefault((m, cause(r)), []).append(row["library"])
    print("\ncauses of flagged files (mode, deciding rules: files, libraries):")
    for (m, c), libs in sorted(causes.items(), key=lambda kv: (kv[0][0], -len(kv[1]))):
        print(f"  {m:8} {c:28} {len(libs):4d}  {', '.join(sorted(set(libs)))}")
    if why:
        print("\nflagged files (a: shipped, c: lolo), findings at suspicious or above:")
        for row in rows:
            res = results[row["path"]]
            modes = [m for m in ("shipped", "lolo") if level.get(res[m].verdict, 0) >= 1]
            for m in modes:
                r = res[m]
                print(f"{row['path']} [{m} {r.verdict} p={r.score:.3f} a={r.anomaly_score:.3f}]")
                for w in _why(r):
                    print(f"    {w}")
    if out_json is not None:
        dump = {
            p: {
                m: {"verdict": r.verdict, "score": r.score, "findings": _why(r)}
                for m, r in res.items()
            }
            for p, res in results.items()
        }
        out_json.write_text(json.dumps({"table": table, "files": dump}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, nargs="?", default=Path("/tmp/unseen"))
    ap.add_argument("--measure", type=Path, help="only measure an already generated DIR")
    ap.add_argument("--per-lib", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", default=[], help="only these libraries")
    ap.add_argument("--why", action="store_true", help="findings behind every flagged file")
    ap.add_argument("--json", type=Path, help="write the table and per-file verdicts here")
    ap.add_argument("--peers-venv", type=Path, default=HERE / ".peers")
    ap.add_argument("--index", action="append", default=[], help="extra index file (wins)")
    ap.add_argument("--model", help="a candidate model (.onnx beside its manifest) for (a), (c)")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.generate_only:
        return generate(args.out, args.per_lib, args.seed, args.only)
    root = args.measure
    if root is None:
        root = args.out
        t0 = time.perf_counter()
        cmd = [
            sys.executable,
            "-P",
            __file__,
            str(root),
            "--generate-only",
            "--per-lib",
            str(args.per_lib),
            "--seed",
            str(args.seed),
        ]
        cmd += [x for lib in args.only for x in ("--only", lib)]
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        print(f"generation took {time.perf_counter() - t0:.0f}s\n")
    return measure(root, args.why, args.peers_venv, args.json, args.index, model=args.model)


if __name__ == "__main__":
    sys.exit(main())
