"""Leave-one-library-out (issue #15 item 4): the benign false-positive rate on libraries the
model never saw.

    fastscan eval CORPUS --lolo [--model fastscan-v1] [--seed 0] [--workers 2] [--json OUT]

For each benign `library` of the manifest (benign_libs and corpus.library_of), the classifier
and the anomaly model are fit (fit.fit_classifier / make_anomaly_model, with the unlisted twins
of malicious rows and the benign unknown twins of the other libraries (twins.py), as `fastscan
train` does) on every row except that library's benign files and their twins,
which are then judged with `verdict.combine` at the thresholds of the shipped (or `--model`)
manifest, including `unknown_benign`. Reported per library: files, FPR of rules alone, and FPR of
the combined verdict at the suspicious and malicious levels; then the mean over libraries (each
library weighs the same) and the worst. The shipped model's own FPR on the same files is shown
beside (it was trained on the old closed-world corpus, so every library here is new to it).
`--workers N` scans with N processes and fits N libraries at once (one thread each).

Ecosystem index: the library should also be unknown to the index when its files are judged.
`run_lolo(..., scanner_without=f)` takes `f(libraries) -> Scanner` (e.g.
`scanner_without_index`) and rescans the held-out files with it; without it the corpus scan is
reused. With `scanner_without_index` the benign twins' rescan (`CorpusScan.library_views`) is
that view already, so nothing is scanned twice. `eval --lolo --no-twins` measures without them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..findings import rule_findings
from ..verdict import CLEAN, MALICIOUS, SUSPICIOUS, combine
from .corpus_scan import CorpusScan, Decided, scan_with_rows
from .fit import anomaly_scores, fit_classifier, make_anomaly_model
from .twins import libraries, scanner_without_index

__all__ = ["format_lolo", "libraries", "manifest_thresholds", "run_lolo", "scanner_without_index"]

_RANK = {CLEAN: 0, SUSPICIOUS: 1, MALICIOUS: 2}
ScannerWithout = Callable[[frozenset[str]], Any]


def manifest_thresholds(model: str | None = None) -> dict[str, float]:
    """Every threshold of a model manifest (model.Model keeps only three of them)."""
    from ..model import resolve_paths

    _onnx, manifest = resolve_paths(model)
    return dict(json.loads(manifest.read_text(encoding="utf-8"))["thresholds"])


def _held_out_view(
    scan: CorpusScan, rows: np.ndarray, library: str, scanner_without: ScannerWithout | None
) -> tuple[np.ndarray, list[Any], list[str], list[str]]:
    """(X, findings, statuses, rule verdicts) of `rows` as the scanner sees them without
    `library` (the corpus scan itself when there is nothing to withhold; the benign twins'
    rescan when twins.add_benign_twins made one with the same scanner)."""
    view = scan.library_views.get(library)
    if view is not None and scanner_without is scanner_without_index:
        return view.X, view.findings, view.statuses, view.rule_verdicts
    if scanner_without is None:
        idx = rows.tolist()
        return (scan.X[rows], [scan.findings[i] for i in idx], [scan.statuses[i] for i in idx],
                [scan.rule_verdicts[i] for i in idx])  # fmt: skip
    scanner = scanner_without(frozenset({library}))
    results, X = scan_with_rows(scanner, [str(scan.entries[i].path) for i in rows.tolist()])
    findings = [rule_findings(r.findings) for r in results]
    return X, findings, [r.status for r in results], [r.verdict for r in results]


def _rates(verdict_list: list[str]) -> dict[str, float]:
    rank = np.array([_RANK[v] for v in verdict_list])
    return {
        "fpr_suspicious": float((rank >= _RANK[SUSPICIOUS]).mean()),
        "fpr_malicious": float((rank >= _RANK[MALICIOUS]).mean()),
    }


_FitData = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, Decided, int]
_FIT_DATA: _FitData | None = None


def _init_fit(data: _FitData) -> None:
    """(X, y, unlisted rows, twin rows, Decided masks, seed) for `_fit_without`."""
    global _FIT_DATA
    _FIT_DATA = data


def _fit_without(job: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(probability, anomaly) of `X_held` from models fit on every row but `rows`."""
    rows, X_held = job
    assert _FIT_DATA is not None, "_init_fit first"
    X, y, unlisted, twins, decided, seed = _FIT_DATA
    train = np.setdiff1d(np.arange(len(y)), rows, assume_unique=True)
    with threadpool_limits(limits=1):  # see fit.fit
        extra = unlisted[train] if unlisted is not None else None
        # the held-out library's own twins go with its rows
        fit_twins = twins[train] if twins is not None else None
        fold = Decided(*(m[train] for m in decided))
        clf = fit_classifier(X[train], y[train], seed, extra, twins=fit_twins, decided=fold)
        benign = train[y[train] == 0]
        iso = make_anomaly_model(seed, len(benign)).fit(X[benign])
        return clf.predict_proba(X_held)[:, 1], anomaly_scores(iso, X_held)


def run_lolo(
    scan: CorpusScan,
    thresholds: dict[str, float],
    *,
    seed: int = 0,
    shipped: Any | None = None,
    scanner_without: ScannerWithout | None = None,
    only: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Per library: files, and FPR (suspicious / malicious level) of rules alone, of the combined
    verdict with a model fit without the library, and of `shipped` (a model.Model) if given.
    `workers` > 1 fits that many libraries at once (one thread each)."""
    chosen = {lib: rows for lib, rows in libraries(scan).items() if only is None or lib in only}
    views = {lib: _held_out_view(scan, rows, lib, scanner_without) for lib, rows in chosen.items()}
    jobs = [(rows, views[lib][0]) for lib, rows in chosen.items()]
    fit_args = (scan.X, scan.y, scan.X_unlisted, scan.X_twin, scan.decided(), seed)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, initializer=_init_fit, initargs=(fit_args,)) as pool:
            scores = []
            for library, result in zip(chosen, pool.map(_fit_without, jobs), strict=True):
                if progress is not None:
                    progress(library)
                scores.append(result)
    else:
        _init_fit(fit_args)
        scores = []
        for library, job in zip(chosen, jobs, strict=True):
            if progress is not None:
                progress(library)
            scores.append(_fit_without(job))
    per_library: dict[str, dict[str, Any]] = {}
    for (library, rows), (prob, anomaly) in zip(chosen.items(), scores, strict=True):
        X, findings, statuses, rule_verdicts = views[library]
        combined = [
            combine(f, s, float(p), float(a), thresholds)[0]
            for f, s, p, a in zip(findings, statuses, prob, anomaly, strict=True)
        ]
        row: dict[str, Any] = {
            "files": len(rows),
            "rules": _rates(rule_verdicts),
            "combined": _rates(combined),
            "max_probability": float(prob.max()),
            "flagged_files": sorted(
                str(scan.entries[i].path.name)
                for i, v in zip(rows.tolist(), combined, strict=True)
                if v != CLEAN
            )[:5],
        }
        if shipped is not None:
            p_s, a_s = shipped.score_matrix(X)
            row["shipped"] = _rates([
                combine(f, s, float(p), float(a), thresholds)[0]
                for f, s, p, a in zip(findings, statuses, p_s, a_s, strict=True)
            ])  # fmt: skip
        per_library[library] = row
    return {"seed": seed, "thresholds": thresholds, "libraries": per_library,
            "summary": _summary(per_library)}  # fmt: skip


def _summary(per_library: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("rules", "combined", "shipped"):
        cells = {lib: r[mode] for lib, r in per_library.items() if mode in r}
        if not cells:
            continue
        out[mode] = {}
        for key in ("fpr_suspicious", "fpr_malicious"):
            values = {lib: c[key] for lib, c in cells.items()}
            worst = max(sorted(values), key=values.__getitem__)  # ties: first by name
            out[mode][key] = {"mean": float(np.mean(list(values.values()))),
                              "worst": values[worst], "worst_library": worst,
                              "above_10pct": sum(v > 0.10 for v in values.values())}  # fmt: skip
    return out


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def format_lolo(report: dict[str, Any]) -> str:
    """Markdown: one row per library, then mean and worst (suspicious / malicious level)."""
    rows = report["libraries"]
    has_shipped = any("shipped" in r for r in rows.values())
    modes = ["rules", "combined", *(["shipped"] if has_shipped else [])]
    heads = {"rules": "rules alone", "combined": "combined, fit without it",
             "shipped": "shipped model"}  # fmt: skip
    lines = [
        "leave-one-library-out: benign FPR (flagged >= suspicious / >= malicious) of each library,"
        " its files judged by a model fit without them",
        "",
        "| library | files | " + " | ".join(f"{heads[m]} FPR" for m in modes) + " |",
        "|---|---|" + "---|" * len(modes),
    ]

    def pair(cell: dict[str, float]) -> str:
        return f"{_pct(cell['fpr_suspicious'])} / {_pct(cell['fpr_malicious'])}"

    for library, row in rows.items():
        lines.append(f"| {library} | {row['files']} | " + " | ".join(pair(row[m]) for m in modes)
                     + " |")  # fmt: skip
    summary = report["summary"]
    for what in ("mean", "worst"):
        cells = []
        for m in modes:
            s, mal = summary[m]["fpr_suspicious"], summary[m]["fpr_malicious"]
            cell = f"{_pct(s[what])} / {_pct(mal[what])}"
            if what == "worst":
                cell += f" ({s['worst_library']})"
            cells.append(f"**{cell}**" if m == "combined" else cell)
        lines.append(f"| **{what}** | | " + " | ".join(cells) + " |")
    over = summary["combined"]["fpr_suspicious"]["above_10pct"]
    lines.append("")
    lines.append(f"{len(rows)} libraries; combined above 10% at suspicious: {over}")
    return "\n".join(lines)
