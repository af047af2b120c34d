"""`fastscan eval CORPUS`: detection quality of rules alone, the model alone, and both combined.

    fastscan eval CORPUS [--model fastscan-v1] [--positive suspicious|malicious]
    fastscan eval CORPUS --experiments [--seed 0] [--test-fraction 0.3]
    fastscan eval CORPUS --lolo [--model fastscan-v1] [--seed 0]   # see fastscan.train.lolo
    ... [--no-twins]   # fit without the benign unknown twins (fastscan.train.twins)

CORPUS is any folder with a `manifest.jsonl` (as `fastscan.train.corpus` writes it), one JSON
object per line; other keys are ignored:

    {"path": "malicious/process/F_os.system/raw-0.pkl",  # relative to the folder, or absolute
     "label": "malicious",        # benign | malicious
     "family": "F:os.system",     # payload variant (docs/threats.md row, callable) or benign;
                                  # optional, defaults to the path
     "group": "process",          # coarse family: process, exec, network, … (benign: torch,
                                  # numpy, …); the unit of per-family recall and leave-one-out
     "container": "torch_zip"}    # how the payload was packaged (informational)

Every file is scanned by `fastscan.scan.Scanner(model=None)`, which gives the rules-alone
verdict and the feature row. "model" is `verdict.combine` on the model scores with no rule
findings; "combined" is `verdict.combine` on rule findings plus model scores, i.e. exactly
what `fastscan scan` reports. A file counts as flagged when its verdict is at least
`--positive` (default suspicious). Reported: precision, recall, F1, false-positive rate on benign
files, and recall per `group`.

`--experiments` is the driver behind the README numbers (it fits its own models):
- held-out: files are split into train and test, stratified by label; all files of one payload
  variant (`family`, any container or seed) sit on the same side, so a test payload was never
  seen in training in any packaging. Models are fit on train (out-of-fold thresholds, the same
  `fit.fit` as `fastscan train`) and scored on test;
- leave-one-family-out: for each malicious `group`, fit on the held-out train split minus that
  group (same thresholds) and measure recall on every file of the group, plus the
  false-positive rate on the benign test split: what the model adds on attack families it has
  never seen.

`--novel` (implies `--experiments`) adds the novel-family leave-one-out: the plain one above is
not "unseen" for a scanner, because the denylist still lists the family's callables (rules-alone
recall 1.0) and the model's rule-class features leak that list. Here, for each malicious group G,
the dangerous names G's files use (classified with the full rules) are withheld from the rules
(`RuleSet.withholding`: they classify as unknown, like any unlisted callable, so rules alone say
FS103 suspicious at most); every file holding one of them is rescanned so both rule verdicts and
feature rows come from the withheld knowledge. Conservative: a name G shares with other groups
is withheld for them too. The model is fit on the train split minus G (same code and thresholds
as above); reported per group and mode: recall at the suspicious and at the malicious level, and
the benign-test FPR at both levels.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from .. import model as model_mod
from ..verdict import CLEAN, MALICIOUS, SUSPICIOUS, VerdictPolicy, combine
from . import corpus_scan
from . import fit as fit_mod
from .corpus_scan import CorpusScan
from .fit import anomaly_scores, fit_classifier, make_anomaly_model
from .twins import add_benign_twins, judgeable_twins
from .withhold import add_unlisted_rows, dangerous_names_per_file, rescan_withholding

MODES = ("rules", "model", "combined")
Policy = VerdictPolicy | Mapping[str, float | str]  # a policy, or a manifest's thresholds
_RANK = {CLEAN: 0, SUSPICIOUS: 1, MALICIOUS: 2}


@dataclass
class ModeResult:
    mode: str
    precision: float
    recall: float
    f1: float
    fpr: float
    n_benign: int
    n_malicious: int
    family_recall: dict[str, tuple[int, int]]  # group -> (detected, total)


def verdicts(
    scan: CorpusScan,
    rows: np.ndarray,
    prob: np.ndarray,
    anomaly: np.ndarray,
    policy: Policy,
) -> dict[str, list[str]]:
    """Per mode, the verdict of each selected row (same function and policy as `fastscan scan`:
    a model's manifest thresholds, or `fit.choose_thresholds` of the model fit here)."""
    if not isinstance(policy, VerdictPolicy):
        policy = VerdictPolicy.from_mapping(policy)
    out: dict[str, list[str]] = {m: [] for m in MODES}
    for i, p, a in zip(rows.tolist(), prob.tolist(), anomaly.tolist(), strict=True):
        out["rules"].append(scan.rule_verdicts[i])
        out["model"].append(combine([], "complete", p, a, policy)[0])
    out["combined"] = [v for v, _ in combined(scan, rows, prob, anomaly, policy)]
    return out


def combined(
    scan: CorpusScan, rows: np.ndarray, prob: np.ndarray, anomaly: np.ndarray, policy: Policy
) -> list[tuple[str, list[str]]]:
    """(verdict, model finding messages) of each selected row, as `fastscan scan` gives them."""
    if not isinstance(policy, VerdictPolicy):
        policy = VerdictPolicy.from_mapping(policy)
    out = []
    for i, p, a in zip(rows.tolist(), prob.tolist(), anomaly.tolist(), strict=True):
        verdict, extra = combine(scan.findings[i], scan.statuses[i], p, a, policy)
        out.append((verdict, [f"{f.rule_id} {f.message}" for f in extra]))
    return out


def measure(
    mode: str, verdict_list: Sequence[str], y: np.ndarray, families: np.ndarray, positive: str
) -> ModeResult:
    flagged = np.array([_RANK[v] >= _RANK[positive] for v in verdict_list], dtype=bool)
    rates = fit_mod._rates(flagged, y)
    fam: dict[str, tuple[int, int]] = {}
    for family in sorted(set(families[y == 1].tolist())):
        sel = (y == 1) & (families == family)
        fam[family] = (int(flagged[sel].sum()), int(sel.sum()))
    return ModeResult(
        mode,
        rates["precision"],
        rates["recall"],
        rates["f1"],
        rates["fpr"],
        int((y == 0).sum()),
        int((y == 1).sum()),
        fam,
    )


def evaluate_rows(
    scan: CorpusScan,
    rows: np.ndarray,
    prob: np.ndarray,
    anomaly: np.ndarray,
    policy: Policy,
    *,
    positive: str = SUSPICIOUS,
) -> list[ModeResult]:
    per_mode = verdicts(scan, rows, prob, anomaly, policy)
    y, fams = scan.y[rows], scan.groups[rows]
    return [measure(m, per_mode[m], y, fams, positive) for m in MODES]


def format_table(results: Sequence[ModeResult], title: str) -> str:
    """Overall metrics per mode, then recall per group (rows) and mode (columns)."""
    lines = [title, f"{'mode':<9} {'precision':>9} {'recall':>7} {'F1':>7} {'FPR':>7}"]
    for r in results:
        lines.append(f"{r.mode:<9} {r.precision:>9.4f} {r.recall:>7.4f} {r.f1:>7.4f} {r.fpr:>7.4f}")
    if not results:
        return "\n".join(lines)
    lines.append(f"({results[0].n_benign} benign, {results[0].n_malicious} malicious files)")
    lines.append("")
    lines.append(
        f"{'recall per group':<18} {'files':>6}" + "".join(f" {r.mode:>9}" for r in results)
    )
    for group, (_hit, total) in results[0].family_recall.items():
        cells = "".join(f" {_ratio(*r.family_recall[group]):>9}" for r in results)
        lines.append(f"{group:<18} {total:>6}{cells}")
    return "\n".join(lines)


def _ratio(hit: int, total: int) -> str:
    return f"{hit / total:.3f}" if total else "-"


# -- experiments ----------------------------------------------------------------------------------


def held_out_split(
    scan: CorpusScan, seed: int, test_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices; grouped by `group`, stratified by label."""
    n_splits = max(2, round(1 / test_fraction))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train, test = next(splitter.split(np.zeros(len(scan.y)), scan.y, scan.split_keys))
    return np.sort(train), np.sort(test)


def _fit_and_score(
    scan: CorpusScan, train: np.ndarray, test: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    X, y = scan.X, scan.y
    with threadpool_limits(limits=1):  # see fit.fit
        unlisted = scan.X_unlisted[train] if scan.X_unlisted is not None else None
        twins = scan.X_twin[train] if scan.X_twin is not None else None
        clf = fit_classifier(
            X[train], y[train], seed, unlisted, twins=twins, decided=scan.decided(train)
        )
        benign = train[y[train] == 0]
        iso = make_anomaly_model(seed, len(benign)).fit(X[benign])
    return clf.predict_proba(X[test])[:, 1], anomaly_scores(iso, X[test])


def run_experiments(
    scan: CorpusScan, seed: int = 0, test_fraction: float = 0.3, positive: str = SUSPICIOUS
) -> dict[str, Any]:
    """Held-out and leave-one-family-out results (see the module docstring)."""
    train, test = held_out_split(scan, seed, test_fraction)
    unlisted = scan.X_unlisted[train] if scan.X_unlisted is not None else None
    fitted = fit_mod.fit(
        scan.X[train],
        scan.y[train],
        scan.fold_keys[train],
        seed=seed,
        unlisted=unlisted,
        twins=scan.X_twin[train] if scan.X_twin is not None else None,
        judgeable=corpus_scan.judgeable_rows(scan)[train],
        twin_judgeable=judgeable_twins(scan)[train],
        decided=scan.decided(train),
    )
    thresholds = fitted.thresholds
    prob = fitted.classifier.predict_proba(scan.X[test])[:, 1]
    anomaly = anomaly_scores(fitted.anomaly, scan.X[test])
    held_out = evaluate_rows(scan, test, prob, anomaly, thresholds, positive=positive)

    benign_test = test[scan.y[test] == 0]
    lofo: dict[str, dict[str, Any]] = {}
    for family in sorted(set(scan.groups[scan.y == 1].tolist())):
        in_family = (scan.y == 1) & (scan.groups == family)
        fold_train = train[~in_family[train]]
        fold_test = np.concatenate([np.flatnonzero(in_family), benign_test])
        p, a = _fit_and_score(scan, fold_train, fold_test, seed)
        results = evaluate_rows(scan, fold_test, p, a, thresholds, positive=positive)
        lofo[family] = {
            r.mode: {"recall": r.recall, "fpr": r.fpr, "n": r.n_malicious} for r in results
        }
    means = {
        m: float(np.mean([v[m]["recall"] for v in lofo.values()])) if lofo else math.nan
        for m in MODES
    }
    return {
        "seed": seed,
        "test_fraction": test_fraction,
        "positive": positive,
        "thresholds": thresholds,
        "n_train": len(train),
        "n_test": len(test),
        "held_out": held_out,
        "leave_one_family_out": lofo,
        "leave_one_family_out_mean_recall": means,
    }


def format_lofo(report: dict[str, Any]) -> str:
    lofo = report["leave_one_family_out"]
    lines = ["leave-one-family-out (recall on the unseen family; FPR on held-out benign)"]
    lines.append(f"{'family':<16} {'files':>6}" + "".join(f" {m:>9}" for m in MODES) + " model FPR")
    for family, row in lofo.items():
        cells = "".join(f" {row[m]['recall']:>9.4f}" for m in MODES)
        lines.append(f"{family:<16} {row['rules']['n']:>6}{cells} {row['model']['fpr']:>9.4f}")
    means = report["leave_one_family_out_mean_recall"]
    lines.append(f"{'mean':<16} {'':>6}" + "".join(f" {means[m]:>9.4f}" for m in MODES))
    return "\n".join(lines)


# -- novel families: the denylist does not know the held-out group ------------------------------


def _level_rates(verdict_list: Sequence[str], y: np.ndarray) -> dict[str, float]:
    """Recall on malicious rows and FPR on benign rows, at both verdict levels."""
    rank = np.array([_RANK[v] for v in verdict_list])
    out = {}
    for level in (SUSPICIOUS, MALICIOUS):
        flagged = rank >= _RANK[level]
        out[f"recall_{level}"] = float(flagged[y == 1].mean()) if (y == 1).any() else math.nan
        out[f"fpr_{level}"] = float(flagged[y == 0].mean()) if (y == 0).any() else math.nan
    return out


def run_novel(
    scan: CorpusScan,
    policy: Policy,
    seed: int = 0,
    test_fraction: float = 0.3,
    workers: int = 1,
) -> dict[str, Any]:
    """Novel-family leave-one-out (module docstring): per malicious group, the withheld names,
    the rescanned file count, and per mode the recall/FPR at both levels."""
    train, test = held_out_split(scan, seed, test_fraction)
    benign_test = test[scan.y[test] == 0]
    names = dangerous_names_per_file(scan, workers)
    per_group: dict[str, dict[str, Any]] = {}
    for group in sorted(set(scan.groups[scan.y == 1].tolist())):
        in_group = (scan.y == 1) & (scan.groups == group)
        withheld = frozenset().union(*(names[i] for i in np.flatnonzero(in_group)))
        novel_scan, rescanned = rescan_withholding(scan, names, withheld, workers)
        fold_train = train[~in_group[train]]
        fold_test = np.concatenate([np.flatnonzero(in_group), benign_test])
        p, a = _fit_and_score(novel_scan, fold_train, fold_test, seed)
        per_mode = verdicts(novel_scan, fold_test, p, a, policy)
        y = novel_scan.y[fold_test]
        per_group[group] = {
            "n": int(in_group.sum()),
            "n_benign": len(benign_test),
            "withheld": sorted(withheld),
            "rescanned": rescanned,
            **{m: _level_rates(per_mode[m], y) for m in MODES},
        }
    means = {
        m: {
            k: float(np.mean([row[m][k] for row in per_group.values()]))
            for k in ("recall_suspicious", "recall_malicious", "fpr_suspicious", "fpr_malicious")
        }
        for m in MODES
    }
    return {"novel_family_out": per_group, "novel_family_out_mean": means}


def benign_flagged_by_rules(scan: CorpusScan, rows: np.ndarray | None = None) -> dict[str, Any]:
    """Per benign group: files, and how many rules alone call suspicious or worse (FS103 noise)."""
    rows = np.arange(len(scan.y)) if rows is None else rows
    out: dict[str, Any] = {}
    for i in rows[scan.y[rows] == 0].tolist():
        entry = out.setdefault(str(scan.groups[i]), {"files": 0, "flagged": 0})
        entry["files"] += 1
        entry["flagged"] += int(_RANK[scan.rule_verdicts[i]] >= _RANK[SUSPICIOUS])
    return dict(sorted(out.items()))


def format_novel(report: dict[str, Any]) -> str:
    """Markdown: per group and mode, recall and benign-test FPR at suspicious / malicious, and
    the F1 of flagging (>= suspicious) on the group plus the benign test files."""
    rows = report["novel_family_out"]
    recall_heads = " | ".join(f"{m} recall (susp / mal)" for m in MODES)
    fpr_heads = " | ".join(f"{m} FPR (susp / mal)" for m in MODES)
    f1_head = "F1 at susp (" + " / ".join(MODES) + ")"
    lines = [
        "novel-family leave-one-out (the group's dangerous names withheld from the rules; "
        "model fit without the group; FPR on the held-out benign files)",
        "",
        f"| group | files | withheld names | {recall_heads} | {fpr_heads} | {f1_head} |",
        "|" + "---|" * (4 + 2 * len(MODES)),
    ]

    def pair(cell: dict[str, float], what: str) -> str:
        return f"{cell[what + '_suspicious']:.3f} / {cell[what + '_malicious']:.3f}"

    f1_sums = dict.fromkeys(MODES, 0.0)
    for group, row in rows.items():
        recalls = " | ".join(pair(row[m], "recall") for m in MODES)
        fprs = " | ".join(pair(row[m], "fpr") for m in MODES)
        f1s = [_f1(row[m]["recall_suspicious"], row[m]["fpr_suspicious"], row) for m in MODES]
        for m, f in zip(MODES, f1s, strict=True):
            f1_sums[m] += f / len(rows)
        f1 = " / ".join(f"{f:.3f}" for f in f1s)
        lines.append(
            f"| {group} | {row['n']} | {len(row['withheld'])} | {recalls} | {fprs} | {f1} |"
        )
    means = report["novel_family_out_mean"]
    recalls = " | ".join(f"**{pair(means[m], 'recall')}**" for m in MODES)
    fprs = " | ".join(pair(means[m], "fpr") for m in MODES)
    f1 = " / ".join(f"{f1_sums[m]:.3f}" for m in MODES)
    lines.append(f"| **mean** | | | {recalls} | {fprs} | **{f1}** |")
    return "\n".join(lines)


def _f1(recall: float, fpr: float, row: dict[str, Any]) -> float:
    tp, fn, fp = recall * row["n"], (1 - recall) * row["n"], fpr * row["n_benign"]
    return 2 * tp / (2 * tp + fn + fp) if tp else 0.0


def format_benign_flagged(counts: dict[str, Any]) -> str:
    lines = ["| benign group | files | rules alone >= suspicious |", "|---|---|---|"]
    for group, c in counts.items():
        lines.append(f"| {group} | {c['files']} | {c['flagged']} |")
    return "\n".join(lines)


def _jsonable(report: dict[str, Any]) -> dict[str, Any]:
    out = dict(report)
    out["held_out"] = [r.__dict__ for r in report["held_out"]]
    return out


def _training_rows(scan: corpus_scan.CorpusScan, args: argparse.Namespace) -> None:
    """The same extra training examples as `fastscan train` (unless --no-twins)."""
    add_unlisted_rows(scan, args.workers)
    if not args.no_twins:
        add_benign_twins(scan, args.workers)


def _lolo(scan: corpus_scan.CorpusScan, args: argparse.Namespace) -> dict[str, Any]:
    from .lolo import format_lolo, manifest_thresholds, run_lolo, scanner_without_index

    _training_rows(scan, args)
    try:
        shipped: Any = model_mod.load(args.model)
    except model_mod.ModelManifestError as exc:  # features changed since it was trained
        print(f"shipped model column left out: {exc}", file=sys.stderr)
        shipped = None
    report = run_lolo(
        scan,
        manifest_thresholds(args.model),
        seed=args.seed,
        shipped=shipped,
        scanner_without=scanner_without_index,  # the held-out library is unknown to the index
        only=args.libraries.split(",") if args.libraries else None,
        workers=args.workers,
        progress=lambda library: print(f"lolo: fitting without {library}", file=sys.stderr),
    )
    print(format_lolo(report))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastscan eval", description=__doc__.split("\n")[0])
    parser.add_argument("corpus", help="folder holding manifest.jsonl")
    parser.add_argument("--model", default=None, help="model name or .onnx path (default: shipped)")
    parser.add_argument("--positive", choices=(SUSPICIOUS, MALICIOUS), default=SUSPICIOUS)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--experiments", action="store_true", help="held-out + leave-one-family-out"
    )
    parser.add_argument(
        "--novel",
        action="store_true",
        help="also the novel-family leave-one-out (denylist entries withheld; implies "
        "--experiments)",
    )
    parser.add_argument(
        "--lolo",
        action="store_true",
        help="leave-one-library-out benign FPR at --model's thresholds (fastscan.train.lolo)",
    )
    parser.add_argument(
        "--libraries", default=None, help="with --lolo: only these (comma-separated) libraries"
    )
    parser.add_argument(
        "--no-twins",
        action="store_true",
        help="train without the benign unknown twins (fastscan.train.twins), for comparison",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--json", dest="json_out", help="also write the numbers to this file")
    args = parser.parse_args(argv)

    scan = corpus_scan.scan_corpus(corpus_scan.read_manifest(args.corpus), workers=args.workers)
    if args.lolo:
        payload = _lolo(scan, args)
    elif args.experiments or args.novel:
        _training_rows(scan, args)
        report = run_experiments(scan, args.seed, args.test_fraction, args.positive)
        report["benign_flagged_by_rules"] = benign_flagged_by_rules(scan)
        title = (
            f"held-out split (seed {args.seed}, {args.test_fraction:.0%} of groups; "
            f"flagged = verdict >= {args.positive}; thresholds {report['thresholds']})"
        )
        print(format_table(report["held_out"], title))
        print()
        print(format_lofo(report))
        print()
        print(format_benign_flagged(report["benign_flagged_by_rules"]))
        if args.novel:
            report.update(
                run_novel(scan, report["thresholds"], args.seed, args.test_fraction, args.workers)
            )
            print()
            print(format_novel(report))
        payload = _jsonable(report)
    else:
        m = model_mod.load(args.model)
        prob, anomaly = m.score_matrix(scan.X)
        rows = np.arange(len(scan.y))
        results = evaluate_rows(scan, rows, prob, anomaly, m.policy, positive=args.positive)
        print(
            format_table(
                results, f"{args.corpus} with {m.name} (flagged = verdict >= {args.positive})"
            )
        )
        judged = combined(scan, rows, prob, anomaly, m.policy)
        files = [
            {"path": str(scan.entries[i].path), "verdict": v, "model_findings": notes}
            for i, (v, notes) in zip(rows.tolist(), judged, strict=True)
        ]
        payload = {
            "model": m.name,
            "thresholds": m.thresholds,
            "results": [r.__dict__ for r in results],
            "files": files,
        }
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1, default=str)
    sys.stdout.flush()
    return 0
