"""FS112 and FS110 judged per call site (issue #15: callsites.py, unknown_calls.py, indexed.py).

- FS112: an unlisted callable the stream-wide shape calls an application is a reconstruction
  when its own call keeps the result and is handed only values, globals, inert text and bytes
  that hold no loadable pickle or archive and do not read as a command (binary state holds a NUL
  byte: bitarray's latin-1 bytes, shapely's WKB); hostile text elsewhere in the stream no longer
  matters. Its twins (command bytes, a nested pickle, an archive, a result discarded, called or
  fed to another call, text hidden in another call's object) stay FS112, never settled.
- FS110: an index-reaching class only stored as data (a list item, an attribute value of an
  object whose class is judged) runs no hook: FS111 info; held by an object of an unlisted
  class, it is as uncertain as that class: FS113, judgeable. Handed to any call, hashed, built,
  filled, a persistent id, or held by an object that a call then receives: FS110 as before.

Run through the real tokenizer, call-site walk, rules and verdict; nothing scanned is loaded.
"""

from __future__ import annotations

import pickle
import struct
import types
from collections.abc import Iterator

import pytest

from fastscan.findings import Severity
from fastscan.rules import default_ruleset
from fastscan.scan import Scanner
from fastscan.verdict import settleable
from tests.rules.stand_ins import Reduce, never, stand_in_module

SCANNER = Scanner(model=None)
INDEX = default_ruleset().index
needs_index = pytest.mark.skipif(INDEX is None, reason="no shipped index in this checkout")
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
MODULE = "thirdparty_percall"  # a stand-in registry package; nothing of it runs while scanning


@pytest.fixture(scope="module", autouse=True)
def mod() -> Iterator[types.ModuleType]:

    class bitset:  # lowercase like bitarray's class
        pass

    class Cmd:
        pass

    def _bitset_reconstructor(*_args: object) -> None:
        never()

    def from_wkb(*_args: object) -> None:  # shapely's shape: bare bytes, result kept
        never()

    def run(*_args: object) -> None:  # J6: a helper that runs its argument
        never()

    with stand_in_module(MODULE, bitset, Cmd, _bitset_reconstructor, from_wkb, run) as module:
        yield module


def _scan(data: bytes) -> tuple[str, dict[str, list[Severity]], bool]:
    result = SCANNER.scan_bytes(data, "x.pkl")
    found: dict[str, list[Severity]] = {}
    for f in result.findings:
        found.setdefault(f.rule_id, []).append(f.severity)
    return result.verdict, found, settleable(result.findings, "complete")


def _restored(data: bytes) -> None:
    verdict, found, ok = _scan(data)
    assert "FS112" not in found and "FS103" in found, found
    assert ok and verdict == "suspicious", (verdict, found)  # suspicious by rules: FS103


def _applied(data: bytes) -> None:
    verdict, found, ok = _scan(data)
    assert "FS112" in found and not ok, found
    assert verdict in ("suspicious", "malicious")


# Binary state as libraries write it: a NUL byte, and characters that look hostile as text.
STATE = b"\x00\x01 ;/'\xff|$"
WKB = b"\x01\x01\x00\x00\x00" + struct.pack("<dd", 1.5, -2.0)


# --- FS112: reconstructors judged by their own call ---------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reconstructor_handed_binary_state_is_restoration(
    mod: types.ModuleType, protocol: int
) -> None:
    # protocol <= 2 carries the bytes as latin-1 text, with `;`, `/`, quotes and `$` in it
    value = Reduce((mod._bitset_reconstructor, (mod.bitset, STATE, "little", 0)))
    _restored(pickle.dumps({"mask": value}, protocol=protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bare_binary_bytes_kept_is_restoration(mod: types.ModuleType, protocol: int) -> None:
    _restored(pickle.dumps([Reduce((mod.from_wkb, (WKB,)))], protocol=protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hostile_text_elsewhere_no_longer_decides(mod: types.ModuleType, protocol: int) -> None:
    value = Reduce((mod._bitset_reconstructor, (mod.bitset, STATE, "little")))
    obj = {"mask": value, "doc": "see https://example.invalid/x; run.sh"}
    _restored(pickle.dumps(obj, protocol=protocol))


COMMAND_BYTES = [
    b"echo fastscan > /tmp/fastscan-j6",
    b"/tmp/fastscan-j6.sh",
    b"__import__('os')",
    b"http://example.invalid/x",
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("raw", COMMAND_BYTES)
def test_bytes_that_read_as_a_command_stay_fs112(
    mod: types.ModuleType, protocol: int, raw: bytes
) -> None:
    _applied(pickle.dumps([Reduce((mod.run, (raw,)))], protocol=protocol))
    twin = Reduce((mod._bitset_reconstructor, (mod.bitset, raw, "little")))
    _applied(pickle.dumps({"mask": twin}, protocol=protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bytes_holding_an_importing_pickle_stay_fs112(mod: types.ModuleType, protocol: int) -> None:
    # read whole, a pickle is graded by its own findings (test_unlisted_arguments); this one
    # runs a command
    inner = pickle.dumps(Reduce((mod.run, ("touch /tmp/fs-j6",))), protocol=2)
    _applied(pickle.dumps([Reduce((mod.run, (inner,)))], protocol=protocol))
    inner = pickle.dumps(Reduce((mod.run, ("x",))), protocol=2)  # found past a prefix: not whole
    _applied(pickle.dumps([Reduce((mod.run, (b"\x00\x01" + inner,)))], protocol=protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bytes_of_an_archive_stay_fs112(mod: types.ModuleType, protocol: int) -> None:
    for raw in (b"PK\x03\x04\x00\x00" + WKB, b"\x1f\x8b\x08\x00" + WKB):
        _applied(pickle.dumps([Reduce((mod.run, (raw,)))], protocol=protocol))


@pytest.mark.parametrize("protocol", range(3, pickle.HIGHEST_PROTOCOL + 1))
def test_text_inside_another_calls_object_keeps_fs112(mod: types.ModuleType, protocol: int) -> None:
    # the command rides in an object handed on; this call cannot see it. (Protocol <= 2 makes
    # the bytes a second-argument `_codecs.encode` call, which the stream-wide shape does not
    # link: construction there, before and after this change.)
    cmd = Reduce((mod.Cmd, ("sh -c 'touch /tmp/fastscan-j6'",)))
    _applied(pickle.dumps([Reduce((mod.run, (cmd, WKB)))], protocol=protocol))


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _b(raw: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(raw)) + raw


def _x(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


RECON = _g(MODULE, "from_wkb")


@pytest.mark.parametrize(
    "body",
    [
        RECON + b"(" + _b(WKB) + b"tR0N",  # discarded: run for its effect
        RECON + b"(" + _b(WKB) + b"tR)R",  # the result is called
        _g(MODULE, "run") + b"(" + RECON + b"(" + _b(WKB) + b"tRtR",  # fed to another call
        # the result is a name imported at load time (computed STACK_GLOBAL operand)
        _x("os") + RECON + b"(" + _b(WKB) + b"tR\x93",
    ],
    ids=["discarded", "called", "argument", "imported-name"],
)
def test_binary_bytes_with_result_not_kept_stay_fs112(body: bytes) -> None:
    _applied(b"\x80\x04" + body + b".")


# --- FS110: only where a hook can run -----------------------------------------------------------

DL = _g("torch.utils.data.dataloader", "DataLoader")  # its __init__ reaches a sink (10 steps)
UNLISTED = _g("mylab.util", "Owner")
JUDGED = _g("collections", "OrderedDict")  # allowlisted: its own hooks are reviewed


def _p2(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _fs110(body: bytes) -> dict[str, list[Severity]]:
    return _scan(_p2(body))[1]


def _new(cls: bytes) -> bytes:
    return cls + b")\x81"  # cls.__new__(cls)


@needs_index
@pytest.mark.parametrize(
    "body",
    [
        b"]" + DL + b"a",  # a list item
        b"}" + _x("iterator_train") + DL + b"s",  # a plain dict's value
        _new(JUDGED) + b"}" + _x("iterator_train") + DL + b"sb",  # an attribute of a judged class
        b"(" + DL + b"t",  # a tuple item, returned
        DL + b"q\x01]h\x01a",  # memoised, then a list item
    ],
    ids=["list", "dict-value", "judged-attribute", "tuple", "memo"],
)
def test_a_class_only_stored_gets_no_fs110(body: bytes) -> None:
    found = _fs110(body)
    assert "FS110" not in found and Severity.INFO in found["FS111"], found


@needs_index
@pytest.mark.parametrize(
    "body",
    [
        UNLISTED + b"(" + _x("x") + DL + b"tR",  # a second argument of a call
        UNLISTED + b"(" + b"]" + DL + b"a" + b"tR",  # inside a list handed to a call
        b"}" + DL + _x("v") + b"s",  # a dict key: hashed (a metaclass hook)
        b"(" + DL + b"\x91",  # a frozenset member: hashed
        DL + b"Q",  # a persistent id: persistent_load(pid) is a call
        # an attribute of a judged object that an unlisted call then receives
        UNLISTED + b"(" + _new(JUDGED) + b"}" + _x("f") + DL + b"sbtR",
        DL + b"q\x01" + UNLISTED + b"(h\x01tR",  # memoised, then handed to a call
        b"]" + DL + b"a" + b"q\x02" + UNLISTED + b"(h\x02tR",  # a list handed later
    ],
    ids=[
        "argument", "list-argument", "dict-key", "frozenset", "persid",
        "owner-handed", "memo-argument", "list-handed-later",
    ],
)  # fmt: skip
def test_a_class_that_can_reach_a_call_keeps_fs110(body: bytes) -> None:
    found = _fs110(body)
    assert "FS110" in found, found


@needs_index
def test_a_class_only_held_by_an_unlisted_object_is_judged_with_it() -> None:
    # the state of a class nobody judged: FS113, settled with the holder's FS103 or not at all
    data = _p2(_new(UNLISTED) + b"}" + _x("f") + DL + b"sb")
    _verdict, found, can_settle = _scan(data)
    assert "FS110" not in found and found["FS113"] == [Severity.SUSPICIOUS], found
    assert can_settle


@needs_index
def test_build_on_the_class_itself_stays_malicious() -> None:
    verdict, found, _ = _scan(_p2(DL + b"}" + _x("a") + b"K\x01sb"))
    assert verdict == "malicious" and "FS209" in found, found


@pytest.mark.parametrize("protocol", range(3, pickle.HIGHEST_PROTOCOL + 1))
def test_a_call_fed_to_a_reconstructor_is_judged_by_its_own_call(
    mod: types.ModuleType, protocol: int
) -> None:
    # spaCy's `unpickle_doc(unpickle_vocab(...), b"...")`: the inner result is fed to another
    # call (FS112 there); the outer call rebuilds from it and binary bytes (FS103), whatever
    # text the stream holds elsewhere
    inner = Reduce((mod.from_wkb, (WKB,)))
    outer = Reduce((mod._bitset_reconstructor, (inner, WKB)))
    data = pickle.dumps({"doc": outer, "note": "see https://example.invalid/x"}, protocol=protocol)
    result = SCANNER.scan_bytes(data, "x.pkl")
    rules = {f.subject: f.rule_id for f in result.findings if f.subject.startswith(MODULE)}
    assert rules == {
        f"{MODULE}.from_wkb": "FS112",
        f"{MODULE}._bitset_reconstructor": "FS103",
    }, rules
    assert not settleable(result.findings, "complete")


@needs_index
def test_a_memo_entry_the_walk_did_not_see_keeps_fs110() -> None:
    # a GET of an entry no PUT of this walk made (a joblib segment reads the previous one's
    # memo) may be the class: handed to the call, as far as the walk can tell
    body = b"]" + DL + b"a" + UNLISTED + b"(h\x07tR"
    assert "FS110" in _fs110(body)
