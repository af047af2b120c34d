"""A pickle handed whole to an unlisted function (issue #15: spaCy's `unpickle_vocab(...,
<pickled lex_attr_getters>, ...)`): the scan reads it whole as a nested pickle and grades it by
its own findings, as for reviewed loaders (nested_loaders), so loading it is no reason for FS112
by itself. What it holds still decides: a denylisted call inside is malicious, an unlisted runner
inside is its own FS112, and a pickle the scan could not read whole keeps the FS112. Through the
real tokenizer, call-site walk, rules and verdict; nothing scanned is loaded."""

from __future__ import annotations

import collections
import os
import pickle
import types
from collections.abc import Iterator

import pytest

from fastscan.scan import Scanner
from fastscan.verdict import settleable
from tests.rules.stand_ins import Reduce, never, stand_in_module

SCANNER = Scanner(model=None)
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
MODULE = "thirdparty_graded"  # a stand-in registry package; nothing of it runs while scanning


@pytest.fixture(scope="module", autouse=True)
def mod() -> Iterator[types.ModuleType]:
    def unpickle_state(*_args: object) -> None:  # a reconstructor handed a pickled part
        never()

    def run(*_args: object) -> None:  # J6: a helper that runs its argument
        never()

    with stand_in_module(MODULE, unpickle_state, run) as module:
        yield module


def _judged(mod: types.ModuleType, inside: bytes, protocol: int) -> tuple[str, set[str], bool]:
    outer = [Reduce((mod.unpickle_state, (inside, 3, None)))]
    result = SCANNER.scan_bytes(pickle.dumps(outer, protocol=protocol), "x.pkl")
    rules = {f.rule_id for f in result.findings}
    return result.verdict, rules, settleable(result.findings, result.status)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("inner", [2, 4, 5])
def test_whole_pickle_of_reviewed_names_is_no_reason(
    mod: types.ModuleType, protocol: int, inner: int
) -> None:
    # loadable (it imports a name), read whole: its own findings grade it, here none
    inside = pickle.dumps(collections.OrderedDict(a=1, b=[1.5]), inner)
    verdict, rules, ok = _judged(mod, inside, protocol)
    assert "FS112" not in rules and "FS103" in rules and ok, rules
    assert verdict == "suspicious"  # by rules alone: FS103, a classifier's to settle


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_denylisted_call_inside_is_malicious(mod: types.ModuleType, protocol: int) -> None:
    inside = pickle.dumps(Reduce((os.system, ("echo fastscan",))), 2)
    verdict, _, ok = _judged(mod, inside, protocol)
    assert verdict == "malicious" and not ok


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unlisted_runner_inside_is_its_own_fs112(mod: types.ModuleType, protocol: int) -> None:
    # every dangerous name withheld: the nested call's own shape keeps it unsettled
    inside = pickle.dumps(Reduce((mod.run, ("echo fastscan > /tmp/fastscan-j6",))), 2)
    verdict, rules, ok = _judged(mod, inside, protocol)
    assert "FS112" in rules and verdict in ("suspicious", "malicious") and not ok, rules


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickle_not_read_whole_keeps_fs112(mod: types.ModuleType, protocol: int) -> None:
    cut = pickle.dumps(collections.OrderedDict(a=1), 4)[:-3]  # no STOP: a loader runs what it read
    _verdict, rules, ok = _judged(mod, cut, protocol)
    assert "FS112" in rules and not ok, rules
