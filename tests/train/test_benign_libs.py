"""Benign breadth (benign_libs) and leave-one-library-out (train/lolo.py).

Sources whose library is not installed skip (the `corpus` extra installs all of them). The
generated benign files are our own, built from synthetic data; they are only scanned here.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from fastscan.scan import Scanner
from fastscan.train import benign_libs, corpus, corpus_scan, lolo
from fastscan.train.benign_libs._base import LibSource, dump

NAMES = sorted(benign_libs.SOURCES)

# every field a manifest's policy has (one verdict policy: nothing defaults)
_POLICY = {
    "suspicious": 0.5,
    "malicious": 0.9,
    "anomaly": 0.2,
    "anomaly_needs_classifier": 0.1,
    "unknown_benign": 0.5,
    "incomplete_verdict": "suspicious",
}


def test_registry_spans_forty_libraries() -> None:
    libraries = {s.library for s in benign_libs.SOURCES.values()}
    assert len(libraries) >= 45, sorted(libraries)
    assert all(s.imports for s in benign_libs.SOURCES.values())
    assert set(benign_libs.SOURCES) >= benign_libs.ENCRYPTED


@pytest.mark.parametrize("name", NAMES)
def test_source_writes_files_the_scanner_reads_whole(name: str) -> None:
    src = benign_libs.SOURCES[name]
    if src.missing():
        pytest.skip(f"{src.library} not installed: {src.missing()}")
    scanner = Scanner(model=None)
    for index in range(2):
        data, ext = src.fn(random.Random(f"test|{name}|{index}"), "small")
        assert data and ext.startswith(".")
        result = scanner.scan_bytes(data, f"x{ext}")
        if name in benign_libs.ENCRYPTED:
            assert result.status in ("encrypted", "partial"), result.status
        else:
            assert result.status == "complete", (result.status, result.findings)


def test_dump_falls_back_to_a_protocol_the_object_accepts() -> None:
    class Slotted:
        __slots__ = ("x",)

        def __reduce__(self) -> Any:
            raise TypeError("no")

    with pytest.raises(RuntimeError, match="no protocol"):
        dump(Slotted(), random.Random(0))
    protos = {dump({"a": b"x"}, random.Random(s))[0][:2] for s in range(30)}
    assert b"\x80\x02" in protos and any(p[:1] != b"\x80" for p in protos)  # 0/1 have no PROTO


def test_missing_library_is_skipped_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(rng: random.Random, scale: str) -> tuple[bytes, str]:
        raise AssertionError("a skipped source must not run")

    def broken(rng: random.Random, scale: str) -> tuple[bytes, str]:
        raise ValueError("boom")

    fake = {
        "ghost_objects": LibSource("ghost_objects", "ghost-lib", never, ("fastscan_no_such_mod",)),
        "broken_objects": LibSource("broken_objects", "broken-lib", broken, ("json",)),
        "stdlib_objects": benign_libs.SOURCES["stdlib_objects"],
    }
    monkeypatch.setattr(benign_libs, "SOURCES", fake)
    manifest = corpus.generate(tmp_path, seed=0, scale="small", families=["benign_libs"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped_not_installed"] == {"ghost_objects": ["fastscan_no_such_mod"]}
    assert summary["failed"] == {"broken_objects": "ValueError: boom"}
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert rows and {r["library"] for r in rows} == {"python-stdlib"}
    assert summary["benign_files_per_library"] == {"python-stdlib": len(rows)}
    assert all(r["path"].startswith("benign/lib/python-stdlib/") for r in rows)


def test_every_benign_row_names_its_library(tmp_path: Path) -> None:
    families = ["plain_python", "numpy_npy", "custom_config", "git_lfs_pointer", "pyarrow"]
    manifest = corpus.generate(tmp_path, seed=0, scale="small", families=families)
    libs = {json.loads(line)["family"]: json.loads(line).get("library")
            for line in manifest.read_text().splitlines()}  # fmt: skip
    assert libs["plain_python"] == "python-stdlib" and libs["numpy_npy"] == "numpy"
    assert libs["custom_config"] == "user-code"
    assert libs["git_lfs_pointer"] is None  # not a pickle: nothing to leave out
    if not benign_libs.SOURCES["pyarrow_objects"].missing():
        assert libs["pyarrow_objects"] == "pyarrow"
    entries = corpus_scan.read_manifest(tmp_path)
    assert {e.library for e in entries if e.family == "numpy_npy"} == {"numpy"}


def test_encrypted_archives_are_opt_in(tmp_path: Path) -> None:
    pytest.importorskip("py7zr")
    manifest = corpus.generate(tmp_path / "a", seed=0, scale="small", families=["benign_libs"])
    assert "aes_no_pickle" not in manifest.read_text()
    manifest = corpus.generate(tmp_path / "b", seed=0, scale="small", families=["py7zr",
                               "encrypted_archives"])  # fmt: skip
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert rows and {r["expected"] for r in rows} == {"encrypted"}


# -- leave-one-library-out ------------------------------------------------------------------------

_TINY = [
    *("F:os.system", "F:subprocess.Popen", "F:builtins.eval", "C8", "D1"),
    *("plain_python", "numpy_npy", "sklearn_pickle", "custom_config", "networkx", "sympy"),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> corpus_scan.CorpusScan:
    root = tmp_path_factory.mktemp("lolo")
    corpus.generate(root, seed=2, scale="small", families=_TINY)
    return corpus_scan.scan_corpus(corpus_scan.read_manifest(root))


def test_lolo_withholds_exactly_the_library(
    tiny: corpus_scan.CorpusScan, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_fit = lolo.fit_classifier

    def spy(X: np.ndarray, y: np.ndarray, seed: int, unlisted: Any = None, **kw: Any) -> Any:
        seen.append(len(y))
        return real_fit(X, y, seed, unlisted, **kw)

    monkeypatch.setattr(lolo, "fit_classifier", spy)
    groups = lolo.libraries(tiny)
    assert {"python-stdlib", "numpy", "scikit-learn", "user-code"} <= set(groups)
    assert all((tiny.y[rows] == 0).all() for rows in groups.values())
    thresholds = {**_POLICY, "anomaly": 10.0}
    report = lolo.run_lolo(tiny, thresholds, only=["numpy", "user-code"])
    assert list(report["libraries"]) == ["numpy", "user-code"]
    assert seen == [len(tiny.y) - len(groups["numpy"]), len(tiny.y) - len(groups["user-code"])]
    user = report["libraries"]["user-code"]
    assert user["files"] == len(groups["user-code"])
    assert user["rules"]["fpr_suspicious"] == 1.0  # unlisted user classes: FS103 by design
    for row in report["libraries"].values():
        for mode in ("rules", "combined"):
            assert 0.0 <= row[mode]["fpr_malicious"] <= row[mode]["fpr_suspicious"] <= 1.0
    summary = report["summary"]["combined"]["fpr_suspicious"]
    values = [r["combined"]["fpr_suspicious"] for r in report["libraries"].values()]
    assert summary["mean"] == pytest.approx(np.mean(values)) and summary["worst"] == max(values)
    table = lolo.format_lolo(report)
    assert "| numpy |" in table and "**mean**" in table and "**worst**" in table


def test_lolo_rescans_with_the_scanner_that_lacks_the_library(tiny: corpus_scan.CorpusScan) -> None:
    """The index hook: held-out files are judged by `scanner_without({library})`."""
    asked: list[frozenset[str]] = []

    def scanner_without(libraries: frozenset[str]) -> Scanner:
        asked.append(libraries)
        # stands in for an index without the library: a stricter scanner
        return Scanner(model=None, strict_unknown=True)

    thresholds = {**_POLICY, "anomaly": 10.0}
    report = lolo.run_lolo(tiny, thresholds, only=["numpy"], scanner_without=scanner_without)
    assert asked == [frozenset({"numpy"})]
    assert report["libraries"]["numpy"]["rules"]["fpr_suspicious"] == 0.0


def test_cli_lolo(
    tiny: corpus_scan.CorpusScan, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastscan.train import evaluate

    root = tiny.entries[0].path.parent
    while not (root / "manifest.jsonl").exists():
        root = root.parent
    out = tmp_path / "lolo.json"
    argv = [str(root), "--lolo", "--libraries", "numpy,user-code", "--json", str(out)]
    assert evaluate.main(argv) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert set(report["libraries"]) == {"numpy", "user-code"}
    assert report["thresholds"] == lolo.manifest_thresholds(None)
    assert "leave-one-library-out" in printed
    assert "| user-code |" in printed and "**mean**" in printed


def _build(out: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(Path(__file__).parents[2])}
    command = [sys.executable, "-m", "fastscan.train.corpus", str(out), "--families", "benign_libs"]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {r["path"]: r["sha256"] for r in rows if r["family"] not in benign_libs.STAMPED}


@pytest.mark.slow
def test_benign_libs_are_byte_identical_across_processes(tmp_path: Path) -> None:
    """Outside STAMPED (wall-clock stamps, random salts), a seed fixes every file's bytes."""
    first, second = _build(tmp_path / "a"), _build(tmp_path / "b")
    assert first and first == second


def test_lolo_in_parallel_equals_sequential(tiny: corpus_scan.CorpusScan) -> None:
    thresholds = {**_POLICY, "anomaly": 0.2}
    only = ["numpy", "user-code", "python-stdlib"]
    one = lolo.run_lolo(tiny, thresholds, only=only)
    two = lolo.run_lolo(tiny, thresholds, only=only, workers=2)
    assert one == two and set(one["libraries"]) == set(only)


def test_lolo_judges_a_library_with_the_index_not_knowing_it() -> None:
    from fastscan.rules.indexed import shipped_index

    if shipped_index() is None:
        pytest.skip("no shipped index")
    scanner = lolo.scanner_without_index(frozenset({"scikit-learn", "python-stdlib"}))
    index = scanner.rules.index
    assert not index.has_module("sklearn.linear_model") and not index.has_module("json")
    assert index.has_module("numpy")
    assert scanner.model is None
