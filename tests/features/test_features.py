"""Feature vector: fixed names and order, NaN-free on hostile input, deterministic, Arrow batch."""

from __future__ import annotations

import os
import pathlib
import pickle
import random
import zlib

import numpy as np
import pyarrow as pa
import pytest

from fastscan import features, tokenizer
from fastscan.containers import open_container
from fastscan.opcodes import TABLE
from fastscan.rules import classify
from fastscan.train.payloads import PAYLOADS


def _extract(data: bytes, name: str = "x.pkl") -> np.ndarray:
    with open_container(data, name=name) as container:
        streams = [(s, tokenizer.tokenize(s.data)) for s in container.streams]
        return features.extract(container, streams)


def _value(row: np.ndarray, name: str) -> float:
    return float(row[features.FEATURE_NAMES.index(name)])


def _payload(key: str, seed: int = 0) -> bytes:
    return PAYLOADS[key](random.Random(seed)).data


def test_names_are_unique_and_versioned() -> None:
    names = features.FEATURE_NAMES
    assert len(names) == len(set(names)) == features.N_FEATURES
    assert isinstance(features.FEATURE_SCHEMA_VERSION, int)
    assert features.ARROW_SCHEMA.names == list(names)
    assert all(n.replace("_", "").isalnum() for n in names)


def test_opcode_groups_cover_every_opcode_once() -> None:
    grouped = [op for _, ops in features.OPCODE_GROUPS for op in ops]
    assert sorted(grouped) == sorted(op.name for op in TABLE)


def test_row_shape_dtype_and_basic_counts() -> None:
    row = _extract(pickle.dumps({"a": [1, 2, 3], "b": "hello"}, protocol=4))
    assert row.shape == (features.N_FEATURES,)
    assert row.dtype == np.float32
    assert np.isfinite(row).all()
    assert _value(row, "stat_ok") == 1
    assert _value(row, "proto_4") == 1
    assert _value(row, "fmt_raw_pickle") == 1
    assert _value(row, "glob_total") == 0
    assert _value(row, "call_total") == 0
    op_fractions = [_value(row, f"opf_{g}") for g, _ in features.OPCODE_GROUPS]
    assert sum(op_fractions) == pytest.approx(1.0, abs=1e-5)


def test_malicious_payload_counts_calls_and_classes() -> None:
    row = _extract(_payload("F:os.system"))
    assert _value(row, "call_total") >= 1
    assert _value(row, "call_op_reduce") >= 1
    assert _value(row, "glob_distinct") >= 1
    expected = classify("os", "system").verdict_class
    assert _value(row, f"glob_{expected}") >= 1
    assert _value(row, f"call_to_{expected}") >= 1
    assert 0.0 <= _value(row, "call_first_pos") <= _value(row, "call_last_pos") <= 1.0
    assert _value(row, "str_pat_shell") >= 1  # "echo fastscan-test" / "touch /tmp/…"


def test_global_hashing_is_stable_crc32() -> None:
    row = _extract(pickle.dumps(random.Random, protocol=2))  # GLOBAL random Random
    for token in ("random", "random.Random"):
        bucket = zlib.crc32(token.encode()) % features.HASH_BUCKETS
        assert _value(row, f"ghash_{bucket:02d}") >= 1


def test_nested_and_encoded_pickles_are_counted() -> None:
    row = _extract(_payload("H1"))
    assert _value(row, "nested_total") >= 1
    assert _value(row, "nested_depth_max") >= 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80",
        b"\x80\x04\x95",
        os.urandom(0) + bytes(range(256)) * 4,
        b"\x80\x02cos\nsystem\n(X\x04\x00\x00\x00echotR",  # truncated before STOP
        b"garbage that is not a pickle at all" * 10,
    ],
)
def test_hostile_input_is_finite(data: bytes) -> None:
    row = _extract(data)
    assert row.shape == (features.N_FEATURES,)
    assert np.isfinite(row).all()


def test_random_bytes_are_finite() -> None:
    rng = random.Random(7)
    for _ in range(50):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        assert np.isfinite(_extract(b"\x80\x04" + data)).all()


def test_extract_is_deterministic() -> None:
    data = _payload("D1")
    first = _extract(data)
    for _ in range(3):
        assert np.array_equal(first, _extract(data))


def test_no_streams_gives_a_valid_row() -> None:
    row = features.extract(None, [])
    assert np.isfinite(row).all()
    assert row.shape == (features.N_FEATURES,)
    assert not features.empty_row().any()


def test_padding_keeps_counts() -> None:
    """Benign padding dilutes opcode fractions but never hides the dangerous counts."""
    from fastscan.train import wrappers
    from fastscan.train.payloads import as_snippet

    payload = _payload("F:os.system")
    bare = _extract(payload)
    padding = pickle.dumps([np.zeros(50, np.float32) for _ in range(200)], protocol=2)
    padded = _extract(wrappers.inject(padding, as_snippet(payload), "middle"))
    for name in ("glob_dangerous", "glob_unknown", "call_to_dangerous", "str_pat_shell"):
        assert _value(padded, name) >= _value(bare, name)
    assert _value(padded, "op_reduce") > _value(bare, "op_reduce")


def test_batch_roundtrip_and_paths() -> None:
    rows = [_extract(pickle.dumps(i)) for i in range(5)]
    batch = features.to_batch(rows)
    assert batch.num_rows == 5
    assert batch.schema == features.ARROW_SCHEMA
    assert all(t == pa.float32() for t in batch.schema.types)
    assert np.array_equal(features.batch_to_matrix(batch), np.vstack(rows))

    with_paths = features.to_batch(rows, paths=[f"f{i}" for i in range(5)])
    assert with_paths.schema.names[0] == "path"
    assert with_paths.column("path").to_pylist() == [f"f{i}" for i in range(5)]
    assert np.array_equal(features.batch_to_matrix(with_paths), np.vstack(rows))
    with pytest.raises(ValueError, match="paths"):
        features.to_batch(rows, paths=["only-one"])


def test_batch_to_matrix_refuses_missing_columns() -> None:
    batch = features.to_batch([features.empty_row()])
    with pytest.raises(ValueError, match="lacks feature columns"):
        features.batch_to_matrix(batch.drop_columns([features.FEATURE_NAMES[3]]))


def test_empty_batch() -> None:
    batch = features.to_batch([])
    assert batch.num_rows == 0
    assert features.batch_to_matrix(batch).shape == (0, features.N_FEATURES)


def test_unlisted_stdlib_callables_are_counted_apart_from_user_classes() -> None:
    import statistics

    from fastscan.scan import Scanner

    def row_of(data: bytes) -> dict[str, float]:
        a = Scanner(model=None).analyse(data)
        row = features.extract(a.container, a.streams).tolist()
        return dict(zip(features.FEATURE_NAMES, row, strict=True))

    stdlib = row_of(pickle.dumps(statistics.NormalDist(1.0, 2.0), protocol=4))
    assert stdlib["unk_stdlib_distinct"] == 1 and stdlib["unk_stdlib_calls"] >= 1
    # a user's own class (never imported here: the pickle is assembled by hand)
    user = row_of(b"\x80\x04\x8c\x0bacme_models\x8c\x03Net\x93)\x81.")
    assert user["glob_unknown"] == 1
    assert user["unk_stdlib_distinct"] == 0 and user["unk_stdlib_calls"] == 0


def _scanned_row(tmp_path: pathlib.Path, data: bytes) -> dict[str, float]:
    """The feature row the scanner's one composition gives `data` (rules' findings included)."""
    from fastscan.scan import Scanner

    path = tmp_path / "x.pkl"
    path.write_bytes(data)
    _results, batch = Scanner(model=None).scan_refs([str(path)], with_features=True)
    assert batch is not None
    row = features.batch_to_matrix(batch)[0].tolist()
    return dict(zip(features.FEATURE_NAMES, row, strict=True))


def _getattr_call(owner_module: bytes, owner: bytes, attribute: bytes, arg: bytes) -> bytes:
    """Protocol 2: getattr(owner, attribute)(arg), the result kept."""
    return (
        b"\x80\x02cbuiltins\ngetattr\n"
        + b"c" + owner_module + b"\n" + owner + b"\n"
        + b"X" + len(attribute).to_bytes(4, "little") + attribute
        + b"\x86R"
        + b"X" + len(arg).to_bytes(4, "little") + arg
        + b"\x85R."
    )  # fmt: skip


def test_listed_names_judged_inert_at_their_call_sites_count_as_safe(
    tmp_path: pathlib.Path,
) -> None:
    # getattr fetching an allowlisted method (pandas' tz-aware frames): the rules judge the
    # call site low, so the classifier is not told a dangerous name was called
    benign = _scanned_row(tmp_path, _getattr_call(b"zoneinfo", b"ZoneInfo", b"_unpickle", b"UTC"))
    assert benign["glob_dangerous"] == 0 and benign["call_to_dangerous"] == 0
    assert benign["glob_safe"] >= 2
    # the same getattr fetching a sink stays dangerous in the row
    hostile = _scanned_row(tmp_path, _getattr_call(b"os", b"system", b"x", b"echo hi"))
    assert hostile["glob_dangerous"] >= 1 and hostile["call_to_dangerous"] >= 1
    # what the rules judged is read from the findings, severity by severity
    from fastscan.findings import Finding, Severity

    found = [
        Finding("FS102", Severity.LOW, "m", subject="builtins.getattr"),
        Finding("FS102", Severity.LOW, "m", subject="builtins.setattr"),
        Finding("FS101", Severity.MALICIOUS, "m", subject="builtins.setattr"),
    ]
    assert features.judged_at_call_sites(found) == {"builtins.getattr"}


def test_index_inert_stdlib_classes_leave_the_unlisted_stdlib_block(
    tmp_path: pathlib.Path,
) -> None:
    from fastscan.index import shipped_index

    if shipped_index() is None:
        pytest.skip("no shipped ecosystem index")
    # random.Random's state restore (river's models hold one): unlisted, but the index read it
    row = _scanned_row(tmp_path, pickle.dumps(random.Random(1), protocol=2))
    assert row["glob_unknown"] >= 1
    assert row["unk_stdlib_distinct"] == 0 and row["unk_stdlib_calls"] == 0


def test_reviewed_code_construction_is_not_an_unlisted_call(tmp_path: pathlib.Path) -> None:
    # dill's code constructor has a reviewed entry (code_construction.toml): the shape block
    # describes unlisted callables only, as the rules' unknown_calls does
    made = b"\x80\x02cdill._dill\n_create_code\nX\x01\x00\x00\x00x\x85R."
    row = _scanned_row(tmp_path, made)
    assert row["glob_unknown"] == 1
    assert row["shape_calls"] == 0 and row["shape_name_function"] == 0
    unlisted = _scanned_row(tmp_path, made.replace(b"dill._dill", b"acme.tools"))
    assert unlisted["shape_calls"] == 1
