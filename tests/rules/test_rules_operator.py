"""The `operator` module by name (issue 15): only the names that call, look up or write what a
pickle picks are sinks; comparison and arithmetic functions stored as values (jinja2's operator
tables, dask task tuples) are reviewed callback_dispatch: low FS108 when only referenced, a
suspicious FS108 when called at load. Pickles here are written by `pickle.dumps` or assembled
by hand; nothing is ever unpickled.
"""

from __future__ import annotations

import _operator
import functools
import operator
import pickle
import random
from typing import Any

import pytest

from fastscan.findings import Severity
from fastscan.rules import DANGEROUS, classify
from fastscan.rules.knowledge import CALLBACK_DISPATCH, UNKNOWN
from fastscan.scan import Scanner
from fastscan.train import payloads
from fastscan.verdict import FileResult

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
# The names that reach what the pickle chooses: a callable (call), an attribute or method by its
# name (attrgetter, methodcaller), an item of a referenced object (item getters, setitem,
# delitem), or that write into their first operand (in-place operators, like SETITEM, FS209).
_INPLACE_OPS = "add and concat floordiv lshift matmul mod mul or pow rshift sub truediv xor"
INPLACE = [f"{p}i{op}{p}" for op in _INPLACE_OPS.split() for p in ("", "__")]
SINKS = [
    *("call", "__call__", "attrgetter", "methodcaller", "itemgetter", "getitem", "__getitem__"),
    *("setitem", "__setitem__", "delitem", "__delitem__"),
    *INPLACE,
]
INERT = [
    *("eq", "ne", "lt", "le", "gt", "ge", "add", "mul", "truediv", "neg", "not_", "truth"),
    *("contains", "concat", "index", "length_hint", "is_", "countOf", "__eq__", "__add__"),
]


def scan(data: bytes) -> FileResult:
    return Scanner(model=None).scan_bytes(data)


def at_least(result: FileResult, severity: Severity) -> list[str]:
    return [f"{f.rule_id} {f.subject}" for f in result.findings if f.severity >= severity]


class _Reduce:
    """Pickles as `func(*args)`: the loader would call it (we only ever pickle it)."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


# -- classification ---------------------------------------------------------------------------


def test_every_operator_callable_has_its_own_reviewed_entry() -> None:
    """No callable of this Python's operator/_operator falls to the fail-closed wildcard: a
    new one (a later Python) fails here until it is reviewed."""
    for module, obj in (("operator", operator), ("_operator", _operator)):
        for name in dir(obj):
            got = classify(module, name)
            if name in ("__loader__", "__spec__", "__builtins__"):  # the import machinery
                assert got.is_dangerous, got
                continue
            if not callable(getattr(obj, name)):
                continue
            assert not got.entry_id.endswith(":operator:*"), (module, name, got.entry_id)
            assert got.category == CALLBACK_DISPATCH, (module, name, got)


@pytest.mark.parametrize("module", ["operator", "_operator"])
@pytest.mark.parametrize("name", SINKS)
def test_dispatching_names_stay_dangerous(module: str, name: str) -> None:
    got = classify(module, name)
    assert got.verdict_class == DANGEROUS, got
    assert got.resolved == f"operator.{name}"


@pytest.mark.parametrize("module", ["operator", "_operator"])
@pytest.mark.parametrize("name", INERT)
def test_operand_dunder_names_are_reviewed_unknown(module: str, name: str) -> None:
    got = classify(module, name)
    assert (got.verdict_class, got.category, got.pinned) == (UNKNOWN, CALLBACK_DISPATCH, True)


def test_attribute_paths_through_an_inert_name_stay_dangerous() -> None:
    # eq.__self__ is the _operator module: the reviewed entry must not vouch for the walk
    assert classify("_operator", "eq.__self__.attrgetter").is_dangerous
    assert classify("operator", "attrgetter.__call__").is_dangerous
    assert classify("operator", "__file__").is_dangerous  # not reviewed: the wildcard


# -- stored as values -------------------------------------------------------------------------

JINJA_LIKE = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "gteq": operator.ge,
    "lt": operator.lt, "lteq": operator.le, "in": operator.contains,
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "neg": operator.neg,
    "not": operator.not_,
}  # fmt: skip
DASK_LIKE = {
    "x": 1, "y": (operator.add, "x", 1), "z": (operator.mul, "y", (operator.neg, "x")),
    "w": [(operator.truth, "z"), (operator.concat, ["a"], ["b"])],
}  # fmt: skip


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("value", [JINJA_LIKE, DASK_LIKE], ids=["jinja2-table", "dask-graph"])
def test_stored_operators_are_low_fs108(value: object, protocol: int) -> None:
    result = scan(pickle.dumps(value, protocol=protocol))
    assert result.verdict == "clean"
    assert at_least(result, Severity.SUSPICIOUS) == []
    fs108 = [f for f in result.findings if f.rule_id == "FS108"]
    assert all(f.severity == Severity.LOW for f in fs108)
    assert {"_operator.add", "_operator.mul"} <= {f.subject for f in fs108}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_partial_of_an_inert_operator_is_clean(protocol: int) -> None:
    result = scan(pickle.dumps(functools.partial(operator.add, 1), protocol=protocol))
    assert result.verdict == "clean", at_least(result, Severity.SUSPICIOUS)


# -- called at load ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_calling_add_at_load_is_a_reviewed_unknown_finding(protocol: int) -> None:
    result = scan(pickle.dumps(_Reduce(operator.add, 1, 2), protocol=protocol))
    assert result.verdict == "suspicious", at_least(result, Severity.LOW)
    [finding] = [f for f in result.findings if f.rule_id == "FS108"]
    assert finding.severity == Severity.SUSPICIOUS
    assert finding.subject == "_operator.add"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "value",
    [
        {"g": operator.attrgetter, "m": operator.methodcaller, "i": operator.itemgetter},
        [operator.call],
        [operator.getitem, operator.setitem, operator.delitem],
        [operator.ior, operator.iadd],
        _Reduce(operator.call, len, "abc"),
        _Reduce(operator.setitem, {}, "k", "v"),
        _Reduce(operator.ior, {}, {"k": "v"}),
    ],
    ids=["getters", "call", "item-access", "in-place", "call()", "setitem()", "ior()"],
)
def test_dispatching_operators_stay_malicious(value: object, protocol: int) -> None:
    result = scan(pickle.dumps(value, protocol=protocol))
    assert result.verdict == "malicious"
    subjects = {f.subject for f in result.findings if f.severity == Severity.MALICIOUS}
    assert subjects and all(s.partition(".")[0] in ("operator", "_operator") for s in subjects)


def test_attrgetter_under_its_c_module_name_is_malicious() -> None:
    # E4: the C-level spelling, as a hand-written pickle would name it, called on a module
    data = b"c_operator\nattrgetter\n(Vsystem\ntR(cimportlib\nimport_module\n(Vos\ntRtR."
    result = scan(data)
    assert result.verdict == "malicious"
    assert "_operator.attrgetter" in {
        f.subject for f in result.findings if f.severity == Severity.MALICIOUS
    }


def test_e5_universal_resolver_fixtures_stay_malicious() -> None:
    """docs/threats.md E5 (GHSA-955r-x9j8-7rhh): every resolver shape, attrgetter included."""
    seen: set[str] = set()
    for seed in range(40):
        sample = payloads.PAYLOADS["E5"](random.Random(seed))
        seen.update(sample.globals)
        result = scan(sample.data)
        assert result.verdict == "malicious", (seed, sample.globals)
    assert "operator.attrgetter" in seen, seen


def test_operator_call_matrix_payload_stays_malicious() -> None:
    sample = payloads.PAYLOADS["F:operator.call"](random.Random(0))
    assert scan(sample.data).verdict == "malicious"
