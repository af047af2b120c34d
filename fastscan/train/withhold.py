"""Withholding denylist entries: how a family the rules do not know yet looks to the scanner.

Used twice: `eval --novel` withholds one family's dangerous names from the rules and the
model's rule-class features; training adds "unlisted" twins of the malicious rows (every
dangerous name the file uses withheld), so the classifier learns what a gadget looks like
without the denylist's help (denylist dropout) instead of leaning on the rule classes alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..findings import rule_findings
from ..rules import default_ruleset
from ..verdict import score_decides
from .corpus_scan import CorpusScan, scan_with_rows


def _names_chunk(paths: list[str]) -> list[frozenset[str]]:
    """Worker: per file, the resolved names the shipped rules call dangerous (nested included)."""
    from ..scan import Scanner

    scanner = Scanner(model=None)
    rules = default_ruleset()
    out: list[frozenset[str]] = []
    for path in paths:
        try:
            analysis = scanner.analyse(path, path)
        except Exception:  # an unreadable file holds no names; its scan row says error anyway
            out.append(frozenset())
            continue
        pairs = {
            (g.module, g.name)
            for _s, f in analysis.streams
            for sub in f.walk()
            for g in sub.globals
        }
        out.append(frozenset(rules.dangerous_names(pairs)))
    return out


def _rescan_chunk(job: tuple[tuple[str, ...], list[str]]) -> tuple[list[Any], np.ndarray]:
    """Worker: rules verdicts and feature rows of `paths` with `withheld` names unknown."""
    from ..scan import Scanner

    withheld, paths = job
    scanner = Scanner(model=None, rules=default_ruleset().withholding(withheld))
    return scan_with_rows(scanner, paths)


def _map(fn: Any, jobs: list[Any], workers: int) -> list[Any]:
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, jobs))
    return [fn(j) for j in jobs]


def dangerous_names_per_file(
    scan: CorpusScan, workers: int = 1, chunk: int = 64
) -> list[frozenset[str]]:
    paths = [str(e.path) for e in scan.entries]
    jobs = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    return [names for part in _map(_names_chunk, jobs, workers) for names in part]


def rescan_withholding(
    scan: CorpusScan,
    names: Sequence[frozenset[str]],
    withheld: frozenset[str],
    workers: int = 1,
    chunk: int = 64,
) -> tuple[CorpusScan, int]:
    """A copy of `scan` in which every file holding a withheld name is rescanned with those
    names unknown; other files classify identically, so their rows are reused. Returns the copy
    and how many files were rescanned."""
    affected = [i for i, n in enumerate(names) if n & withheld]
    out = CorpusScan(
        entries=scan.entries,
        X=scan.X.copy(),
        statuses=list(scan.statuses),
        findings=list(scan.findings),
        rule_verdicts=list(scan.rule_verdicts),
        X_unlisted=scan.X_unlisted,
        X_twin=scan.X_twin,
        library_views=scan.library_views,
        decided_unlisted=scan.decided_unlisted,
    )
    key = tuple(sorted(withheld))
    jobs = [
        (key, [str(scan.entries[i].path) for i in affected[k : k + chunk]])
        for k in range(0, len(affected), chunk)
    ]
    parts = _map(_rescan_chunk, jobs, workers)
    results = [r for rs, _rows in parts for r in rs]
    rows = [row for _rs, rs_rows in parts for row in rs_rows]
    for i, result, row in zip(affected, results, rows, strict=True):
        out.X[i] = row
        out.statuses[i] = result.status
        out.findings[i] = rule_findings(result.findings)
        out.rule_verdicts[i] = result.verdict
    return out, len(affected)


def add_unlisted_rows(scan: CorpusScan, workers: int = 1) -> int:
    """Fill `scan.X_unlisted`: each file's row with every dangerous name it uses withheld (the
    same row where it uses none). Returns how many files were rescanned."""
    names = dangerous_names_per_file(scan, workers)
    everything = frozenset().union(*names) if names else frozenset()
    unlisted, rescanned = rescan_withholding(scan, names, everything, workers)
    scan.X_unlisted = unlisted.X
    scan.decided_unlisted = unlisted.judged_rows(score_decides)
    return rescanned
