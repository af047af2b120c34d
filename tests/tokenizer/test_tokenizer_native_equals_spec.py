"""The tokenizer's native paths against their specifications.

- NamedTuple records built from C (native/_records.pxi: call sites, zip entries) are ordinary,
  sound instances, equal to ones the NamedTuple class builds;
- the probe's short cuts decide exactly what the full walks decide: `breaks_before_import` lets
  sniffing skip two walks over a 64 KiB window for tensor storages that start with an opcode byte,
  and a PROTO header plus a clean 4 KiB window names a pickle without walking 20k opcodes;
- the native `find` is bytes.find.
"""

from __future__ import annotations

import gc
import pickle
import sys
import zipfile
from io import BytesIO
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastscan import _tokenizer
from fastscan.containers._probe import parses_as_pickle
from fastscan.containers.sniff import sniff
from fastscan.containers.zipread import ZipEntry, list_zip
from fastscan.facts import CallSite
from fastscan.opcodes import NAMES
from fastscan.opcodes import START_BYTES as START_OPCODES
from fastscan.tokenizer import (
    _window_kind,
    breaks_before_import,
    byte_view,
    starts_like_pickle,
    tokenize,
)


class _Reduce:
    def __reduce__(self) -> tuple[object, ...]:
        return (print, ("fastscan-test",))


def _stream() -> bytes:
    return pickle.dumps([_Reduce(), {"k": _Reduce()}, [_Reduce()] * 3], protocol=4)


def test_call_sites_equal_namedtuple_built_ones() -> None:
    calls = tokenize(_stream()).calls
    assert calls and all(type(c) is CallSite for c in calls)
    for c in calls:
        rebuilt = CallSite(*tuple(c))
        assert rebuilt == c and hash(rebuilt) == hash(c)
        assert c._replace(offset=1).offset == 1 and c._asdict()["opcode"] == c.opcode
        assert pickle.loads(pickle.dumps(c)) == c  # our own record, not scanned data


def test_zip_entries_equal_namedtuple_built_ones() -> None:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(50):
            zf.writestr(f"archive/data/{i}", bytes([0xFF]) * (i + 1))
    entries = list_zip(buf.getvalue(), 4096).entries
    assert len(entries) == 50 and all(type(e) is ZipEntry for e in entries)
    assert all(ZipEntry(*tuple(e)) == e for e in entries)


def test_no_reference_leaks() -> None:
    data = _stream()
    opcode = tokenize(data).calls[0].opcode
    for _ in range(3):  # warm caches
        tokenize(data)
    gc.collect()
    before = sys.getrefcount(opcode), sys.getrefcount(True)
    for _ in range(500):
        facts = tokenize(data)
        del facts
    gc.collect()
    after = sys.getrefcount(opcode), sys.getrefcount(True)
    assert after[0] == before[0]
    assert abs(after[1] - before[1]) < 50  # True is shared process-wide; no growth per call


def test_records_survive_collection_while_held() -> None:
    calls = [tokenize(_stream()).calls for _ in range(200)]
    gc.collect()
    assert all(c[0].opcode in NAMES for c in calls)


def test_only_tuple_layout_classes_are_accepted() -> None:
    class NotATuple:
        pass

    class Wide(tuple):  # type: ignore[type-arg]
        pass  # has a __dict__: a different layout

    class Fine(NamedTuple):
        a: int

    walker = _tokenizer.Walker(memoryview(_stream())).run()
    with pytest.raises(TypeError):
        walker.call_list(NAMES, NotATuple)
    with pytest.raises(TypeError):
        walker.call_list(NAMES, Wide)
    assert walker.call_list(NAMES, CallSite)
    del Fine


# -- the probe's short cuts ----------------------------------------------------------------------


def _full_walks_reject(data: bytes) -> bool:
    return _window_kind(byte_view(data), 20_000) in ("", "broken") and not parses_as_pickle(data)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int64, np.uint8])
def test_tensor_bytes_cut_early_are_rejected_by_both_walks(dtype: type) -> None:
    rng = np.random.default_rng(7)
    cut = 0
    for _ in range(600):
        scale = rng.choice([1e-3, 1.0, 100.0])
        data = (rng.standard_normal(8192) * scale).astype(dtype).tobytes()
        if data[0] not in START_OPCODES:
            continue
        if breaks_before_import(data):
            cut += 1
            assert _full_walks_reject(data), data[:32]
    assert cut > 0  # the short cut does fire on tensor-like bytes


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted(START_OPCODES)), st.binary(min_size=1, max_size=6000))
def test_short_cut_implies_full_rejection(first: int, rest: bytes) -> None:
    data = bytes([first]) + rest
    if breaks_before_import(data):
        assert _full_walks_reject(data)
        assert sniff(data) != "raw_pickle"


@settings(max_examples=800, deadline=None)
@given(
    st.sampled_from(sorted(START_OPCODES)),
    st.lists(st.sampled_from(sorted(START_OPCODES | {0x95, 0x94, 0x2E, 0x71, 0x68})), max_size=7),
    st.binary(max_size=40),
)
def test_short_break_implies_full_rejection(first: int, ops: list[int], rest: bytes) -> None:
    # opcode bytes first, so the walk gets a few opcodes in before it breaks or runs off the end
    data = bytes([first, *ops]) + rest
    if breaks_before_import(data):
        assert _full_walks_reject(data)
        assert not starts_like_pickle(data)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_real_pickles_never_take_the_short_cut(protocol: int) -> None:
    vocab = {f"tok_{i}": i for i in range(3000)}
    for obj in (vocab, list(range(5000)), {"a": [1.5, None, "x" * 70_000]}):
        data = pickle.dumps(obj, protocol=protocol)
        assert not breaks_before_import(data)
        assert starts_like_pickle(data)
        assert sniff(data) == "raw_pickle"


def test_proto_header_and_clean_window_is_a_pickle_without_imports() -> None:
    data = pickle.dumps({f"tok_{i}": i for i in range(50_000)}, protocol=4)
    assert starts_like_pickle(data)
    broken = data[:6000] + b"\xff" * 64  # breaks after the window: still reported as a pickle
    assert starts_like_pickle(broken)
    assert not starts_like_pickle(b"\x80\x04" + b"\xff" * 6000)  # a header alone is not enough


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60), st.binary(max_size=5), st.integers(-3, 70))
def test_native_find_is_bytes_find(hay: bytes, needle: bytes, start: int) -> None:
    from fastscan.tokenizer import find

    expected = hay.find(needle, max(start, 0)) if start <= len(hay) else -1
    assert find(memoryview(hay), needle, start) == expected
