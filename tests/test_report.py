"""report: text and HTML summaries of a verdicts Parquet, output comparison, progress output."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from fastscan.progress import LogProgress, NoProgress, make_progress
from fastscan.report import compare_outputs, render_report
from fastscan.sinks import ParquetSink, results_to_batch
from fastscan.verdict import FileResult, Finding, Severity


def write(path: Path, results: list[FileResult]) -> str:
    sink = ParquetSink(str(path), {"version": "0.1.0", "model": "fastscan-v1"})
    sink.write(results_to_batch(results))
    sink.close()
    return str(path)


def corpus() -> list[FileResult]:
    out = [
        FileResult(path=f"m/ok{i}.pt", size=10, format="torch_zip", scan_seconds=0.001 * i)
        for i in range(5)
    ]
    out.append(
        FileResult(
            path="m/<script>alert(1)</script>.pkl",
            format="raw_pickle",
            verdict="malicious",
            score=0.99,
            findings=[
                Finding("FS101", Severity.MALICIOUS, "imports os.system & co", subject="os.system")
            ],
            scan_seconds=2.5,
        )
    )
    out.append(
        FileResult(
            path="m/odd.bin",
            format="raw_pickle",
            verdict="suspicious",
            score=0.6,
            findings=[
                Finding("FS101", Severity.SUSPICIOUS, "x"),
                Finding("FS210", Severity.SUSPICIOUS, "y"),
            ],
        )
    )
    out.append(FileResult(path="m/pipe", status="error", error="not a regular file: fifo"))
    return out


def test_text_report_sections(tmp_path: Path):
    text = render_report(write(tmp_path / "r.parquet", corpus()), top=3)
    assert "(8 files)" in text
    assert "fastscan.model = fastscan-v1" in text
    verdicts = text.split("Verdicts")[1].split("Status")[0]
    assert re.search(r"clean\s+6", verdicts) and re.search(r"malicious\s+1", verdicts)
    top_findings = text.split("Top findings")[1].split("Flagged files")[0]
    assert top_findings.index("FS101") < top_findings.index("FS210")
    flagged = text.split("Flagged files")[1].split("Slowest files")[0]
    assert flagged.index("malicious") < flagged.index("suspicious")
    slowest = text.split("Slowest files")[1].split("Errors")[0]
    assert "2.500" in slowest
    assert "not a regular file: fifo" in text.split("Errors")[1]


def test_html_report_is_standalone_and_escaped(tmp_path: Path):
    html_path = tmp_path / "r.html"
    render_report(write(tmp_path / "r.parquet", corpus()), html_path=str(html_path))
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "os.system &amp; co" in page
    assert "http://" not in page.replace("https://", "") and "<link" not in page


def test_compare_outputs(tmp_path: Path):
    a = write(tmp_path / "a.parquet", corpus())
    slower = corpus()
    for r in slower:
        r.scan_seconds += 1
    b = write(tmp_path / "b.parquet", slower)
    assert compare_outputs(a, b) == []
    other = corpus()
    other[0].verdict = "suspicious"
    assert compare_outputs(a, write(tmp_path / "c.parquet", other)) == ["column verdict differs"]


def test_progress_modes(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert isinstance(make_progress(False, 1, 1), NoProgress)
    assert isinstance(make_progress(None, 1, 1, io.StringIO()), LogProgress)  # not a TTY
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert isinstance(make_progress(None, 1, 1, io.StringIO()), NoProgress)


def test_log_progress_line_is_quiet_and_informative():
    stream = io.StringIO()
    log = LogProgress(10, 1000, stream, interval=3600)
    log.update(4, 400, 1, 0)
    assert stream.getvalue() == ""  # nothing before the interval
    line = log.line()
    assert line.startswith("fastscan: 4/10 files") and "flagged 1" in line and "ETA" in line
    eager = LogProgress(10, 1000, stream, interval=0)
    eager.update(1, 10, 0, 1)
    assert "errors 1" in stream.getvalue()
