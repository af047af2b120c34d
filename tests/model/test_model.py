"""ONNX scoring: parity with scikit-learn, manifest checks, no sklearn on the scan path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastscan import features, model

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("fastscan-v1.onnx", "fastscan-v1.json")


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Count-like features; the label depends on a few columns, as dangerous counts would."""
    rng = np.random.default_rng(seed)
    X = rng.poisson(1.0, size=(n, features.N_FEATURES)).astype(np.float32)
    X[:, 5] = rng.random(n).astype(np.float32)  # a fraction-like column
    y = ((X[:, 0] + X[:, 1] > 2) | (X[:, 5] > 0.9)).astype(np.int64)
    return X, y


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, np.ndarray]:
    """A small model fitted and exported by the training code, with its sklearn estimators."""
    pytest.importorskip("sklearn")
    pytest.importorskip("skl2onnx")
    from fastscan.train import corpus_scan, fit

    X, y = _synthetic(400, seed=1)
    split_keys = np.array([str(i) for i in range(len(y))])
    fitted = fit.fit(X, y, split_keys, seed=0, n_folds=2)
    entries = [
        corpus_scan.CorpusEntry(Path(f"f{i}"), int(label), "fam", "grp", "raw")
        for i, label in enumerate(y)
    ]
    scan = corpus_scan.CorpusScan(
        entries, X, ["complete"] * len(y), [[] for _ in y], ["clean"] * len(y)
    )
    out = tmp_path_factory.mktemp("model")
    fit.write_model(fitted, scan, out, name="tiny", seed=0)
    return out / "tiny.onnx", fitted, X


def test_onnx_matches_sklearn(small_model: tuple[Path, object, np.ndarray]) -> None:
    from fastscan.train.fit import anomaly_scores

    path, fitted, X = small_model
    m = model.load(path)
    X_new, _ = _synthetic(300, seed=2)  # rows the model never saw
    for rows in (X, X_new):
        prob, anomaly = m.score_matrix(rows)
        assert prob.shape == anomaly.shape == (len(rows),)
        expected = fitted.classifier.predict_proba(rows)[:, 1]  # type: ignore[attr-defined]
        assert np.abs(prob - expected).max() < 1e-5
        expected_anomaly = anomaly_scores(fitted.anomaly, rows)  # type: ignore[attr-defined]
        assert np.abs(anomaly - expected_anomaly).max() < 1e-5


def test_score_batch_equals_score_matrix(small_model: tuple[Path, object, np.ndarray]) -> None:
    path, _, X = small_model
    m = model.load(path)
    batch = features.to_batch(X[:20], paths=[f"p{i}" for i in range(20)])
    p1, a1 = m.score(batch)
    p2, a2 = m.score_matrix(X[:20])
    assert np.array_equal(p1, p2) and np.array_equal(a1, a2)
    p0, a0 = m.score_matrix(np.zeros((0, features.N_FEATURES), np.float32))
    assert p0.shape == a0.shape == (0,)
    with pytest.raises(ValueError):
        m.score_matrix(np.zeros((2, 3), np.float32))


def test_thresholds_are_a_policy_mapping(small_model: tuple[Path, object, np.ndarray]) -> None:
    from fastscan.verdict import VerdictPolicy

    m = model.load(small_model[0])
    policy = VerdictPolicy.from_mapping(m.thresholds)
    assert 0.5 <= policy.classifier_suspicious <= policy.classifier_malicious < 1.0
    assert len(m.digest) == 64


def _copy(src: Path, dst: Path) -> tuple[Path, dict]:
    shutil.copy(src, dst / src.name)
    manifest = json.loads(src.with_suffix(".json").read_text())
    return dst / src.name, manifest


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(feature_names=m["feature_names"][::-1]), "different order"),
        (lambda m: m.update(feature_names=m["feature_names"][:-1]), "feature names differ"),
        (lambda m: m["feature_names"].__setitem__(0, "op_renamed"), "feature names differ"),
        (lambda m: m.update(feature_schema_version=999), "schema"),
        (lambda m: m.update(opcode_table_hash="0" * 16), "opcode table"),
        (lambda m: m.update(onnx_sha256="0" * 64), "onnx_sha256"),
        (lambda m: m["thresholds"].pop("anomaly"), "threshold"),
        (lambda m: m.update(format_version=99), "manifest format"),
    ],
)
def test_mismatched_manifest_is_refused(
    small_model: tuple[Path, object, np.ndarray], tmp_path: Path, edit, message: str
) -> None:
    onnx_path, manifest = _copy(small_model[0], tmp_path)
    edit(manifest)
    onnx_path.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(model.ModelManifestError, match=message):
        model.load(onnx_path)


def test_missing_model_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        model.load(tmp_path / "nothing.onnx")


def test_session_options_single_thread_no_spinning() -> None:
    opts = model.session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_scan_path_never_imports_sklearn(small_model: tuple[Path, object, np.ndarray]) -> None:
    """Importing fastscan.model and scoring must not pull scikit-learn or skl2onnx in."""
    code = f"""
import sys, pickle
from fastscan import features, model, tokenizer
from fastscan.containers import open_container
m = model.load({str(small_model[0])!r})
with open_container(pickle.dumps({{"a": 1}})) as c:
    vec = features.extract(c, [(s, tokenizer.tokenize(s.data)) for s in c.streams])
prob, anomaly = m.score(features.to_batch([vec]))
assert prob.shape == (1,)
bad = sorted(k for k in sys.modules if k.split(".")[0] in ("sklearn", "skl2onnx", "onnx"))
print(",".join(bad))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "", f"scan path imported {out.stdout.strip()}"


def test_shipped_model_has_one_home() -> None:
    """models/ is where `make model` trains to; the package folder is a link to it, not a copy
    (a copy drifts), and the wheel's package data follows the link."""
    assert all((REPO / "models" / name).is_file() for name in SHIPPED)
    link = REPO / "fastscan" / "models"
    assert link.is_symlink() and link.resolve() == (REPO / "models").resolve()
    assert all((model.MODELS_DIR / name).is_file() for name in SHIPPED)


def test_shipped_model_loads_and_separates() -> None:
    import pickle
    import random

    from fastscan.rules import default_ruleset
    from fastscan.scan import Scanner
    from fastscan.train.payloads import PAYLOADS

    # the classifier is fit on what a score decides (verdict.score_decides): a runner the
    # denylist does not know, applied to a command, against plain data
    unlisted = default_ruleset().withholding(frozenset({"os.system", "posix.system"}))
    scanner = Scanner(model=None, rules=unlisted)
    malicious = PAYLOADS["F:os.system"](random.Random(0)).data
    benign = pickle.dumps({"weights": [0.5] * 10, "name": "layer"}, protocol=4)
    rows = []
    for data in (malicious, benign):
        analysis = scanner.analyse(data, "x.pkl")
        rows.append(features.extract(analysis.container, analysis.streams, unlisted))
    m = model.default_model()
    prob, _anomaly = m.score(features.to_batch(rows))
    assert prob[0] >= m.thresholds["suspicious"] > prob[1]


@pytest.mark.parametrize("position", ["start", "middle", "end"])
def test_benign_padding_does_not_lower_the_verdict(position: str) -> None:
    """docs/threats.md G6 / issue #4: wrapping a payload in benign tensors must not make it look
    safer."""
    import pickle
    import random

    from fastscan.scan import Scanner
    from fastscan.train import wrappers
    from fastscan.train.payloads import INJECTABLE, PAYLOADS, as_snippet
    from fastscan.verdict import VERDICTS

    scanner = Scanner(model=model.default_model())
    rank = {v: i for i, v in enumerate(VERDICTS)}
    for key in INJECTABLE[::12]:
        sample = PAYLOADS[key](random.Random(1))
        bare = scanner.scan_bytes(sample.data, "bare.pkl")
        snippet = as_snippet(sample.data)
        for n_tensors in (5, 400):
            rng = np.random.default_rng(n_tensors)
            tensors = {f"layer{i}.weight": rng.random(16, np.float32) for i in range(n_tensors)}
            padding = pickle.dumps(tensors, protocol=2)
            padded = scanner.scan_bytes(wrappers.inject(padding, snippet, position), "p.pkl")
            assert rank[padded.verdict] >= rank[bare.verdict], (key, n_tensors, padded.reasons)


def test_classifier_is_monotone_in_counts(small_model: tuple[Path, object, np.ndarray]) -> None:
    """Raising any count never lowers p_malicious; padding-shifted features are ignored."""
    from fastscan.train.fit import classifier_constraints

    path, _, X = small_model
    m = model.load(path)
    blind, monotone = classifier_constraints()
    base, _ = m.score_matrix(X[:50])
    for name in ("op_global", "op_reduce", "call_to_unknown", "glob_dangerous", "ghash_07"):
        column = features.FEATURE_NAMES.index(name)
        assert monotone[column] == 1
        raised = X[:50].copy()
        raised[:, column] += 7
        assert (m.score_matrix(raised)[0] >= base - 1e-6).all()
    shifted = X[:50].copy()
    shifted[:, blind] = 123.0
    assert np.array_equal(m.score_matrix(shifted)[0], base)
