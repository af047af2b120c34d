"""rules.fills: which objects SETITEM(S)/APPEND(S)/ADDITEMS fill (the index's container hooks).

Expectations come from pickle's own load_* semantics: a fill on a literal dict/list/set runs no
method; on an object some call made it runs __setitem__/append/extend/add of that call's class
(for copyreg reconstructors: of the class they instantiate)."""

from __future__ import annotations

import collections
import pickle

import pytest

from fastscan.rules.fills import container_targets
from fastscan.rules.indexed import RECONSTRUCTORS
from fastscan.tokenizer import tokenize


def _targets(data: bytes) -> dict[int, frozenset[str]]:
    got = container_targets(data, tokenize(data).pickle_offsets, RECONSTRUCTORS, 100_000)
    assert got is not None
    return got


def _named(data: bytes) -> dict[str, frozenset[str]]:
    """Targets keyed by the global's qualname instead of its offset."""
    by_offset = {g.offset: g.qualname for g in tokenize(data).globals}
    return {by_offset[k]: v for k, v in _targets(data).items()}


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
def test_ordered_dict_is_filled_by_setitems_a_plain_dict_is_not(proto: int) -> None:
    od = _named(pickle.dumps(collections.OrderedDict(a=1, b=2), protocol=proto))
    assert od == {"collections.OrderedDict": frozenset({"setitem"})}
    assert _targets(pickle.dumps({"a": {"b": [1, {2}]}}, protocol=proto)) == {}


def test_object_filled_later_through_the_memo() -> None:
    # obj = C(); memo[0] = obj; [] then GET 0 and SETITEM on it after other work
    data = b"cm\nC\n)Rp0\n0(lp1\nI1\nag0\nS'k'\nI2\ns."
    assert _named(data) == {"m.C": frozenset({"setitem"})}


def test_appends_and_additems_on_objects() -> None:
    data = b"\x80\x04\x8c\x01m\x8c\x01L\x93)\x81(K\x01e\x8c\x01m\x8c\x01S\x93)\x81(K\x02\x90\x86."
    assert _named(data) == {"m.L": frozenset({"append", "extend"}), "m.S": frozenset({"add"})}


def test_reconstructor_credits_the_class_it_instantiates() -> None:
    data = b"ccopy_reg\n_reconstructor\n(cm\nD\nc__builtin__\nobject\nNtR(S'a'\nI1\nu."
    assert _named(data) == {
        "copyreg._reconstructor": frozenset({"setitem"}),
        "m.D": frozenset({"setitem"}),
    }


def test_budget_gives_none() -> None:
    data = pickle.dumps(collections.OrderedDict((str(i), i) for i in range(100)), protocol=4)
    assert container_targets(data, [0], RECONSTRUCTORS, 50) is None
