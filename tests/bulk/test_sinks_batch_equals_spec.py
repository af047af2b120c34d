"""Result batches built from numpy buffers (`results.results_to_batch`, `features.to_batch`)
against the pyarrow.array construction they replace: same arrays, same errors, no pandas import.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastscan import features
from fastscan import results as result_rows
from fastscan.findings import Finding, Severity
from fastscan.verdict import FileResult

# -- result batches without pyarrow.array --------------------------------------------------------


def _reference_batch(results: list[FileResult]) -> pa.RecordBatch:
    """The pyarrow.array construction results_to_batch replaced."""
    columns: dict[str, list[Any]] = {
        n: [getattr(r, n) for r in results] for n in result_rows._SCALAR_FIELDS
    }
    columns["rule_ids"] = [r.rule_ids for r in results]
    columns["reasons"] = [r.reasons for r in results]
    columns["globals"] = [list(r.globals) for r in results]
    columns["findings"] = [[result_rows._finding_to_dict(f) for f in r.findings] for r in results]
    arrays = [pa.array(columns[f.name], type=f.type) for f in result_rows.RESULT_SCHEMA]
    return pa.RecordBatch.from_arrays(arrays, schema=result_rows.RESULT_SCHEMA)


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_findings = st.builds(
    Finding,
    rule_id=st.sampled_from(["FS101", "FS103", "FS206", "FS903"]),
    severity=st.sampled_from(list(Severity)),
    message=_text,
    member=_text,
    offset=st.integers(-1, 2**63 - 1),
    subject=_text,
)
_results = st.builds(
    FileResult,
    path=_text,
    size=st.integers(-(2**63), 2**63 - 1),
    mtime=st.one_of(st.floats(), st.integers(-(2**53), 2**53)),
    etag=_text,
    format=st.sampled_from(["torch_zip", "raw_pickle", "unknown"]),
    status=st.sampled_from(["complete", "partial", "error"]),
    verdict=st.sampled_from(["clean", "suspicious", "malicious"]),
    score=st.floats(),
    anomaly_score=st.floats(),
    findings=st.lists(_findings, max_size=4),
    globals=st.lists(_text, max_size=4),
    members_scanned=st.integers(0, 10),
    error=_text,
    hf_repo=st.one_of(st.none(), _text),
    hf_revision=st.one_of(st.none(), _text),
)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(_results, max_size=6))
def test_results_to_batch_equals_pyarrow_array(results: list[FileResult]) -> None:
    got = result_rows.results_to_batch(results)
    want = _reference_batch(results)
    assert got.schema == want.schema
    assert _ipc(got) == _ipc(want)  # bit for bit, NaN scores included (equals says NaN != NaN)
    for name in got.schema.names:
        assert got.column(name).null_count == want.column(name).null_count


def _ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write(batch)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize(
    "odd",
    [
        {"size": None},  # not an int: pyarrow.array decides (a null)
        {"size": np.int64(5)},
        {"mtime": 2**60},  # not exactly a float64
        {"hf_repo": 5},
        {"members_scanned": True},
        {"globals": ("a.b", "c.d")},
    ],
)
def test_unexpected_values_go_through_pyarrow(odd: dict[str, Any]) -> None:
    result = FileResult("p")
    for key, value in odd.items():
        setattr(result, key, value)
    try:
        want: pa.RecordBatch | type[BaseException] = _reference_batch([result])
    except Exception as exc:
        want = type(exc)
    if isinstance(want, pa.RecordBatch):
        assert _ipc(result_rows.results_to_batch([result])) == _ipc(want)
    else:
        with pytest.raises(want):
            result_rows.results_to_batch([result])


@pytest.mark.parametrize("field", ["path", "message"])
def test_unencodable_strings_raise_as_before(field: str) -> None:
    result = FileResult("p\udcff" if field == "path" else "p")
    if field == "message":
        result.findings = [Finding("FS101", Severity.LOW, "m\udcff")]
    with pytest.raises(UnicodeEncodeError):
        _reference_batch([result])
    with pytest.raises(UnicodeEncodeError):
        result_rows.results_to_batch([result])


_NO_PANDAS_SNIPPETS = {
    "result batches": (
        "from fastscan import results\n"
        "from fastscan.findings import Finding, Severity\n"
        "from fastscan.verdict import FileResult\n"
        "r = FileResult('p', findings=[Finding('FS101', Severity.MALICIOUS, 'm')], globals=['a'])\n"
        "results.results_to_batch([r, FileResult('q', hf_repo='o/n')])\n"
        "results.empty_batch()\n"
    ),
    "feature batches with paths": (
        "import numpy as np\n"
        "from fastscan import features\n"
        "rows = np.zeros((2, features.N_FEATURES), dtype=np.float32)\n"
        "batch = features.to_batch(rows, paths=['a.pt', 'b/\\u00e9.bin'])\n"
        "assert batch.column(0).to_pylist() == ['a.pt', 'b/\\u00e9.bin']\n"
    ),
}


@pytest.mark.parametrize("what", sorted(_NO_PANDAS_SNIPPETS))
def test_building_batches_does_not_import_pandas(what: str) -> None:
    code = "import sys\n" + _NO_PANDAS_SNIPPETS[what] + "print('pandas' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("paths", [[], ["a.pt"], ["x/\u00e9\u4e2d.bin", "", "s3://b/k.ckpt"]])
def test_feature_batch_path_column_equals_pyarrow_array(paths: list[str]) -> None:
    rows = np.arange(len(paths) * features.N_FEATURES, dtype=np.float32)
    batch = features.to_batch(rows.reshape(len(paths), features.N_FEATURES), paths=paths)
    assert batch.schema == features.ARROW_SCHEMA_WITH_PATH
    assert batch.column(0).equals(pa.array(paths, type=pa.string()))


def test_feature_batch_unencodable_path_raises_as_before() -> None:
    rows = np.zeros((1, features.N_FEATURES), dtype=np.float32)
    with pytest.raises(UnicodeEncodeError):
        pa.array(["p\udcff"], type=pa.string())
    with pytest.raises(UnicodeEncodeError):
        features.to_batch(rows, paths=["p\udcff"])
