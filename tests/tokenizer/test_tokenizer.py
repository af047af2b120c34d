"""The native tokenizer: agreement with pickletools, resolution semantics, robustness."""

from __future__ import annotations

import collections
import pickle
import pickletools
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastscan import _tokenizer, opcodes
from fastscan.facts import ScanLimits
from fastscan.tokenizer import list_opcodes, starts_like_pickle, tokenize

ROOT = Path(__file__).resolve().parents[2]

# -- the opcode table -------------------------------------------------------------------------


def test_native_argument_layout_matches_the_table() -> None:
    assert _tokenizer.arg_layout() == opcodes.arg_layout_by_byte()


def test_generated_pxi_is_fresh() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "native/gen_tables.py"), "--check"], capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()


def test_table_covers_every_pickletools_opcode() -> None:
    assert {op.name for op in pickletools.opcodes} == set(opcodes.BY_NAME)
    assert len(opcodes.TABLE) == len(pickletools.opcodes)


def test_anomaly_names_are_declared_in_facts() -> None:
    from fastscan.facts import ALL_ANOMALY_CODES

    assert set(_tokenizer.ANOMALY_NAMES) <= set(ALL_ANOMALY_CODES)


# -- differential: opcode sequence and offsets equal pickletools.genops ------------------------


def _genops(data: bytes) -> list[tuple[str, int]]:
    return [(op.name, pos) for op, _arg, pos in pickletools.genops(data)]


def _ours(data: bytes) -> list[tuple[str, int]]:
    ops, _end, status = list_opcodes(data)
    assert status == "ok"
    return [(op.name, op.offset) for op in ops]


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


SAMPLES = [
    {"a": [1, 2.5, "x" * 300, b"\x00\x01" * 200, None, True], "b": (1, 2, 3)},
    collections.OrderedDict(w=[1, 2], b={"k": frozenset({1, 2})}),
    [Point(3), Point(4), {1, 2, 3}, bytearray(b"abc"), 2**100, -(2**70), complex(1, 2)],
    "é漢字" * 50,
    list(range(2000)),
]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("sample", range(len(SAMPLES)))
def test_differential_on_fixed_samples(protocol: int, sample: int) -> None:
    data = pickle.dumps(SAMPLES[sample], protocol=protocol)
    assert _ours(data) == _genops(data)
    facts = tokenize(data)
    assert facts.status == "ok" and facts.n_pickles == 1
    assert sum(facts.opcode_counts) == len(_genops(data))


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=6)
        | st.frozensets(st.integers(), max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_differential_on_generated_pickles(value: object, protocol: int) -> None:
    data = pickle.dumps(value, protocol=protocol)
    assert _ours(data) == _genops(data)
    facts = tokenize(data)
    assert facts.status == "ok"
    assert facts.n_pickles == 1
    assert not facts.globals or all(
        g.module in ("builtins", "_codecs", "copyreg") for g in facts.globals
    )


# -- robustness: random and mutated bytes never raise or hang ----------------------------------


@settings(max_examples=300, deadline=2000)
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    facts = tokenize(data)
    assert facts.status in ("ok", "truncated", "bad_opcode", "budget", "not_pickle", "empty")
    starts_like_pickle(data)
    list_opcodes(data)


@settings(max_examples=300, deadline=2000)
@given(
    value=values,
    protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(0, 10_000),
)
def test_mutated_pickles_never_raise(
    value: object, protocol: int, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(pickle.dumps(value, protocol=protocol))
    for pos, byte in edits:
        data[pos % len(data)] = byte
    data = data[: max(1, cut % (len(data) + 1))]
    facts = tokenize(bytes(data))
    assert facts.length == len(data)


def test_truncated_prefixes_keep_what_was_seen() -> None:
    data = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x04echo\x85R\x94" + b"]" * 50 + b"."
    for cut in range(20, len(data)):
        facts = tokenize(data[:cut])
        assert [g.qualname for g in facts.globals] == ["os.system"]
        assert facts.status in ("truncated", "ok")


def test_budgets_stop_the_walk_and_are_reported() -> None:
    data = pickle.dumps(list(range(10_000)), protocol=2)
    facts = tokenize(data, ScanLimits(max_opcodes=100))
    assert facts.status == "budget" and facts.budget == "max_opcodes"
    facts = tokenize(b"\x80\x04" + b"(" * 5000 + b".", ScanLimits(max_stack=1000))
    assert facts.status == "budget" and facts.budget == "max_stack"


def test_memo_budget_degrades_to_unknown_operands() -> None:
    puts = b"".join(b"\x8c\x01x\x94" for _ in range(10))
    data = b"\x80\x04" + puts + b"\x8c\x02os\x94\x8c\x06system\x94h\x0ah\x0b\x93."
    facts = tokenize(data, ScanLimits(max_memo=10))
    assert facts.anomaly_count("memo_budget") >= 1
    assert facts.globals[0].resolved is False


def test_billion_laughs_is_linear() -> None:
    # DUP/memo expansion: each GET pushes a reference, never a copy of the data
    data = b"\x80\x04]\x94" + b"h\x00" * 200_000 + b"."
    facts = tokenize(data)
    assert facts.n_opcodes == 200_004  # PROTO EMPTY_LIST MEMOIZE GETs STOP
    assert facts.max_stack_depth == 200_001


def test_huge_declared_lengths_are_truncation_not_allocation() -> None:
    for op in (b"\x8e", b"\x96", b"\x8d"):  # BINBYTES8, BYTEARRAY8, BINUNICODE8
        facts = tokenize(b"\x80\x05" + op + (2**62).to_bytes(8, "little") + b"xx.")
        assert facts.status == "truncated"
    facts = tokenize(b"\x80\x05\x95" + (2**62).to_bytes(8, "little") + b"N.")
    assert facts.anomaly_count("frame_overrun") == 1


def test_empty_and_non_pickles() -> None:
    assert tokenize(b"").status == "empty"
    assert tokenize(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).status == "not_pickle"
    assert tokenize(memoryview(b"N.")).status == "ok"


def test_probe_accepts_pickles_and_rejects_text() -> None:
    assert starts_like_pickle(pickle.dumps({"a": 1}, protocol=0))
    assert starts_like_pickle(pickle.dumps({"a": 1}, protocol=5))
    assert starts_like_pickle(
        pickle.dumps(list(range(1000)), protocol=2)[:200]
    )  # cut by a read window
    assert not starts_like_pickle(b"hello world, this is text\n")
    assert not starts_like_pickle(b'{"json": true}')
    assert not starts_like_pickle(b"")


def test_mmap_input_is_not_copied(tmp_path: Path) -> None:
    import mmap

    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"k": b"\x00" * 100_000}, protocol=4))
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        facts = tokenize(mm)
        assert facts.status == "ok"
        assert facts.payload_bytes == 100_000


@settings(max_examples=120, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=50) | st.binary(max_size=50),
        lambda kids: st.lists(kids, max_size=30) | st.dictionaries(st.text(max_size=8), kids),
        max_leaves=400,
    ),
    st.integers(0, 5),
    st.binary(max_size=64),
    st.integers(0, 6000),
)
def test_quick_probe_window_never_changes_the_answer(
    obj: object, protocol: int, noise: bytes, cut: int
) -> None:
    from fastscan import tokenizer

    data = pickle.dumps(collections.OrderedDict(a=obj), protocol=protocol) + noise
    data = data[: max(2, cut)] if cut < len(data) else data
    view = memoryview(data)
    assert starts_like_pickle(view) == (tokenizer._window_kind(view, 20_000) not in ("", "broken"))
