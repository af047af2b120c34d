"""report: text and HTML summaries of a verdicts Parquet, output comparison, progress output."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from fastscan.findings import Finding, Severity
from fastscan.progress import LogProgress, NoProgress, make_progress
from fastscan.report import compare_outputs
from fastscan.reportcmd import render_report
from fastscan.results import results_to_batch
from fastscan.sinks import ParquetSink
from fastscan.verdict import FileResult


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


# -- grouped flagged files, banner, charts, JSON/CSV -------------------------------------------


def copies_corpus() -> list[FileResult]:
    evil = [Finding("FS102", Severity.MALICIOUS, "os.system called", "data.pkl", 36, "os.system")]
    out = [
        FileResult(path=f"mirror/m{i}/model.pt", size=99, verdict="malicious", findings=evil)
        for i in range(25)
    ]  # 25 copies of one file: one group, not 20 rows of the same thing
    out.append(
        FileResult(
            path="mirror/other.pkl",
            size=7,
            verdict="suspicious",
            findings=[Finding("FS103", Severity.SUSPICIOUS, "mylab.X", subject="mylab.X")],
        )
    )
    out += [FileResult(path=f"mirror/ok{i}.bin", format="raw_pickle") for i in range(3)]
    return out


def write_meta(path: Path, results: list[FileResult], **meta: str) -> str:
    sink = ParquetSink(str(path), {"version": "0.1.0", "model": "fastscan-v1", **meta})
    sink.write(results_to_batch(results))
    sink.close()
    return str(path)


def test_flagged_files_are_grouped_by_content(tmp_path: Path):
    from fastscan.report import collect_report

    data = collect_report(write_meta(tmp_path / "r.parquet", copies_corpus()), top=20)
    assert (data.flagged_files, data.flagged_groups) == (26, 2)
    first = data.flagged[0]
    assert first["verdict"] == "malicious" and len(first["paths"]) == 25
    assert data.top_rules[0] == ("FS102", 25, "dangerous global called")  # titles beside ids
    assert data.banner == ""


def test_hash_groups_beat_size_and_findings(tmp_path: Path):
    from fastscan.report import collect_report

    rows = copies_corpus()
    rows[0].sha256, rows[1].sha256 = "a" * 64, "b" * 64  # same findings, different content
    data = collect_report(write_meta(tmp_path / "r.parquet", rows))
    assert data.flagged_groups == 4


def test_html_report_charts_banner_and_metadata(tmp_path: Path):
    from fastscan.report import collect_report
    from fastscan.report_html import render_html

    parquet = write_meta(
        tmp_path / "r.parquet",
        copies_corpus(),
        root="/data/mirror",
        started="2026-12-06T06:00:00+00:00",
        complete="false",
        since="old.parquet",
        carried="12",
    )
    page = render_html(collect_report(parquet))
    assert page.count("<svg") == 4 and "<rect" in page  # verdicts, status, formats, rules
    assert 'class="banner"' in page and "INTERRUPTED" in page and "INCREMENTAL" in page
    assert "/data/mirror" in page and "2026-12-06T06:00:00+00:00" in page
    assert "dangerous global called" in page
    assert "… and 15 more" in page  # 25 copies, 10 paths listed
    assert "<script" not in page and "http://" not in page.replace("https://", "")


def test_report_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    import csv
    import json

    from fastscan.cli import main

    parquet = write_meta(tmp_path / "r.parquet", copies_corpus())
    assert main(["report", "--format", "json", parquet]) == 1  # flagged rows: exit 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["rows"] == 29 and doc["flagged_groups"] == 2
    assert main(["report", "--format", "csv", parquet]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 29 and rows[0]["rule_ids"] == "FS102"


def chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="no headless chromium installed")
def test_html_report_renders_in_a_headless_browser(tmp_path: Path):
    """The page as a browser lays it out: charts drawn, banner shown, nothing fetched."""
    import subprocess

    html_path = tmp_path / "report.html"
    parquet = write_meta(tmp_path / "r.parquet", copies_corpus(), complete="false", root="/m")
    render_report(parquet, html_path=str(html_path))
    browser = [
        str(chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    dom = subprocess.run(
        [*browser, "--dump-dom", html_path.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert dom.count("<svg") == 4 and "INTERRUPTED" in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [*browser, f"--screenshot={shot}", "--window-size=1200,1400", html_path.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def test_report_reads_a_dataset_directory(tmp_path: Path):
    (tmp_path / "verdicts").mkdir()
    write_meta(tmp_path / "verdicts" / "part-0.parquet", copies_corpus(), root="/m")
    text = render_report(str(tmp_path / "verdicts"))
    assert "(29 files)" in text and "fastscan.root = /m" in text
