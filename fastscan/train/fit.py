"""`fastscan train CORPUS`: scan a labelled corpus, fit the classifier and the anomaly model,
export both to one ONNX file, choose thresholds and write the manifest.

    fastscan train corpus/ --out models --name fastscan-v1 --seed 0 [--workers 2]

The corpus is a folder with `manifest.jsonl` (format in `fastscan.train.evaluate`). Every file
is scanned by the production pipeline (`fastscan.scan.Scanner(model=None)`), so the model sees
exactly the features the scanner computes. Then:
- a HistGradientBoostingClassifier (NaN-free input, fast in ONNX Runtime, STACK.md §3) learns
  benign vs malicious; an IsolationForest is fit on benign rows only;
- thresholds come from out-of-fold probabilities (folds keep all files of one payload variant
  on one side, see `CorpusEntry.split_key`): `suspicious` is the lowest value >= 0.5 that keeps
  the benign false-positive rate under `--target-fpr`; `anomaly` is the benign out-of-fold
  anomaly quantile at `1 - --anomaly-fpr`;
- both models go into one ONNX graph (input `features`, outputs `p_malicious`, `anomaly`),
  checked against scikit-learn within 1e-5 on every training row before anything is written.
Everything is deterministic for a seed: no clocks or hostnames enter the outputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import skl2onnx
import sklearn
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from .. import features, model
from ..opcodes import table_hash
from ..verdict import CLEAN, FileResult, Finding

TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}
PARITY_TOLERANCE = 1e-5
DEFAULT_TARGET_FPR = 0.002
DEFAULT_ANOMALY_FPR = 0.001
DEFAULT_FOLDS = 3


# -- the labelled corpus ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorpusEntry:
    path: Path  # absolute
    label: int  # 1 malicious, 0 benign
    family: str  # payload variant ("F:os.system", "C7") or benign source ("torch_state_dict")
    group: str  # coarse family ("process", "exec", …; benign: "torch", "numpy", …)
    container: str

    @property
    def split_key(self) -> str:
        """Rows sharing a key stay on one side of every split: all files of one payload variant
        (whatever the container or seed); benign files are independent samples."""
        return f"mal:{self.family}" if self.label else f"benign:{self.path}"


def read_manifest(corpus: str | os.PathLike[str]) -> list[CorpusEntry]:
    """Entries of `<corpus>/manifest.jsonl` (paths relative to the corpus folder)."""
    root = Path(corpus)
    entries = []
    lines = (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = json.loads(line)
        label = row.get("label")
        if label not in ("benign", "malicious"):
            raise ValueError(f"manifest.jsonl:{number}: label must be benign|malicious")
        path = Path(row["path"])
        entries.append(
            CorpusEntry(
                path=path if path.is_absolute() else root / path,
                label=int(label == "malicious"),
                family=str(row.get("family") or row["path"]),
                group=str(row.get("group") or ("benign" if label == "benign" else "unknown")),
                container=str(row.get("container", "")),
            )
        )
    if not entries:
        raise ValueError(f"{root / 'manifest.jsonl'} lists no files")
    return entries


@dataclass
class CorpusScan:
    """Features and rule results for every corpus entry, in manifest order."""

    entries: list[CorpusEntry]
    X: np.ndarray  # (n, N_FEATURES) float32
    statuses: list[str]
    findings: list[list[Finding]]
    rule_verdicts: list[str]  # rules alone (Scanner without a model)
    y: np.ndarray = field(init=False)
    split_keys: np.ndarray = field(init=False)  # CorpusEntry.split_key
    groups: np.ndarray = field(init=False)  # coarse family, the unit of leave-one-family-out

    def __post_init__(self) -> None:
        self.y = np.array([e.label for e in self.entries], dtype=np.int64)
        self.split_keys = np.array([e.split_key for e in self.entries])
        self.groups = np.array([e.group for e in self.entries])

    def data_hash(self) -> str:
        """Digest of what the model learns from: features, labels and groups."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.X).tobytes())
        digest.update(self.y.tobytes())
        digest.update("\n".join(self.split_keys.tolist()).encode())
        return digest.hexdigest()


_WORKER_SCANNER: Any = None


def _scan_chunk(paths: list[str]) -> tuple[list[FileResult], np.ndarray]:
    """Worker: scan paths with a rules-only Scanner; rows are aligned with `paths`."""
    global _WORKER_SCANNER
    if _WORKER_SCANNER is None:
        from ..scan import Scanner  # noqa: PLC0415 (scan imports the whole pipeline)

        _WORKER_SCANNER = Scanner(model=None)
    results, batch = _WORKER_SCANNER.scan_refs(paths, with_features=True)
    rows = np.zeros((len(paths), features.N_FEATURES), dtype=np.float32)
    if batch is not None and batch.num_rows:
        # files whose scan raised have no feature row: they keep the all-zero (error) row
        index = {p: i for i, p in enumerate(paths)}
        matrix = features.batch_to_matrix(batch)
        for j, p in enumerate(batch.column("path").to_pylist()):
            rows[index[p]] = matrix[j]
    return results, rows


def scan_corpus(entries: Sequence[CorpusEntry], workers: int = 1, chunk: int = 64) -> CorpusScan:
    """Scan every entry with the production pipeline (rules only) and keep its features."""
    paths = [str(e.path) for e in entries]
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_scan_chunk, chunks))
    else:
        parts = [_scan_chunk(c) for c in chunks]
    results = [r for rs, _ in parts for r in rs]
    X = np.vstack([rows for _, rows in parts]) if parts else np.zeros((0, features.N_FEATURES))
    return CorpusScan(
        entries=list(entries),
        X=np.ascontiguousarray(X, dtype=np.float32),
        statuses=[r.status for r in results],
        findings=[[f for f in r.findings if not f.rule_id.startswith("FS9")] for r in results],
        rule_verdicts=[r.verdict for r in results],
    )


# -- fitting ------------------------------------------------------------------------------------


@dataclass
class Fitted:
    classifier: HistGradientBoostingClassifier
    anomaly: IsolationForest
    thresholds: dict[str, float]
    metrics: dict[str, Any]


def make_classifier(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=10,
        l2_regularization=1.0,
        class_weight="balanced",  # the corpus ratio is a generator setting, not a prior
        early_stopping=False,  # deterministic iteration count
        random_state=seed,
    )


def make_anomaly_model(seed: int, n_benign: int) -> IsolationForest:
    return IsolationForest(
        n_estimators=100, max_samples=min(256, max(n_benign, 2)), random_state=seed
    )


def anomaly_scores(iso: IsolationForest, X: np.ndarray) -> np.ndarray:
    """Higher = more unusual (the negated decision function); the ONNX graph matches this."""
    return np.asarray(-iso.decision_function(X), dtype=np.float64)


def _folds(y: np.ndarray, groups: np.ndarray, seed: int, n_folds: int) -> list[Any]:
    n_splits = min(n_folds, int(np.bincount(y, minlength=2).min()), len(set(groups.tolist())))
    if n_splits < 2:
        return []
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def out_of_fold(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int, n_folds: int = DEFAULT_FOLDS
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold (probability, anomaly) for every row; NaN where a row was never held out."""
    prob = np.full(len(y), np.nan)
    anomaly = np.full(len(y), np.nan)
    for train, test in _folds(y, groups, seed, n_folds):
        clf = make_classifier(seed).fit(X[train], y[train])
        prob[test] = clf.predict_proba(X[test])[:, 1]
        benign = train[y[train] == 0]
        iso = make_anomaly_model(seed, len(benign)).fit(X[benign])
        anomaly[test] = anomaly_scores(iso, X[test])
    return prob, anomaly


def choose_thresholds(
    prob: np.ndarray,
    anomaly: np.ndarray,
    y: np.ndarray,
    target_fpr: float = DEFAULT_TARGET_FPR,
    anomaly_fpr: float = DEFAULT_ANOMALY_FPR,
) -> dict[str, float]:
    """Thresholds from held-out scores of benign rows (see the module docstring)."""
    benign_prob = prob[(y == 0) & ~np.isnan(prob)]
    benign_anomaly = anomaly[(y == 0) & ~np.isnan(anomaly)]
    suspicious = 0.5
    if len(benign_prob):
        # the smallest cut with at most target_fpr of benign rows at or above it
        allowed = int(np.floor(target_fpr * len(benign_prob)))
        ranked = np.sort(benign_prob)[::-1]
        if allowed < len(ranked):
            suspicious = max(suspicious, float(np.nextafter(ranked[allowed], np.inf)))
    suspicious = min(suspicious, 0.99)
    anomaly_cut = (
        float(np.quantile(benign_anomaly, 1 - anomaly_fpr)) if len(benign_anomaly) else 1.0
    )
    return {  # rounded up, so a rounded cut never flags more benign rows than the exact one
        "suspicious": _round_up(suspicious),
        "malicious": _round_up(max(0.9, suspicious)),
        "anomaly": _round_up(max(anomaly_cut, 0.0) + 1e-6),
    }


def _round_up(value: float, digits: int = 6) -> float:
    scale = 10**digits
    return math.ceil(value * scale) / scale


def _rates(flagged: np.ndarray, y: np.ndarray) -> dict[str, float]:
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    tn = int((~flagged & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "fpr": round(fp / (fp + tn) if fp + tn else 0.0, 6),
    }


def fit(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    seed: int = 0,
    n_folds: int = DEFAULT_FOLDS,
    target_fpr: float = DEFAULT_TARGET_FPR,
    anomaly_fpr: float = DEFAULT_ANOMALY_FPR,
) -> Fitted:
    """Fit both models on all rows; thresholds and metrics from out-of-fold scores."""
    if not np.isfinite(X).all():
        raise ValueError("features contain NaN or inf")
    if len(set(y.tolist())) != 2:
        raise ValueError("the corpus needs both benign and malicious files")
    # One OpenMP thread: on shared cores HGB's spinning threads are ~15x slower, not faster.
    with threadpool_limits(limits=1):
        return _fit(
            X, y, groups, seed=seed, n_folds=n_folds, target_fpr=target_fpr, anomaly_fpr=anomaly_fpr
        )


def _fit(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    seed: int,
    n_folds: int,
    target_fpr: float,
    anomaly_fpr: float,
) -> Fitted:
    prob, anomaly = out_of_fold(X, y, groups, seed, n_folds)
    thresholds = choose_thresholds(prob, anomaly, y, target_fpr, anomaly_fpr)
    held = ~np.isnan(prob)
    metrics: dict[str, Any] = {"out_of_fold_rows": int(held.sum())}
    if held.any():
        metrics["out_of_fold_at_suspicious"] = _rates(
            prob[held] >= thresholds["suspicious"], y[held]
        )
    classifier = make_classifier(seed).fit(X, y)
    benign = X[y == 0]
    iso = make_anomaly_model(seed, len(benign)).fit(benign)
    return Fitted(classifier, iso, thresholds, metrics)


# -- ONNX export --------------------------------------------------------------------------------


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in [*graph.input, *graph.output]:
        if value.name == old:
            value.name = new


def export_onnx(fitted: Fitted, n_features: int = features.N_FEATURES) -> onnx.ModelProto:
    """One graph: input `features` -> `p_malicious` (n,) and `anomaly` (n,)."""
    sample = np.zeros((1, n_features), dtype=np.float32)
    clf = to_onnx(
        fitted.classifier,
        sample,
        options={id(fitted.classifier): {"zipmap": False}},
        target_opset=TARGET_OPSET,
        model_optim=False,  # its identity-removal pass is quadratic: seconds on a forest
    )
    iso = to_onnx(fitted.anomaly, sample, target_opset=TARGET_OPSET, model_optim=False)
    iso = onnx.compose.add_prefix(iso, "iso_")
    (clf_in,) = clf.graph.input
    (iso_in,) = iso.graph.input
    _rename(clf.graph, clf_in.name, model.INPUT_NAME)
    _rename(iso.graph, iso_in.name, model.INPUT_NAME)
    probabilities = next(o.name for o in clf.graph.output if o.name != "label")
    iso_scores = next(o.name for o in iso.graph.output if o.name.endswith("scores"))

    index_one = helper.make_tensor("fs_index_one", TensorProto.INT64, [], [1])
    flat = helper.make_tensor("fs_flat_shape", TensorProto.INT64, [1], [-1])
    tail = [
        helper.make_node(
            "Gather", [probabilities, "fs_index_one"], [model.OUTPUT_PROBABILITY], axis=1
        ),
        helper.make_node("Neg", [iso_scores], ["fs_neg_scores"]),
        helper.make_node("Reshape", ["fs_neg_scores", "fs_flat_shape"], [model.OUTPUT_ANOMALY]),
    ]
    graph = helper.make_graph(
        [*clf.graph.node, *iso.graph.node, *tail],
        "fastscan",
        [helper.make_tensor_value_info(model.INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        [
            helper.make_tensor_value_info(model.OUTPUT_PROBABILITY, TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info(model.OUTPUT_ANOMALY, TensorProto.FLOAT, [None]),
        ],
        initializer=[*clf.graph.initializer, *iso.graph.initializer, index_one, flat],
    )
    opsets: dict[str, int] = {}
    for imp in [*clf.opset_import, *iso.opset_import]:
        opsets[imp.domain] = max(opsets.get(imp.domain, 0), imp.version)
    merged = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        producer_name="fastscan",
        ir_version=clf.ir_version,
    )
    onnx.checker.check_model(merged)
    return merged


def check_parity(onnx_bytes: bytes, fitted: Fitted, X: np.ndarray) -> dict[str, float]:
    """Max abs difference ONNX Runtime vs scikit-learn; raises above PARITY_TOLERANCE."""
    session = onnxruntime.InferenceSession(
        onnx_bytes, sess_options=model.session_options(), providers=["CPUExecutionProvider"]
    )
    x = np.ascontiguousarray(X, dtype=np.float32)
    prob, anomaly = session.run(
        [model.OUTPUT_PROBABILITY, model.OUTPUT_ANOMALY], {model.INPUT_NAME: x}
    )
    diff_prob = float(np.abs(prob - fitted.classifier.predict_proba(x)[:, 1]).max(initial=0.0))
    diff_anomaly = float(np.abs(anomaly - anomaly_scores(fitted.anomaly, x)).max(initial=0.0))
    if max(diff_prob, diff_anomaly) > PARITY_TOLERANCE:
        raise RuntimeError(
            f"ONNX and scikit-learn disagree: probability {diff_prob:.2e}, "
            f"anomaly {diff_anomaly:.2e} (tolerance {PARITY_TOLERANCE})"
        )
    return {"probability": diff_prob, "anomaly": diff_anomaly}


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def write_model(
    fitted: Fitted,
    scan: CorpusScan,
    out_dir: str | os.PathLike[str],
    *,
    name: str,
    seed: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export, check parity on the training rows, write `<name>.onnx` and `<name>.json`."""
    onnx_bytes = export_onnx(fitted).SerializeToString()
    parity = check_parity(onnx_bytes, fitted, scan.X)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / f"{name}.onnx"
    onnx_path.write_bytes(onnx_bytes)
    families = sorted({e.group for e in scan.entries if e.label == 1})
    manifest: dict[str, Any] = {
        "name": name,
        "format_version": model.MANIFEST_FORMAT_VERSION,
        "feature_schema_version": features.FEATURE_SCHEMA_VERSION,
        "feature_names": list(features.FEATURE_NAMES),
        "opcode_table_hash": table_hash(),
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "inputs": {model.INPUT_NAME: ["n", features.N_FEATURES]},
        "outputs": {
            model.OUTPUT_PROBABILITY: "classifier probability of malicious",
            model.OUTPUT_ANOMALY: "IsolationForest (benign only) anomaly, higher = more unusual",
        },
        "thresholds": fitted.thresholds,
        "training": {
            "data_hash": scan.data_hash(),
            "seed": seed,
            "n_files": len(scan.entries),
            "n_benign": int((scan.y == 0).sum()),
            "n_malicious": int((scan.y == 1).sum()),
            "families": families,
            "classifier": _params(fitted.classifier),
            "anomaly_model": _params(fitted.anomaly),
            **(extra or {}),
        },
        "metrics": {**fitted.metrics, "onnx_parity_max_abs_diff": parity},
        "versions": versions(),
    }
    manifest_path = out / f"{name}.json"
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", "utf-8")
    return manifest


def _params(estimator: Any) -> dict[str, Any]:
    keep = (str, int, float, bool, type(None))
    params = {k: v for k, v in sorted(estimator.get_params().items()) if isinstance(v, keep)}
    return {"class": type(estimator).__name__, **params}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastscan train", description=__doc__.split("\n")[0])
    parser.add_argument("corpus", help="folder holding manifest.jsonl")
    parser.add_argument("--out", default="models", help="output folder (default: models)")
    parser.add_argument("--name", default=model.DEFAULT_NAME)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="scan processes")
    parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS)
    parser.add_argument("--target-fpr", type=float, default=DEFAULT_TARGET_FPR)
    parser.add_argument("--anomaly-fpr", type=float, default=DEFAULT_ANOMALY_FPR)
    args = parser.parse_args(argv)

    entries = read_manifest(args.corpus)
    print(f"scanning {len(entries)} files…", file=sys.stderr)
    scan = scan_corpus(entries, workers=args.workers)
    fitted = fit(
        scan.X,
        scan.y,
        scan.split_keys,
        seed=args.seed,
        n_folds=args.folds,
        target_fpr=args.target_fpr,
        anomaly_fpr=args.anomaly_fpr,
    )
    rules_flagged = np.array([v != CLEAN for v in scan.rule_verdicts])
    fitted.metrics["rules_alone_on_training_corpus"] = _rates(rules_flagged, scan.y)
    manifest = write_model(fitted, scan, args.out, name=args.name, seed=args.seed)
    print(
        json.dumps(
            {
                "model": str(Path(args.out) / f"{args.name}.onnx"),
                "thresholds": manifest["thresholds"],
                "metrics": manifest["metrics"],
            },
            indent=1,
        )
    )
    return 0
