"""Benign unknown twins (fastscan/train/twins.py): every benign file of an indexed library also
trains as the scanner sees it with that library left out of the ecosystem index."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from fastscan import features
from fastscan.train import corpus, lolo, twins
from fastscan.train import fit as fit_mod
from fastscan.train.withhold import add_unlisted_rows

# malicious variants and benign sources whose names the shipped index knows (networkx, sympy)
_FAMILIES = [
    *("F:os.system", "F:subprocess.Popen", "F:builtins.eval", "C8", "D1"),
    *("plain_python", "numpy_npy", "sklearn_pickle", "custom_config", "networkx", "sympy"),
]
_KNOW = [i for i, n in enumerate(features.FEATURE_NAMES) if n.startswith("know_")]
_POLICY: dict[str, Any] = {
    "suspicious": 0.5,
    "malicious": 0.9,
    "anomaly": 10.0,
    "anomaly_needs_classifier": 0.1,
    "unknown_benign": 0.5,
    "incomplete_verdict": "suspicious",
}


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> fit_mod.CorpusScan:
    root = tmp_path_factory.mktemp("twins")
    corpus.generate(root, seed=3, scale="small", families=_FAMILIES)
    out = fit_mod.scan_corpus(fit_mod.read_manifest(root))
    add_unlisted_rows(out)
    rescanned = twins.add_benign_twins(out)
    assert rescanned > 0
    return out


def test_every_benign_row_of_an_indexed_library_has_its_twin(scan: fit_mod.CorpusScan) -> None:
    assert scan.X_twin is not None and scan.X_twin.shape == scan.X.shape
    groups = lolo.libraries(scan)
    indexed = twins.indexed_libraries(list(groups))
    assert {"networkx", "sympy", "numpy"} <= indexed and "user-code" not in indexed
    assert set(scan.library_views) == indexed
    for lib, view in scan.library_views.items():
        assert view.rows.tolist() == groups[lib].tolist()
        assert np.array_equal(scan.X_twin[view.rows], view.X)
        assert len(view.findings) == len(view.statuses) == len(view.rule_verdicts) == len(view.rows)
    # rows of no indexed library (malicious files, user code) are their own twin
    others = np.setdiff1d(np.arange(len(scan.y)), np.concatenate(list(groups.values())))
    others = np.concatenate([others, groups["user-code"]])
    assert np.array_equal(scan.X_twin[others], scan.X[others])
    # the index knew some unlisted names of these libraries: their twins differ
    differ = (scan.X_twin != scan.X).any(axis=1)
    assert differ[groups["networkx"]].any() and differ[groups["sympy"]].any()


def test_a_twin_differs_only_in_what_the_index_knows(scan: fit_mod.CorpusScan) -> None:
    assert scan.X_twin is not None
    changed = np.flatnonzero((scan.X_twin != scan.X).any(axis=0))
    assert changed.size and set(changed.tolist()) <= set(_KNOW)
    differ = (scan.X_twin != scan.X).any(axis=1)
    unknown = features.FEATURE_NAMES.index("know_unknown")
    # names the index knew are unknown in the twin: never fewer unknown names, none known
    assert (scan.X_twin[differ, unknown] > scan.X[differ, unknown]).all()
    for name in ("know_inert", "know_gadget", "know_gadget_calls"):
        assert (scan.X_twin[differ, features.FEATURE_NAMES.index(name)] == 0).all()


def test_twins_train_as_benign_and_only_when_they_differ(scan: fit_mod.CorpusScan) -> None:
    assert scan.X_twin is not None and scan.X_unlisted is not None
    X, y = fit_mod.with_twins(scan.X, scan.y, scan.X_unlisted, scan.X_twin)
    assert X.shape == (len(y), scan.X.shape[1])
    n_unlisted = int(((scan.y == 1) & (scan.X_unlisted != scan.X).any(axis=1)).sum())
    n_twins = int(((scan.y == 0) & (scan.X_twin != scan.X).any(axis=1)).sum())
    assert n_twins > 0 and len(y) == len(scan.y) + n_unlisted + n_twins
    assert (y[len(scan.y) + n_unlisted :] == 0).all()
    assert (y[len(scan.y) : len(scan.y) + n_unlisted] == 1).all()
    same_X, same_y = fit_mod.with_twins(scan.X, scan.y, None, scan.X)  # no differing twin
    assert np.array_equal(same_X, scan.X) and np.array_equal(same_y, scan.y)


def test_lolo_holds_out_the_library_with_its_twins_and_reuses_the_rescan(
    scan: fit_mod.CorpusScan, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int]] = []
    real_fit = lolo.fit_classifier

    def spy(X: np.ndarray, y: np.ndarray, seed: int, unlisted: Any = None, **kw: Any) -> Any:
        seen.append((len(y), len(kw["twins"])))
        return real_fit(X, y, seed, unlisted, **kw)

    def no_rescan(libraries: frozenset[str]) -> Any:
        raise AssertionError("the twins' rescan is the held-out view")

    monkeypatch.setattr(lolo, "fit_classifier", spy)
    monkeypatch.setattr(lolo, "scanner_without_index", no_rescan)
    rows = lolo.libraries(scan)["sympy"]
    # run_lolo reuses the view only for the scanner the twins were made with
    report = lolo.run_lolo(scan, _POLICY, only=["sympy"], scanner_without=no_rescan)
    assert seen == [(len(scan.y) - len(rows), len(scan.y) - len(rows))]
    view = scan.library_views["sympy"]
    assert report["libraries"]["sympy"]["files"] == len(view.rows)


def test_twins_keep_the_classifier_monotone_in_counts(scan: fit_mod.CorpusScan) -> None:
    """Padding a payload with benign content never lowers its score, twins or not."""
    assert scan.X_twin is not None
    clf = fit_mod.fit_classifier(scan.X, scan.y, 0, scan.X_unlisted, twins=scan.X_twin)
    _blind, monotone = fit_mod.classifier_constraints()
    assert list(clf.monotonic_cst) == monotone.tolist()
    malicious = scan.X[scan.y == 1]
    counts = np.flatnonzero(monotone == 1)
    rng = np.random.default_rng(0)
    padded = malicious + rng.integers(0, 5, size=malicious.shape) * (monotone == 1)
    assert counts.size and (padded[:, counts] >= malicious[:, counts]).all()
    before = clf.predict_proba(malicious)[:, 1]
    after = clf.predict_proba(padded.astype(np.float32))[:, 1]
    assert (after >= before - 1e-9).all()


def test_unknown_benign_cut_counts_the_judgeable_twins(scan: fit_mod.CorpusScan) -> None:
    judgeable = twins.judgeable_twins(scan)
    rows = fit_mod.judgeable_rows(scan)
    assert judgeable.shape == rows.shape and judgeable.dtype == bool
    viewed = np.concatenate([v.rows for v in scan.library_views.values()])
    outside = np.setdiff1d(np.arange(len(rows)), viewed)
    assert np.array_equal(judgeable[outside], rows[outside])
    # 200 benign judgeable rows at 0.1; twins of unindexed libraries score higher
    y = np.zeros(200, dtype=np.int64)
    prob = np.full(200, 0.1)
    alone = fit_mod.choose_thresholds(prob, np.zeros(200), y, 0.005, judgeable=y == 0)
    with_twins = fit_mod.choose_thresholds(
        prob, np.zeros(200), y, 0.005, judgeable=y == 0, judged_twins=np.full(100, 0.3)
    )
    assert alone["unknown_benign"] == pytest.approx(0.100001, abs=1e-6)
    assert with_twins["unknown_benign"] == pytest.approx(0.300001, abs=1e-6)
