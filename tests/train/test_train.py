"""`fastscan train` and `fastscan eval` end to end on a tiny generated corpus."""

from __future__ import annotations

import hashlib
import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")

from fastscan import features, model
from fastscan.train import corpus_scan, evaluate, fit
from fastscan.train.payloads import PAYLOADS
from fastscan.verdict import CLEAN, MALICIOUS, SUSPICIOUS

# A few payload variants per coarse family, one file each per seed.
MALICIOUS_KEYS = (
    "F:os.system", "F:subprocess.Popen", "F:os.popen", "F:builtins.eval", "F:builtins.exec",
    "F:socket.create_connection", "F:urllib.request.urlopen", "F:builtins.open",
    "F:shutil.rmtree", "F:pickle.loads", "C8", "D1", "E6", "H1", "C7",
)  # fmt: skip


def _benign_object(rng: random.Random, i: int) -> object:
    kind = i % 4
    if kind == 0:
        return {
            f"layer{j}.weight": [rng.random() for _ in range(8)] for j in range(rng.randint(1, 9))
        }
    if kind == 1:
        return np.arange(rng.randint(1, 64), dtype=np.float32)
    if kind == 2:
        return {"epoch": rng.randint(0, 99), "lr": rng.random(), "name": f"run-{i}"}
    return [rng.randint(0, 1000) for _ in range(rng.randint(0, 60))] + [f"text {i}"]


def make_corpus(root: Path, n_benign: int = 60, seeds: int = 2) -> Path:
    """Benign pickles of plain data and numpy arrays, malicious from the payload builders."""
    rng = random.Random(0)
    rows = []
    (root / "benign").mkdir(parents=True)
    for i in range(n_benign):
        rel = f"benign/b{i}.pkl"
        (root / rel).write_bytes(pickle.dumps(_benign_object(rng, i), protocol=rng.randint(2, 5)))
        rows.append({"path": rel, "label": "benign", "family": "plain", "group": "plain"})
    (root / "malicious").mkdir()
    for key in MALICIOUS_KEYS:
        for seed in range(seeds):
            sample = PAYLOADS[key](random.Random(seed))
            rel = f"malicious/{key.replace(':', '_')}-{seed}.pkl"
            (root / rel).write_bytes(sample.data)
            rows.append(
                {"path": rel, "label": "malicious", "family": key, "group": sample.family,
                 "container": "raw"}
            )  # fmt: skip
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    assert fit.main([str(corpus), "--out", str(out), "--name", "tiny", "--seed", "3"]) == 0
    return out


def test_read_manifest(corpus: Path) -> None:
    entries = corpus_scan.read_manifest(corpus)
    assert len(entries) == 60 + 2 * len(MALICIOUS_KEYS)
    assert all(e.path.is_absolute() and e.path.is_file() for e in entries)
    mal = [e for e in entries if e.label]
    assert {e.split_key for e in mal} == {f"mal:{k}" for k in MALICIOUS_KEYS}


def test_read_manifest_rejects_bad_labels(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"path": "x", "label": "evil"}) + "\n")
    with pytest.raises(ValueError, match="label"):
        corpus_scan.read_manifest(tmp_path)


def test_scan_corpus_rows_align(corpus: Path) -> None:
    entries = corpus_scan.read_manifest(corpus)[:5]
    scan = corpus_scan.scan_corpus(entries)
    assert scan.X.shape == (5, features.N_FEATURES)
    assert np.isfinite(scan.X).all()
    assert len(scan.rule_verdicts) == len(scan.statuses) == len(scan.findings) == 5
    # each row is that file's own feature vector
    from fastscan.scan import Scanner

    analysis = Scanner(model=None).analyse(str(entries[2].path), str(entries[2].path))
    assert np.array_equal(scan.X[2], features.extract(analysis.container, analysis.streams))


def test_train_writes_a_loadable_checked_model(trained: Path) -> None:
    manifest = json.loads((trained / "tiny.json").read_text())
    assert manifest["feature_names"] == list(features.FEATURE_NAMES)
    assert manifest["training"]["seed"] == 3
    assert manifest["training"]["n_malicious"] == 2 * len(MALICIOUS_KEYS)
    assert len(manifest["training"]["data_hash"]) == 64
    assert max(manifest["metrics"]["onnx_parity_max_abs_diff"].values()) < 1e-5
    for key in ("sklearn", "skl2onnx", "onnxruntime", "onnx", "numpy"):
        assert manifest["versions"][key]
    m = model.load(trained / "tiny.onnx")
    assert 0.5 <= m.thresholds["suspicious"] <= m.thresholds["malicious"]


def test_train_is_deterministic(corpus: Path, trained: Path, tmp_path: Path) -> None:
    assert fit.main([str(corpus), "--out", str(tmp_path), "--name", "tiny", "--seed", "3"]) == 0
    for name in ("tiny.onnx", "tiny.json"):
        first = hashlib.sha256((trained / name).read_bytes()).hexdigest()
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == first, name


def test_choose_thresholds_respects_target_fpr() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(1000, int), np.ones(100, int)]
    prob = np.r_[rng.random(1000) * 0.95, np.ones(100)]
    anomaly = np.r_[rng.normal(size=1000), rng.normal(3, 1, size=100)]
    t = fit.choose_thresholds(prob, anomaly, y, target_fpr=0.01, anomaly_fpr=0.01)
    assert (prob[:1000] >= t["suspicious"]).mean() <= 0.01
    assert (anomaly[:1000] >= t["anomaly"]).mean() <= 0.011
    assert 0.5 <= t["suspicious"] <= t["malicious"]


def test_eval_with_model(
    corpus: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.json"
    argv = [str(corpus), "--model", str(trained / "tiny.onnx"), "--json", str(out)]
    assert evaluate.main(argv) == 0
    printed = capsys.readouterr().out
    for mode in evaluate.MODES:
        assert mode in printed
    results = {r["mode"]: r for r in json.loads(out.read_text())["results"]}
    # combined can only add detections to the rules (G6: a model never lowers a verdict)
    assert results["combined"]["recall"] >= results["rules"]["recall"]
    assert results["combined"]["recall"] >= 0.9
    # fit on the rows a score decides (these files' unlisted twins, not what the rules flag
    # already): alone it still finds most of them
    assert results["model"]["recall"] >= 0.75
    assert results["model"]["fpr"] <= 0.05


def test_measure_counts_by_positive_level() -> None:
    y = np.array([0, 0, 1, 1])
    groups = np.array(["b", "b", "process", "exec"])
    verdicts = [CLEAN, SUSPICIOUS, SUSPICIOUS, MALICIOUS]
    loose = evaluate.measure("rules", verdicts, y, groups, SUSPICIOUS)
    assert (loose.recall, loose.fpr, loose.precision) == (1.0, 0.5, pytest.approx(2 / 3, 1e-4))
    strict = evaluate.measure("rules", verdicts, y, groups, MALICIOUS)
    assert (strict.recall, strict.fpr) == (0.5, 0.0)
    assert strict.family_recall == {"exec": (1, 1), "process": (0, 1)}


@pytest.mark.slow
def test_experiments_run(corpus: Path) -> None:
    scan = corpus_scan.scan_corpus(corpus_scan.read_manifest(corpus))
    report = evaluate.run_experiments(scan, seed=0, test_fraction=0.3)
    train_keys = set(scan.split_keys[np.setdiff1d(np.arange(len(scan.y)), _test_rows(scan))])
    assert not train_keys & set(scan.split_keys[_test_rows(scan)])
    assert set(report["leave_one_family_out"]) == set(scan.groups[scan.y == 1])
    assert {r.mode for r in report["held_out"]} == set(evaluate.MODES)
    text = evaluate.format_lofo(report)
    assert "mean" in text


def _test_rows(scan: corpus_scan.CorpusScan) -> np.ndarray:
    return evaluate.held_out_split(scan, seed=0, test_fraction=0.3)[1]


def test_classifier_rows_are_the_ones_a_score_decides() -> None:
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.array([0, 0, 0, 1, 1, 1])
    unlisted = X.copy()
    unlisted[3:] += 100  # every malicious row has a differing unlisted twin
    twins = X.copy()
    twins[:3] += 50  # every benign row has a differing benign twin
    decided = corpus_scan.Decided(
        rows=np.array([True, True, False, False, False, True]),
        unlisted=np.array([False, False, False, True, False, True]),
        twins=np.array([True, False, True, False, False, False]),
    )
    Xf, yf = fit.with_twins(X, y, unlisted, twins, decided)
    rows = {tuple(r) for r in Xf.tolist()}
    assert rows == {
        (0.0, 1.0), (2.0, 3.0), (10.0, 11.0),  # decided rows
        (106.0, 107.0), (110.0, 111.0),  # decided unlisted twins of malicious rows
        (50.0, 51.0), (54.0, 55.0),  # decided benign twins
    }  # fmt: skip
    assert yf.tolist() == [0, 0, 1, 1, 1, 0, 0]
    # without masks every row counts, as before
    assert len(fit.with_twins(X, y, unlisted, twins)[1]) == 12
