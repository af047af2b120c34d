"""What an unlisted function is handed (issue #15 item 2), through the real tokenizer, call-site
walk, rules and verdict; nothing scanned is loaded.

- A pickle handed whole (spaCy's `unpickle_vocab(..., <pickled lex_attr_getters>, ...)`): the
  scan reads it whole as a nested pickle and grades it by its own findings, as for reviewed
  loaders (nested_loaders), so loading it is no reason for FS112 by itself. What it holds still
  decides: a denylisted call inside is malicious, an unlisted runner inside is its own FS112,
  and a pickle the scan could not read whole keeps the FS112.
- Another call's result: `exec(b64decode("..."))` hides its command in a decoder's result,
  which no text test on the stream can read, so a construction handed a reviewed decoder's
  result (base64, zlib, ...) is an application: FS112, never settled. Containers and other
  calls' objects stay the classifier's to judge (FS103), as before: prose in a container reads
  like a command line to a text test, and a user's `__reduce__` hands its reconstructor tables,
  vocabularies and objects.
"""

from __future__ import annotations

import base64
import collections
import os
import pickle
import types
import zlib
from collections.abc import Iterator

import pytest

from tests.rules.stand_ins import Reduce, judged, never, stand_in_module

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
MODULE = "thirdparty_handed"  # a stand-in registry package; nothing of it runs while scanning


@pytest.fixture(scope="module", autouse=True)
def mod() -> Iterator[types.ModuleType]:
    def unpickle_state(*_args: object) -> None:  # a reconstructor handed a pickled part
        never()

    def run(*_args: object) -> None:  # J6: a helper that runs its argument
        never()

    def check_output(*_args: object) -> None:  # a runner of an argv list
        never()

    def from_state(*_args: object) -> None:  # a user's reconstructor
        never()

    class Point:  # a user's class, built from numbers
        def __init__(self, *_args: object) -> None:
            never()

    class Holder:  # a user's class, built from text
        def __init__(self, *_args: object) -> None:
            never()

    objects = (unpickle_state, run, check_output, from_state, Point, Holder)
    with stand_in_module(MODULE, *objects) as module:
        yield module


def _judged(obj: object, protocol: int) -> tuple[str, set[str], bool]:
    return judged(pickle.dumps([obj], protocol=protocol))


def _judged_inside(
    mod: types.ModuleType, inside: bytes, protocol: int
) -> tuple[str, set[str], bool]:
    return _judged(Reduce((mod.unpickle_state, (inside, 3, None))), protocol)


# --- a pickle handed whole ------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("inner", [2, 4, 5])
def test_whole_pickle_of_reviewed_names_is_no_reason(
    mod: types.ModuleType, protocol: int, inner: int
) -> None:
    # loadable (it imports a name), read whole: its own findings grade it, here none
    inside = pickle.dumps(collections.OrderedDict(a=1, b=[1.5]), inner)
    verdict, rules, ok = _judged_inside(mod, inside, protocol)
    assert "FS112" not in rules and "FS103" in rules and ok, rules
    assert verdict == "suspicious"  # by rules alone: FS103, a classifier's to settle


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_denylisted_call_inside_is_malicious(mod: types.ModuleType, protocol: int) -> None:
    inside = pickle.dumps(Reduce((os.system, ("echo fastscan",))), 2)
    verdict, _, ok = _judged_inside(mod, inside, protocol)
    assert verdict == "malicious" and not ok


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unlisted_runner_inside_is_its_own_fs112(mod: types.ModuleType, protocol: int) -> None:
    # every dangerous name withheld: the nested call's own shape keeps it unsettled
    inside = pickle.dumps(Reduce((mod.run, ("echo fastscan > /tmp/fastscan-j6",))), 2)
    verdict, rules, ok = _judged_inside(mod, inside, protocol)
    assert "FS112" in rules and verdict in ("suspicious", "malicious") and not ok, rules


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickle_not_read_whole_keeps_fs112(mod: types.ModuleType, protocol: int) -> None:
    cut = pickle.dumps(collections.OrderedDict(a=1), 4)[:-3]  # no STOP: a loader runs what it read
    _verdict, rules, ok = _judged_inside(mod, cut, protocol)
    assert "FS112" in rules and not ok, rules


# --- another call's result, containers ------------------------------------------------------


def _settleable(obj: object, protocol: int) -> None:
    verdict, rules, ok = _judged(obj, protocol)
    assert "FS112" not in rules and ok and verdict == "suspicious", rules


def _applied(obj: object, protocol: int) -> None:
    verdict, rules, ok = _judged(obj, protocol)
    assert "FS112" in rules and not ok and verdict in ("suspicious", "malicious"), rules


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reconstructor_handed_numbers_and_words_is_settleable(
    mod: types.ModuleType, protocol: int
) -> None:
    table = {"col_0": [0.5, 1.5], "col_1": [2.0, 3.0]}
    _settleable(Reduce((mod.from_state, (2, table, None))), protocol)
    _settleable(Reduce((mod.from_state, (["model0", "train1", "token2"], [3, 1, 4]))), protocol)
    _settleable(Reduce((mod.from_state, (Reduce((mod.Point, (1, 2))),))), protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_command_in_a_container_is_left_to_the_classifier(
    mod: types.ModuleType, protocol: int
) -> None:
    # a limit, stated: `check_output(["sh", "-c", "..."])` with its name unlisted is FS103 (the
    # classifier judges it on its text features), not FS112
    argv = ["sh", "-c", "echo fastscan > /tmp/fastscan-j6"]
    verdict, rules, ok = _judged(Reduce((mod.check_output, (argv,))), protocol)
    assert "FS112" not in rules and ok and verdict == "suspicious", rules


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_function_handed_a_decoders_result_stays_fs112(
    mod: types.ModuleType, protocol: int
) -> None:
    hidden = base64.b64encode(b"echo fastscan").decode()  # reads as no command by itself
    _applied(Reduce((mod.check_output, (Reduce((base64.b64decode, (hidden,))),))), protocol)
    packed = zlib.compress(b"echo fastscan")
    _applied(Reduce((mod.check_output, (Reduce((zlib.decompress, (packed,))),))), protocol)
    # deeper in its arguments too
    _applied(Reduce((mod.from_state, ({"cmd": Reduce((base64.b64decode, (hidden,)))},))), protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_object_another_call_built_is_that_calls_finding(
    mod: types.ModuleType, protocol: int
) -> None:
    # the command text is the unlisted class's construction: FS103 there, for the classifier,
    # as any unlisted class built from text; the function handed the object is not FS112 for it
    held = Reduce((mod.Holder, ("echo fastscan > /tmp/fastscan-j6",)))
    verdict, rules, _ok = _judged(Reduce((mod.from_state, (held,))), protocol)
    assert "FS112" not in rules and "FS103" in rules and verdict == "suspicious", rules
