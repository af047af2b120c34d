"""One verdict policy: the model manifest's thresholds are its only source. A copy of the shipped
model whose manifest holds distinctive values for every VerdictPolicy field is run through each
entry point (API, CLI, bulk with worker processes, Dask, eval); every field must show up in what
each of them reports (findings name the thresholds they crossed; an encrypted file gets the
manifest's incomplete-scan verdict)."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import fastscan
from fastscan import model
from fastscan.cli import main as cli_main
from fastscan.scan import Scanner
from fastscan.train import evaluate
from fastscan.verdict import CLEAN, VerdictPolicy

# A user's own class (unlisted: FS103, settleable), a sink payload, an encrypted 7z.
USER = b"\x80\x04\x8c\x0bacme_models\x8c\x03Net\x93)\x81}\x8c\x01w\x8c\x01x\x86b."
# an unlisted function applied to a command: what the classifier decides (verdict.score_decides
# aside from its FS112; a listed sink is the rules' to judge and scores near 0)
BAD = b"cmylib.shell\nrun\n(S'echo fastscan > /tmp/fastscan-policy'\ntR."


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("policy-files")
    (root / "user.pkl").write_bytes(USER)
    (root / "bad.pkl").write_bytes(BAD)
    py7zr = pytest.importorskip("py7zr")
    buf = io.BytesIO()  # encrypted and nothing else to say (a zip would add FS301)
    with py7zr.SevenZipFile(buf, "w", password="pw") as archive:
        archive.writestr(pickle.dumps({"a": 1}), "a.pkl")
    (root / "enc.7z").write_bytes(buf.getvalue())
    labels = {"user.pkl": "benign", "bad.pkl": "malicious", "enc.7z": "benign"}
    with (root / "manifest.jsonl").open("w") as fh:  # for `fastscan eval`; bulk skips it
        for name, label in labels.items():
            fh.write(json.dumps({"path": name, "label": label, "family": name}) + "\n")
    return root


@pytest.fixture(scope="module")
def policy_model(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The shipped model with a manifest of distinctive thresholds, placed around its scores."""
    shipped = model.load(None)
    scores = {
        name: Scanner(model=shipped).scan_path(tree / name).score
        for name in ("user.pkl", "bad.pkl", "enc.7z")
    }
    p_user, p_bad = scores["user.pkl"], scores["bad.pkl"]
    assert p_bad > 0.5 > p_user, scores  # the fixture needs a confident model
    unknown_benign = p_user + 0.0001234  # the user file is settled (FS903 names this cut)
    thresholds = {
        "suspicious": max(unknown_benign, 0.4123457),
        "malicious": round(p_bad - 0.0012345, 7),  # the payload gets FS901 naming both cuts
        "anomaly": -3.217,  # every scored file gets FS902 naming it
        "anomaly_needs_classifier": 0.9987654,  # FS902 is recorded only, and names this
        "unknown_benign": unknown_benign,
        "incomplete_verdict": CLEAN,  # the encrypted file is clean
    }
    for name in ("user.pkl", "enc.7z"):  # their FS902 must stay a note, not a verdict
        assert scores[name] < thresholds["suspicious"], scores
    out = tmp_path_factory.mktemp("policy-model")
    onnx = out / "policy.onnx"
    shutil.copyfile(shipped.path, onnx)
    manifest = {**shipped.manifest, "name": "policy", "thresholds": thresholds}
    (out / "policy.json").write_text(json.dumps(manifest))
    assert model.load(onnx).policy == VerdictPolicy.from_mapping(thresholds)
    return onnx, thresholds


def _check(rows: dict[str, tuple[str, list[str]]], thresholds: dict[str, Any], where: str) -> None:
    """rows: file name -> (verdict, reasons/messages)."""
    user_verdict, user = rows["user.pkl"]
    _, bad = rows["bad.pkl"]
    enc_verdict, _ = rows["enc.7z"]
    text = {name: "\n".join(reasons) for name, (_, reasons) in rows.items()}
    fmt = {k: f"{v:.6g}" for k, v in thresholds.items() if k != "incomplete_verdict"}
    assert f"< {fmt['unknown_benign']}" in text["user.pkl"], (where, user)
    assert user_verdict == CLEAN, (where, user)
    assert f"suspicious at {fmt['suspicious']}" in text["bad.pkl"], (where, bad)
    assert f"malicious at {fmt['malicious']}" in text["bad.pkl"], (where, bad)
    for name in ("user.pkl", "bad.pkl"):
        assert f">= {fmt['anomaly']}" in text[name], (where, name, rows[name])
        assert f"{fmt['anomaly_needs_classifier']}" in text[name], (where, name, rows[name])
    assert enc_verdict == thresholds["incomplete_verdict"], (where, rows["enc.7z"])


def _from_table(path: Path) -> dict[str, tuple[str, list[str]]]:
    table = pq.read_table(path) if path.is_file() else pq.ParquetDataset(path).read()
    return {
        Path(row["path"]).name: (row["verdict"], list(row["reasons"]))
        for row in table.select(["path", "verdict", "reasons"]).to_pylist()
    }


def _files(tree: Path) -> list[Path]:
    return [tree / n for n in ("user.pkl", "bad.pkl", "enc.7z")]


def test_api(tree: Path, policy_model: tuple[Path, dict]) -> None:
    onnx, thresholds = policy_model
    by_path = {p.name: fastscan.scan_path(str(p), model=str(onnx)) for p in _files(tree)}
    _check({n: (r.verdict, r.reasons) for n, r in by_path.items()}, thresholds, "scan_path")
    by_bytes = {
        p.name: fastscan.scan_bytes(p.read_bytes(), p.name, model=str(onnx)) for p in _files(tree)
    }
    _check({n: (r.verdict, r.reasons) for n, r in by_bytes.items()}, thresholds, "scan_bytes")


def test_cli(
    tree: Path, policy_model: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    onnx, thresholds = policy_model
    cli_main(["scan", "--format", "jsonl", "--model", str(onnx), *map(str, _files(tree))])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    got = {
        Path(r["path"]).name: (r["verdict"], [f["message"] for f in r["findings"]]) for r in rows
    }
    _check(got, thresholds, "cli scan")


def test_bulk_worker_processes(tree: Path, policy_model: tuple[Path, dict], tmp_path: Path) -> None:
    onnx, thresholds = policy_model
    out = tmp_path / "bulk.parquet"
    args = ["--workers", "1", "--model", str(onnx), "--no-progress", "--exclude", "manifest.jsonl"]
    cli_main(["bulk", str(tree), "--out", str(out), *args])
    _check(_from_table(out), thresholds, "bulk")


def test_dask(
    tree: Path, policy_model: tuple[Path, dict], tmp_path: Path, dask_scheduler: str
) -> None:
    from fastscan.bulk import run_bulk

    onnx, thresholds = policy_model
    out = tmp_path / "dataset"
    run_bulk(
        str(tree),
        engine="dask",
        out=str(out),
        scheduler=dask_scheduler,
        exclude=["manifest.jsonl"],
        progress=False,
        scanner_options={"model": str(onnx)},
    )
    _check(_from_table(out), thresholds, "dask")


def test_eval(tree: Path, policy_model: tuple[Path, dict], tmp_path: Path) -> None:
    onnx, thresholds = policy_model
    out = tmp_path / "eval.json"
    evaluate.main([str(tree), "--model", str(onnx), "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["thresholds"] == thresholds
    got = {Path(f["path"]).name: (f["verdict"], f["model_findings"]) for f in report["files"]}
    _check(got, thresholds, "eval")


def test_every_field_is_required_in_a_manifest(policy_model: tuple[Path, dict]) -> None:
    onnx, thresholds = policy_model
    manifest = json.loads(onnx.with_suffix(".json").read_text())
    for key in thresholds:
        broken = {**manifest, "thresholds": {k: v for k, v in thresholds.items() if k != key}}
        with pytest.raises(model.ModelManifestError, match=key):
            model.check_manifest(broken)
