"""The result row as Arrow: one schema, record batches to and from `FileResult`, and reading a
previous verdicts Parquet back (for `--since`/`--resume` and `report`).

Every writer (sinks.py, sarif.py) and every reader (sources' incremental reuse, report) meets
here, so discovery never has to import the output stage.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from .findings import Finding, Severity
from .verdict import FileResult

FINDING_TYPE = pa.struct(
    [
        ("rule_id", pa.string()),
        ("severity", pa.string()),  # Severity name, lower case
        ("message", pa.string()),
        ("member", pa.string()),
        ("offset", pa.int64()),
        ("subject", pa.string()),
        ("suppressed", pa.string()),  # "" or the user suppression that matched (audit trail)
    ]
)

RESULT_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime", pa.float64()),
        ("etag", pa.string()),
        ("format", pa.string()),
        ("extension", pa.string()),
        ("status", pa.string()),
        ("verdict", pa.string()),
        ("score", pa.float64()),
        ("anomaly_score", pa.float64()),
        ("rule_ids", pa.list_(pa.string())),
        ("reasons", pa.list_(pa.string())),
        ("globals", pa.list_(pa.string())),
        ("findings", pa.list_(FINDING_TYPE)),
        ("members_scanned", pa.int64()),
        ("pickles", pa.int64()),
        ("bytes_read", pa.int64()),
        ("error", pa.string()),
        ("scan_seconds", pa.float64()),
        ("hf_repo", pa.string()),  # null unless the path is in a Hugging Face cache/mirror
        ("hf_revision", pa.string()),
        ("sha256", pa.string()),  # null unless hashing was asked for (--hash, baselines)
    ]
)

# Columns that legitimately differ between two runs over the same files.
NONDETERMINISTIC_COLUMNS = ("scan_seconds",)

_SCALAR_FIELDS = (
    "path",
    "size",
    "mtime",
    "etag",
    "format",
    "extension",
    "status",
    "verdict",
    "score",
    "anomaly_score",
    "members_scanned",
    "pickles",
    "bytes_read",
    "error",
    "scan_seconds",
    "hf_repo",
    "hf_revision",
    "sha256",
)


def comparable(table: pa.Table) -> pa.Table:
    """`table` without the columns that vary between runs, NaN scores as nulls (NaN != NaN).

    Two runs over the same files, with any number of workers, give `comparable` tables that are
    `equals`.
    """
    import pyarrow.compute as pc

    table = table.drop_columns([c for c in NONDETERMINISTIC_COLUMNS if c in table.column_names])
    for name in ("score", "anomaly_score"):
        if name in table.column_names:
            col = table.column(name)
            fixed = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
            table = table.set_column(table.column_names.index(name), name, fixed)
    return table


class SchemaMismatch(ValueError):
    """A batch whose columns cannot be made to match RESULT_SCHEMA."""


def results_to_batch(results: Iterable[FileResult]) -> pa.RecordBatch:
    rows = list(results)
    columns: dict[str, list[Any]] = {
        name: [getattr(r, name) for r in rows] for name in _SCALAR_FIELDS
    }
    columns["rule_ids"] = [r.rule_ids for r in rows]
    columns["reasons"] = [r.reasons for r in rows]
    columns["globals"] = [list(r.globals) for r in rows]
    findings = [r.findings for r in rows]
    arrays = []
    for f in RESULT_SCHEMA:
        if f.name == "findings":
            arrays.append(_findings_array(findings))
        else:
            arrays.append(arrow_array(columns[f.name], f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=RESULT_SCHEMA)


# -- Arrow arrays without pyarrow.array ----------------------------------------------------------
# pyarrow.array() asks its pandas shim whether a Python list is "array-like", and that first
# question imports pandas: ~0.25 s of CPU in every bulk worker that writes one result batch.
# The builders below assemble the same arrays from numpy buffers (pa.Array.from_buffers never
# asks); values they do not expect (a None size, a numpy scalar, an unencodable path) go to
# pyarrow.array, so its result and errors stay the reference
# (tests/bulk/test_sinks_batch_equals_spec.py).

_EXACT_FLOAT_INT = 2**53  # ints up to this convert to float64 exactly, as pyarrow requires


def arrow_array(values: list[Any], type_: pa.DataType) -> pa.Array:
    """`pa.array(values, type=type_)` without pyarrow's pandas shim for the common types."""
    built = _fast_array(values, type_)
    return built if built is not None else pa.array(values, type=type_)


def _fast_array(values: list[Any], type_: pa.DataType) -> pa.Array | None:
    try:
        if type_ == pa.string():
            return _string_array(values)
        if type_ == pa.int64():
            if all(type(v) is int for v in values):
                return _numeric_array(np.array(values, dtype=np.int64), type_)
            return None
        if type_ == pa.float64():
            if all(
                type(v) is float or (type(v) is int and -_EXACT_FLOAT_INT <= v <= _EXACT_FLOAT_INT)
                for v in values
            ):
                return _numeric_array(np.array(values, dtype=np.float64), type_)
            return None
        if pa.types.is_list(type_) and type_.value_type == pa.string():
            if not all(type(v) is list for v in values):
                return None
            child = _string_array([item for v in values for item in v])
            return None if child is None else _list_array([len(v) for v in values], child)
    except (OverflowError, UnicodeEncodeError):
        return None  # pyarrow.array raises its own error for these
    return None


def _numeric_array(data: np.ndarray, type_: pa.DataType) -> pa.Array:
    return pa.Array.from_buffers(type_, len(data), [None, pa.py_buffer(data)])


def _offsets(lengths: list[int]) -> pa.Buffer | None:
    """int32 offsets buffer (0, l0, l0+l1, ...); None when they overflow int32."""
    ends = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ends[1:])
    if ends[-1] > np.iinfo(np.int32).max:
        return None
    return pa.py_buffer(ends.astype(np.int32))


def _string_array(values: list[Any]) -> pa.Array | None:
    """pa.string() array of str and None values; None for anything else."""
    encoded: list[bytes] = []
    nulls = 0
    for v in values:
        if type(v) is str:
            encoded.append(v.encode("utf-8"))
        elif v is None:
            encoded.append(b"")
            nulls += 1
        else:
            return None
    offsets = _offsets([len(b) for b in encoded])
    if offsets is None:
        return None
    validity = None
    if nulls:
        valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    data = pa.py_buffer(b"".join(encoded))
    return pa.Array.from_buffers(
        pa.string(), len(values), [validity, offsets, data], null_count=nulls
    )


def _list_array(lengths: list[int], child: pa.Array) -> pa.Array | None:
    offsets = _offsets(lengths)
    if offsets is None:
        return None
    offsets_array = pa.Array.from_buffers(pa.int32(), len(lengths) + 1, [None, offsets])
    return pa.ListArray.from_arrays(offsets_array, child)


def _findings_array(per_row: list[list[Finding]]) -> pa.Array:
    flat = [f for findings in per_row for f in findings]
    children = [
        _fast_array([f.rule_id for f in flat], pa.string()),
        _fast_array([f.severity.name.lower() for f in flat], pa.string()),
        _fast_array([f.message for f in flat], pa.string()),
        _fast_array([f.member for f in flat], pa.string()),
        _fast_array([f.offset for f in flat], pa.int64()),
        _fast_array([f.subject for f in flat], pa.string()),
        _fast_array([f.suppressed for f in flat], pa.string()),
    ]
    if all(type(findings) is list for findings in per_row) and all(c is not None for c in children):
        struct = pa.StructArray.from_arrays(children, fields=list(FINDING_TYPE))
        built = _list_array([len(findings) for findings in per_row], struct)
        if built is not None:
            return built
    dicts = [[_finding_to_dict(f) for f in findings] for findings in per_row]
    return pa.array(dicts, type=pa.list_(FINDING_TYPE))


def _finding_to_dict(f: Finding) -> dict[str, Any]:
    return {
        "rule_id": f.rule_id,
        "severity": f.severity.name.lower(),
        "message": f.message,
        "member": f.member,
        "offset": f.offset,
        "subject": f.subject,
        "suppressed": f.suppressed,
    }


def batch_to_results(batch: pa.RecordBatch | pa.Table) -> list[FileResult]:
    return [row_to_result(row) for row in batch.to_pylist()]


def row_to_result(row: Mapping[str, Any]) -> FileResult:
    values = {name: row[name] for name in _SCALAR_FIELDS if row.get(name) is not None}
    findings = [
        Finding(
            rule_id=f["rule_id"],
            severity=Severity.parse(f["severity"]),
            message=f["message"] or "",
            member=f["member"] or "",
            offset=-1 if f["offset"] is None else f["offset"],
            subject=f["subject"] or "",
            suppressed=f.get("suppressed") or "",
        )
        for f in row.get("findings") or ()
    ]
    return FileResult(**values, findings=findings, globals=list(row.get("globals") or ()))


def empty_batch() -> pa.RecordBatch:
    return results_to_batch([])


def conform_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Return `batch` with exactly RESULT_SCHEMA, or raise SchemaMismatch.

    Same names with castable types (e.g. int32 sizes, or Parquet's `list<element>`) are cast;
    missing or extra columns are refused.
    """
    if batch.schema.equals(RESULT_SCHEMA, check_metadata=False):
        return batch
    if batch.schema.names != RESULT_SCHEMA.names:
        raise SchemaMismatch(
            f"columns {batch.schema.names} differ from RESULT_SCHEMA {RESULT_SCHEMA.names}"
        )
    try:
        return batch.cast(RESULT_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as exc:
        raise SchemaMismatch(f"cannot cast batch to RESULT_SCHEMA: {exc}") from exc


def read_provenance(path: str) -> dict[str, str]:
    """How the rows of a verdicts Parquet (file or Dask dataset folder) were computed: its
    `fastscan.*` key-value metadata, without the prefix."""
    import pyarrow.parquet as pq  # here, not at import: a one-file scan never reads Parquet

    if os.path.isdir(path):
        common = os.path.join(path, "_common_metadata")
        if not os.path.exists(common):
            parts = sorted(n for n in os.listdir(path) if n.endswith(".parquet"))
            if not parts:
                return {}
            common = os.path.join(path, parts[0])
        schema = pq.read_schema(common)
    else:
        schema = pq.read_schema(path)
    return {
        k.decode()[len("fastscan.") :]: v.decode()
        for k, v in (schema.metadata or {}).items()
        if k.startswith(b"fastscan.")
    }


def read_parquet(path: str) -> pa.Table:
    """A Parquet file (or a Dask engine's dataset directory) as one table. A single file skips
    `pq.read_table`'s dataset layer: importing it costs ~0.25 s, more than reading a 100k-row
    verdicts file."""
    import pyarrow.parquet as pq

    if os.path.isdir(path):
        return pq.read_table(path)
    with pq.ParquetFile(path) as fh:
        return fh.read()


def conform_table(table: pa.Table) -> pa.Table:
    """Bring a table read back from an older fastscan Parquet to RESULT_SCHEMA.

    Missing columns are filled with nulls (older files), unknown ones are dropped; findings
    written before a struct field existed get it ("" for `suppressed`).
    """
    n = table.num_rows
    arrays = []
    for field in RESULT_SCHEMA:
        if field.name == "findings" and field.name in table.column_names:
            arrays.append(_conform_findings(table.column(field.name)))
        elif field.name in table.column_names:
            arrays.append(table.column(field.name).cast(field.type))
        else:
            arrays.append(pa.nulls(n, type=field.type))
    return pa.Table.from_arrays(arrays, schema=RESULT_SCHEMA)


def _conform_findings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    target = pa.list_(FINDING_TYPE)
    if not pa.types.is_list(column.type):
        return column.cast(target)
    value_type = column.type.value_type
    if not pa.types.is_struct(value_type) or value_type.equals(FINDING_TYPE):
        return column.cast(target)
    have = {value_type.field(i).name for i in range(value_type.num_fields)}
    out = []
    for chunk in column.chunks:
        offsets = chunk.offsets.to_numpy()
        first = int(offsets[0]) if len(offsets) else 0
        values = chunk.values.slice(first, int(offsets[-1]) - first if len(offsets) else 0)
        children = [
            values.field(f.name).cast(f.type)
            if f.name in have
            else pa.array([""] * len(values), type=f.type)
            for f in FINDING_TYPE
        ]
        struct = pa.StructArray.from_arrays(children, fields=list(FINDING_TYPE))
        rebased = pa.array(offsets - first, type=pa.int32())
        out.append(pa.ListArray.from_arrays(rebased, struct, mask=chunk.is_null()))
    return pa.chunked_array(out, type=target)


def file_metadata(info: Mapping[str, str]) -> dict[bytes, bytes]:
    """Parquet key-value metadata: every key is namespaced under `fastscan.`."""
    out = {}
    for key, value in info.items():
        name = key if key.startswith("fastscan.") else f"fastscan.{key}"
        out[name.encode()] = str(value).encode()
    return out
