"""`explain` and `scan_bytes` go through the one composition (`Scanner.prepare` + `score`): a
file the stages cannot get through is an error row, explained, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastscan import scan
from fastscan.cli import main
from fastscan.scan import Scanner

MALICIOUS = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x12echo fastscan-test\x85R."


def _tokenizer_breaks(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """Stands for hostile bytes that trip a stage: the tokenizer raises on this input."""

    def broken(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(scan, "tokenize", broken)


def test_explain_source_matches_prepare_and_score(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(MALICIOUS)
    scanner = Scanner(model=None)
    analysis, explained = scanner.explain_source(str(path), str(path), keep_data=1 << 10)
    assert analysis is not None and analysis.data == {"": MALICIOUS}
    (batched,), _ = scanner.scan_refs([str(path)])
    for field in ("verdict", "status", "findings", "globals", "bytes_read", "size", "format"):
        assert getattr(explained, field) == getattr(batched, field), field
    from_bytes = scanner.scan_bytes(MALICIOUS, "x.pkl")
    assert (from_bytes.verdict, from_bytes.rule_ids) == (batched.verdict, batched.rule_ids)
    assert from_bytes.size == len(MALICIOUS) and from_bytes.path == "x.pkl"


def test_a_stage_that_raises_is_an_error_row(monkeypatch: pytest.MonkeyPatch) -> None:
    _tokenizer_breaks(monkeypatch, ValueError("hostile operand"))
    scanner = Scanner(model=None)
    analysis, result = scanner.explain_source(MALICIOUS, "x.pkl", keep_data=1 << 10)
    assert analysis is None
    assert (result.status, result.verdict) == ("error", "suspicious")
    assert result.error == "internal error: ValueError: hostile operand"
    row = scanner.scan_bytes(MALICIOUS, "x.pkl")
    assert (row.status, row.verdict, row.path) == ("error", "suspicious", "x.pkl")


def test_memory_exhaustion_is_the_budget_row(monkeypatch: pytest.MonkeyPatch) -> None:
    _tokenizer_breaks(monkeypatch, MemoryError())
    analysis, result = Scanner(model=None).explain_source(MALICIOUS, "x.pkl")
    assert analysis is None
    assert (result.status, result.verdict) == ("partial", "suspicious")
    assert scan.out_of_memory(result)


def test_explain_command_prints_the_error_row(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(MALICIOUS)
    _tokenizer_breaks(monkeypatch, ValueError("hostile operand"))
    assert main(["explain", "--model", "none", str(path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"file:     {path}"
    assert "status:   error — internal error: ValueError: hostile operand" in out
    assert "verdict:  SUSPICIOUS  score=n/a anomaly=n/a" in out
    assert not any(line.startswith("format:") for line in out)  # nothing was read


def test_explain_says_when_the_rules_decide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the classifier is fit where its score decides: beside a rule verdict its low score is no
    # opinion, and explain says so; on a file the rules leave open it says nothing
    note = "(the rules decide this file; the classifier may raise it, never lower it)"
    sink = tmp_path / "sink.pkl"
    sink.write_bytes(b"cposix\nsystem\n(S'echo hi'\ntR.")
    assert main(["explain", str(sink)]) == 1
    assert note in capsys.readouterr().out
    user = tmp_path / "user.pkl"
    user.write_bytes(b"\x80\x04\x8c\x0bacme_models\x8c\x03Net\x93)\x81.")
    main(["explain", str(user)])
    assert note not in capsys.readouterr().out
