"""Small things a user hit (issue 12): missing extras, broken pipes, the output format implied by
--out, `report` on a Dask dataset folder. (`corpus|train|eval --help`: tests/cli/test_cli.py.)"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fastscan.cli import main
from fastscan.results import results_to_batch
from fastscan.sinks import format_for_path
from fastscan.verdict import FileResult

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
BENIGN = pickle.dumps({"w": [1.0, 2.0]}, protocol=4)


def _fastscan_without(module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter where importing `module` fails, as when the extra
    that provides it is not installed."""
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from fastscan.cli import main\n"
        f"raise SystemExit(main({list(argv)!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120
    )


def test_missing_s3_extra_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = str(tmp_path / "v.parquet")
    proc = _fastscan_without("s3fs", "bulk", "s3://bucket/prefix", "--out", out, "-j", "0")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "fastscan: error: reading s3:// URLs needs s3fs: pip install 'fastscan[s3]'"
    ]


def test_missing_dask_extra_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(BENIGN)
    out = str(tmp_path / "out")
    argv = ("bulk", str(tmp_path / "a.pkl"), "--out", out, "--engine", "dask", "--model", "none")
    proc = _fastscan_without("distributed", *argv)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "fastscan: error: the dask engine needs dask.distributed: pip install 'fastscan[dask]'"
    ]


def test_explain_into_head_ends_quietly(tmp_path: Path) -> None:
    big = tmp_path / "big.pkl"  # an opcode listing far larger than a pipe buffer
    big.write_bytes(pickle.dumps(list(range(30_000)), protocol=2))
    cmd = (
        f"set -o pipefail; {sys.executable} -m fastscan explain --model none --max-ops 100000 "
        f"{big} | head -1"
    )
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.stdout.count("\n") == 1
    assert proc.stderr == ""  # no "Broken pipe", no traceback
    assert proc.returncode == 141  # 128 + SIGPIPE, as any CLI in a pipe under pipefail


@pytest.mark.parametrize(
    ("out", "fmt"),
    [
        ("v.jsonl", "jsonl"),
        ("v.json", "jsonl"),
        ("v.sarif", "sarif"),
        ("v.parquet", "parquet"),
        ("verdicts/", "parquet"),
        ("-", "jsonl"),
        ("v.JSONL", "jsonl"),
    ],
)
def test_format_follows_the_out_extension(out: str, fmt: str) -> None:
    assert format_for_path(out) == fmt


def test_bulk_out_jsonl_writes_json_lines(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.pkl").write_bytes(BENIGN)
    base = ["bulk", str(tmp_path / "t"), "-j", "0", "--model", "none", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "v.jsonl")]) == 0
    (row,) = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert row["verdict"] == "clean" and row["path"].endswith("a.pkl")
    assert main([*base, "--out", str(tmp_path / "v.sarif")]) == 0
    assert json.loads((tmp_path / "v.sarif").read_text())["version"] == "2.1.0"
    # an explicit --format still wins
    assert main([*base, "--out", str(tmp_path / "x.jsonl"), "--format", "parquet"]) == 0
    assert pq.read_table(tmp_path / "x.jsonl").num_rows == 1


def test_report_reads_a_dask_dataset_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa

    from fastscan.bulkout import DatasetOutput

    out = tmp_path / "verdicts"
    writer = DatasetOutput(str(out), {"version": "9.9", "engine": "dask"})
    parts = [
        [FileResult("a.pkl"), FileResult("b.pkl", verdict="malicious")],
        [FileResult("c.pkl", status="error", verdict="suspicious", error="gone")],
    ]
    for i, rows in enumerate(parts, 1):
        writer.write(i, [pa.Table.from_batches([results_to_batch(rows)])], None)
    writer.close(complete=True)
    assert main(["report", f"{out}/"]) == 1  # b.pkl is malicious
    text = capsys.readouterr().out
    assert "(3 files)" in text and "fastscan.engine = dask" in text and "c.pkl" in text
    assert main(["report", "--fail-on", "malicious", "--strict-errors", str(out)]) == 2


def test_missing_train_extra_is_one_line_and_exit_2() -> None:
    proc = _fastscan_without("sklearn", "train", "--help")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("fastscan: error: this command needs the train extra: pip install")
