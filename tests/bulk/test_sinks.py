"""sinks: the result schema, round trips, and each writer's output shape."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastscan.findings import Finding, Severity
from fastscan.results import (
    RESULT_SCHEMA,
    SchemaMismatch,
    batch_to_results,
    comparable,
    conform_batch,
    conform_table,
    results_to_batch,
)
from fastscan.sinks import ConsoleSink, JsonLinesSink, ParquetSink, open_sink
from fastscan.verdict import FileResult

REQUIRED = [
    *("path", "size", "mtime", "etag", "format", "extension", "status", "verdict", "score"),
    *("anomaly_score", "rule_ids", "reasons", "globals", "members_scanned", "pickles"),
    *("bytes_read", "error", "scan_seconds", "findings"),
]


def sample() -> list[FileResult]:
    evil = FileResult(
        path="m/evil.pt",
        size=123,
        mtime=1700000000.25,
        format="torch_zip",
        extension=".pt",
        verdict="malicious",
        score=0.97,
        anomaly_score=0.5,
        findings=[
            Finding(
                "FS101",
                Severity.MALICIOUS,
                "imports os.system",
                "archive/data.pkl",
                42,
                "os.system",
            ),
            Finding("FS205", Severity.LOW, "odd <memo> use", "archive/data.pkl", 7),
        ],
        globals=["os.system", "torch._utils._rebuild_tensor_v2"],
        members_scanned=3,
        pickles=1,
        bytes_read=100,
        scan_seconds=0.01,
    )
    clean = FileResult(path="m/ok.bin", size=5, mtime=1.0, format="raw_pickle", extension=".bin")
    broken = FileResult(path="m/pipe", status="error", error="not a regular file: fifo")
    return [evil, clean, broken]


def test_schema_has_every_contract_column():
    assert all(name in RESULT_SCHEMA.names for name in REQUIRED)
    finding_fields = RESULT_SCHEMA.field("findings").type.value_type
    assert [f.name for f in finding_fields] == [
        "rule_id",
        "severity",
        "message",
        "member",
        "offset",
        "subject",
        "suppressed",
    ]


def test_round_trip_through_parquet(tmp_path: Path):
    results = sample()
    batch = results_to_batch(results)
    assert batch.schema.equals(RESULT_SCHEMA)
    assert batch.column("rule_ids").to_pylist()[0] == ["FS101", "FS205"]
    assert batch.column("reasons").to_pylist()[0][0].startswith("FS101 malicious")
    path = tmp_path / "r.parquet"
    sink = ParquetSink(str(path), {"version": "9.9", "rules_hash": "abc", "model": "m1"})
    sink.write(batch)
    sink.close()
    pf = pq.ParquetFile(path)
    meta = pf.schema_arrow.metadata
    assert meta[b"fastscan.version"] == b"9.9"
    assert meta[b"fastscan.rules_hash"] == b"abc"
    assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
    back = batch_to_results(conform_table(pf.read()))
    for a, b in zip(results, back, strict=True):
        assert a.findings == b.findings
        assert (a.path, a.size, a.mtime, a.status, a.verdict, a.globals) == (
            b.path,
            b.size,
            b.mtime,
            b.status,
            b.verdict,
            b.globals,
        )
        assert a.score == b.score or (math.isnan(a.score) and math.isnan(b.score))


def test_mismatched_batch_never_reaches_the_writer(tmp_path: Path):
    path = tmp_path / "r.parquet"
    sink = ParquetSink(str(path))
    sink.write(results_to_batch(sample()))
    bad = pa.RecordBatch.from_pydict({"path": ["x"], "size": [1]})
    with pytest.raises(SchemaMismatch):
        sink.write(bad)
    sink.close()
    assert pq.read_table(path).num_rows == 3  # the file stays valid


def test_castable_batch_is_cast():
    batch = results_to_batch(sample())
    narrow = batch.set_column(1, pa.field("size", pa.int32()), batch.column(1).cast(pa.int32()))
    assert conform_batch(narrow).schema.equals(RESULT_SCHEMA)


def test_conform_table_fills_missing_columns():
    old = pa.table({"path": ["a"], "verdict": ["clean"], "extra": [1]})
    table = conform_table(old)
    assert table.schema.equals(RESULT_SCHEMA)
    assert table.column("size").to_pylist() == [None]


def test_jsonl_one_object_per_file_and_nan_is_null():
    out = io.StringIO()
    sink = JsonLinesSink(out)
    sink.write(results_to_batch(sample()))
    sink.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    first, second = json.loads(lines[0]), json.loads(lines[1])
    assert first["findings"][0]["offset"] == 42
    assert second["score"] is None


def test_console_lists_flagged_and_errors_only():
    out = io.StringIO()
    sink = ConsoleSink(out)
    sink.write(results_to_batch(sample()))
    sink.close()
    text = out.getvalue()
    assert "m/evil.pt" in text and "m/pipe" in text and "m/ok.bin" not in text
    assert text.startswith("VERDICT")


def test_open_sink_checks_arguments(tmp_path: Path):
    with pytest.raises(ValueError, match="path"):
        open_sink("parquet")
    with pytest.raises(ValueError, match="stream"):
        open_sink("jsonl")
    with pytest.raises(ValueError, match="unknown format"):
        open_sink("xml", stream=io.StringIO())


def test_comparable_ignores_timing_and_nan():
    a = pa.Table.from_batches([results_to_batch(sample())])
    later = sample()
    for r in later:
        r.scan_seconds += 5
    b = pa.Table.from_batches([results_to_batch(later)])
    assert not a.equals(b)
    assert comparable(a).equals(comparable(b))
    changed = sample()
    changed[1].verdict = "suspicious"
    assert not comparable(a).equals(comparable(pa.Table.from_batches([results_to_batch(changed)])))
