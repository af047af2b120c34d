"""One exit-code rule for every command; errors are never clean (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fastscan.cli import main
from fastscan.exitcodes import exit_code, outcomes
from fastscan.sources import discover
from fastscan.sources.ref import unreadable_result

MALICIOUS = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x12echo fastscan-test\x85R."
BENIGN = b"\x80\x04}\x94\x8c\x01a\x94K\x01s."
REPO = Path(__file__).resolve().parents[2]


def test_the_rule() -> None:
    ok = {("clean", "complete"): 2, ("clean", "unsupported"): 1}
    assert exit_code(ok) == 0
    assert exit_code({**ok, ("suspicious", "partial"): 1}) == 1
    assert exit_code({**ok, ("suspicious", "partial"): 1}, "malicious") == 0
    assert exit_code({**ok, ("malicious", "complete"): 1}, "malicious") == 1
    # an error row is suspicious (fail closed) but means "not read": exit 2, whatever fail_on
    assert exit_code({**ok, ("suspicious", "error"): 1}) == 2
    assert exit_code({**ok, ("suspicious", "error"): 1}, "malicious") == 2
    # ...unless a sink was seen before the read failed: that is a finding
    assert exit_code({("malicious", "error"): 1}) == 1
    # a finding elsewhere beats an error; strict_errors makes the error win
    mixed = {("suspicious", "error"): 1, ("malicious", "complete"): 1}
    assert exit_code(mixed) == 1 and exit_code(mixed, strict_errors=True) == 2
    assert exit_code({("suspicious", "error"): 0}) == 0  # zero counts are no rows
    assert exit_code({("weird", "complete"): 1}) == 1  # an unknown verdict is not clean
    assert exit_code(ok, stopped_by="SIGINT") == 130
    assert exit_code(ok, stopped_by="SIGPIPE") == 141
    assert exit_code(ok, stopped_by="SIGTERM") == 2
    assert exit_code(ok, stopped_by="incomplete") == 2
    with pytest.raises(ValueError):
        exit_code(ok, "sus")
    assert outcomes(["clean", "clean"], ["complete", "complete"]) == {("clean", "complete"): 2}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "ok.pkl").write_bytes(BENIGN)
    (root / "dangling.pkl").symlink_to(root / "nowhere")
    (root / "loop.pkl").symlink_to(root / "loop.pkl")
    os.mkfifo(root / "pipe")
    return root


def test_unreadable_entries_are_suspicious_fs316_rows(tree: Path) -> None:
    refs = {Path(r.path).name: r for r in discover(str(tree))}
    assert set(refs) == {"ok.pkl", "dangling.pkl", "loop.pkl", "pipe"}
    for name in ("dangling.pkl", "loop.pkl", "pipe"):
        row = unreadable_result(refs[name])
        assert (row.status, row.verdict, row.rule_ids) == ("error", "suspicious", ["FS316"])
        assert row.error and row.findings[0].message == row.error
    assert not refs["ok.pkl"].error


@pytest.mark.parametrize("workers", ["0", "1"])
def test_bulk_tree_with_errors_exits_2_and_counts_them(
    tree: Path, tmp_path: Path, workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "v.parquet"
    argv = ["bulk", str(tree), "--out", str(out), "-j", workers, "--model", "none"]
    assert main([*argv, "--no-progress"]) == 2
    rows = {Path(r["path"]).name: r for r in pq.read_table(out).to_pylist()}
    for name in ("dangling.pkl", "loop.pkl", "pipe"):
        assert rows[name]["verdict"] == "suspicious" and rows[name]["status"] == "error"
        assert rows[name]["rule_ids"] == ["FS316"]
    assert rows["ok.pkl"]["verdict"] == "clean"
    summary = capsys.readouterr().err
    assert "errors               3" in summary and "suspicious         3" in summary
    # the same tree with a malicious file: the finding wins, exit 1
    (tree / "evil.pkl").write_bytes(MALICIOUS)
    assert main([*argv, "--no-progress"]) == 1
    assert main([*argv, "--no-progress", "--strict-errors"]) == 2


def test_bulk_missing_root_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "v.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "fastscan", "bulk", str(tmp_path / "nope"), "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"fastscan: error: root does not exist or cannot be read: {tmp_path / 'nope'}"
        " (No such file or directory)"
    ]
    assert not out.exists() and not list(tmp_path.iterdir())  # no row, no spool left behind


def test_scan_and_explain_of_unreadable_input_exit_2(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("missing.pkl", "dangling.pkl", "loop.pkl", "pipe"):
        assert main(["scan", "--model", "none", str(tree / name)]) == 2, name
        assert "FS316" in capsys.readouterr().out
        assert main(["explain", "--model", "none", str(tree / name)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("fastscan: error:") and len(err.strip().splitlines()) == 1
    assert main(["scan", "--model", "none", str(tree / "ok.pkl")]) == 0


def test_report_exit_code_is_the_runs(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.parquet"
    argv = ["bulk", str(tree), "--out", str(out), "-j", "0", "--model", "none", "--no-progress"]
    assert main(argv) == 2
    assert main(["report", str(out)]) == 2
    (tree / "evil.pkl").write_bytes(MALICIOUS)
    assert main(argv) == 1
    assert main(["report", str(out)]) == 1
    assert main(["report", "--strict-errors", str(out)]) == 2
    for name in ("dangling.pkl", "loop.pkl", "pipe", "evil.pkl"):
        os.unlink(tree / name)
    assert main(argv) == 0
    assert main(["report", str(out)]) == 0


def test_report_of_an_interrupted_run_exits_2(tmp_path: Path) -> None:
    from fastscan.results import results_to_batch
    from fastscan.sinks import ParquetSink
    from fastscan.verdict import FileResult

    out = tmp_path / "v.parquet"
    sink = ParquetSink(str(out), {"complete": "false"})
    sink.write(results_to_batch([FileResult("a.pkl")]))
    sink.close()
    assert main(["report", str(out)]) == 2


def test_file_that_cannot_be_opened_is_fs316_whatever_the_policy(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins
    from dataclasses import replace

    from fastscan import containers
    from fastscan.scan import Scanner
    from fastscan.verdict import RULES_ONLY, combine

    (tree / "locked.pkl").write_bytes(BENIGN)
    real_open = builtins.open

    def deny(path: object, *a: object, **k: object) -> object:  # root ignores chmod 000
        if str(path).endswith("locked.pkl"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)  # type: ignore[call-overload]

    monkeypatch.setattr(containers, "open", deny, raising=False)
    out = tmp_path / "v.parquet"
    argv = ["bulk", str(tree), "--out", str(out), "-j", "0", "--model", "none", "--no-progress"]
    assert main(argv) == 2
    rows = {Path(r["path"]).name: r for r in pq.read_table(out).to_pylist()}
    locked = rows["locked.pkl"]
    assert (locked["status"], locked["verdict"], locked["rule_ids"]) == (
        "error",
        "suspicious",
        ["FS316"],
    )
    assert "permission denied" in locked["error"]
    # a policy that lets incomplete scans pass as clean still cannot clear an unopened file
    result = Scanner(model=None).scan_path(str(tree / "locked.pkl"))
    lenient = replace(RULES_ONLY, incomplete_verdict="clean")
    assert combine(result.findings, "error", policy=lenient)[0] == "suspicious"
    partial = [f for f in result.findings if f.rule_id != "FS316"]
    assert combine(partial, "error", policy=lenient)[0] == "clean"  # the control
