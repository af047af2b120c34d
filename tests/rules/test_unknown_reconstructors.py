"""FS112 by result use and argument shape (issue 15, item 2): a function-shaped unlisted
callable whose result is kept as restored data and whose arguments describe state (a handed
class, bytes beside it, numbers, inert text) is a reconstructor, settleable like FS103
(bitarray's `_bitarray_reconstructor`, pytz's `_p`, multidict's `istr`); its attacker twins —
handed a command, code, a path or a URL, or with the result discarded, called or fed to another
call — stay FS112, whatever the classifier says. Through the real tokenizer, rules and verdict."""

from __future__ import annotations

import pickle
import types
from collections.abc import Iterator

import pytest

from fastscan import tokenizer
from fastscan.rules import evaluate
from fastscan.rules.unknown_calls import APPLICATION, RESTORATION, StreamShapes
from fastscan.verdict import CLEAN, MALICIOUS, SUSPICIOUS, VerdictPolicy, combine, settle
from tests.rules.stand_ins import Reduce, never, stand_in_module

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
MODULE = "thirdparty_recon"  # a stand-in registry package; nothing of it runs while scanning
POLICY = VerdictPolicy(0.5, 0.9, float("nan"), 0.1, 0.5, SUSPICIOUS)
CONFIDENT = 0.0  # a classifier as sure as it gets that the file is benign


@pytest.fixture(scope="module", autouse=True)
def mod() -> Iterator[types.ModuleType]:

    class bitset:  # lowercase like bitarray's class: the name does not say "class"
        pass

    def _bitset_reconstructor(*_args: object) -> None:
        never()

    def _p(*_args: object) -> None:  # pytz's shape: `_p("Europe/Amsterdam", 3600, 0, "CET")`
        never()

    def istr(*_args: object) -> None:  # multidict's shape
        never()

    def run(*_args: object) -> None:  # J6: a helper that runs its argument
        never()

    with stand_in_module(MODULE, bitset, _bitset_reconstructor, _p, istr, run) as module:
        yield module


def _judge(data: bytes) -> tuple[str, set[str], list[tuple[str, str]]]:
    """Verdict with a confident classifier, rule ids left after settling, and shapes."""
    facts = tokenizer.tokenize(data)
    found = evaluate([("", facts)])
    verdict, extra = combine(found, "complete", CONFIDENT, float("nan"), POLICY)
    shapes = StreamShapes(facts)
    names = [g.qualname for g in facts.globals]
    seen = [
        (names[i], s.shape)
        for i, g in enumerate(facts.globals)
        if g.module == MODULE
        for s in shapes.of_callable(i)
    ]
    return verdict, {f.rule_id for f in settle(found, extra)}, seen


def _restored(data: bytes, name: str) -> None:
    verdict, rules, shapes = _judge(data)
    assert (f"{MODULE}.{name}", RESTORATION) in shapes, shapes
    assert "FS112" not in rules and verdict == CLEAN, (verdict, rules)


def _applied(data: bytes, name: str) -> None:
    verdict, rules, shapes = _judge(data)
    assert (f"{MODULE}.{name}", APPLICATION) in shapes, shapes
    assert "FS112" in rules and verdict in (SUSPICIOUS, MALICIOUS), (verdict, rules)


# --- reconstructors: settleable ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("endian", ["little", "big"])
def test_handed_class_with_state_bytes_is_restoration(
    mod: types.ModuleType, protocol: int, endian: str
) -> None:
    value = Reduce((mod._bitset_reconstructor, (mod.bitset, b"\x01\xff", endian, 0, False)))
    for obj in (value, {"mask": value}, [value, value]):
        _restored(pickle.dumps(obj, protocol=protocol), "_bitset_reconstructor")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_zone_and_header_text_kept_is_restoration(mod: types.ModuleType, protocol: int) -> None:
    zone = Reduce((mod._p, ("Europe/Amsterdam", 3600, 0, "CET")))
    _restored(pickle.dumps({"tz": zone}, protocol=protocol), "_p")
    header = Reduce((mod.istr, ("Content-Type",)))
    _restored(pickle.dumps([header], protocol=protocol), "istr")


# --- attacker twins: the same callables, never settled ------------------------------------------

HOSTILE_TEXT = [
    "echo fastscan > /tmp/fastscan-j6",  # command with arguments
    "id;touch",  # shell separator, no space
    "/tmp/fastscan-j6.sh",  # absolute path
    "../fastscan-j6",  # relative path upwards
    "~/.bashrc",
    "http://example.invalid/x",  # URL
    "__import__('os')",  # code
    "a=1",
    "C:\\fastscan\\x.bat",
    "tmp/fastscan-j6",  # a lowercase relative path is not a zone name
    "tokenizer.bin",  # a file name: a loader handed a second stage (THREATS H3)
    "127.0.0.1",  # an address
    "Tmp/Evil.sh",  # zone-shaped, but a file name
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_reconstructor_shape_handed_hostile_text_stays_fs112(
    mod: types.ModuleType, protocol: int, text: str
) -> None:
    twin = Reduce((mod._bitset_reconstructor, (mod.bitset, b"\x01", text, 0)))
    _applied(pickle.dumps({"k": twin}, protocol=protocol), "_bitset_reconstructor")
    _applied(pickle.dumps([Reduce((mod._p, (text, 3600)))], protocol=protocol), "_p")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hostile_text_anywhere_in_the_stream_keeps_fs112(
    mod: types.ModuleType, protocol: int
) -> None:
    # the command reaches the helper through a container argument the shape does not open
    twin = Reduce((mod.istr, ("Content-Type", ["sh -c 'touch /tmp/fastscan-j6'"])))
    _applied(pickle.dumps([twin], protocol=protocol), "istr")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_text_too_long_to_keep_keeps_fs112(mod: types.ModuleType, protocol: int) -> None:
    twin = Reduce((mod._p, ("a" * 200_000,)))
    _applied(pickle.dumps([twin], protocol=protocol), "_p")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bare_bytes_without_a_handed_class_keep_fs112(mod: types.ModuleType, protocol: int) -> None:
    twin = Reduce((mod.run, (b"echo fastscan",)))
    _applied(pickle.dumps([twin], protocol=protocol), "run")


@pytest.mark.parametrize(
    "data",
    [
        # discarded (POP): run for its effect
        b"cthirdparty_recon\n_bitset_reconstructor\n(cthirdparty_recon\nbitset\nS'little'\ntR0N.",
        # the result is called
        b"cthirdparty_recon\n_bitset_reconstructor\n(cthirdparty_recon\nbitset\nS'little'\ntR"
        b"(I1\ntR.",
        # the result is another call's first argument
        b"cthirdparty_recon\nrun\n(cthirdparty_recon\n_bitset_reconstructor\n"
        b"(cthirdparty_recon\nbitset\nS'little'\ntRtR.",
    ],
    ids=["discarded", "called", "argument"],
)
def test_result_not_kept_keeps_fs112(data: bytes) -> None:
    _applied(data, "_bitset_reconstructor")


def test_denylisted_global_handed_to_a_reconstructor_is_malicious(mod: types.ModuleType) -> None:
    import os

    for protocol in PROTOCOLS:
        twin = Reduce((mod._bitset_reconstructor, (os.system, "ls")))
        verdict, rules, _ = _judge(pickle.dumps([twin], protocol=protocol))
        assert verdict == MALICIOUS and "FS101" in rules, (protocol, rules)
