"""NamedTuple records built from C (native/_records.pxi) are ordinary, sound instances."""

from __future__ import annotations

import gc
import pickle
import sys
import zipfile
from io import BytesIO
from typing import NamedTuple

import pytest

from fastscan import _tokenizer
from fastscan.containers.zipread import ZipEntry, list_zip
from fastscan.facts import CallSite
from fastscan.opcodes import NAMES
from fastscan.tokenizer import tokenize


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
