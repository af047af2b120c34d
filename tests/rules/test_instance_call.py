"""FS107 (a call of a call result) when the result is an instance of a class the index read.

sqlalchemy pickles its event dispatch as `_UnpickleDispatch()(cls)`: a restore helper object is
made, then called. When the index read the class and its own `__call__` and neither reaches a
sink, calling the instance runs that method, nothing the pickle chose: FS107 is low. Both ways:
a `__call__` that reaches a sink, a class the index does not know, or a callable result that is
not an instance keeps FS107; a denylisted class stays malicious listed and withheld. Hand-built
pickles judged against a small fake index; nothing is loaded.
"""

from __future__ import annotations

import pytest

from fastscan.findings import Severity
from fastscan.rules import RuleSet, default_ruleset
from fastscan.rules.knowledge import load_shipped
from fastscan.scan import Scanner
from tests.index_fake import FakeIndex, Reach
from tests.rules.hand_pickles import call, g, pkl, s, t

HELPER = "acme.events"


def _scanner(call_reaches: bool) -> Scanner:
    ix = FakeIndex()
    ix.add(HELPER, "_Unpickle", "class")
    reach = Reach("call", "process", (f"{HELPER}._Unpickle.__call__", "os.system"))
    ix.add(HELPER, "_Unpickle.__call__", "function", *([reach] if call_reaches else []))
    ix.add(HELPER, "Target", "class")
    return Scanner(model=None, rules=RuleSet(load_shipped(), index=ix))


def _made(module: str, name: str, protocol01: bool) -> bytes:
    """An instance of module.name: NEWOBJ (protocol 2+) or copyreg._reconstructor (0-1)."""
    if protocol01:
        return call(g("copyreg", "_reconstructor"), g(module, name), g("builtins", "object"), b"N")
    return g(module, name) + b")\x81"  # EMPTY_TUPLE, NEWOBJ


def _fs107(data: bytes, scanner: Scanner) -> tuple[str, list[Severity]]:
    result = scanner.scan_bytes(data, "x.pkl")
    return result.verdict, [f.severity for f in result.findings if f.rule_id == "FS107"]


@pytest.mark.parametrize("protocol01", [False, True])
def test_calling_an_instance_whose_call_reaches_no_sink_is_low(protocol01: bool) -> None:
    data = pkl(_made(HELPER, "_Unpickle", protocol01) + t(g(HELPER, "Target")) + b"R")
    verdict, fs107 = _fs107(data, _scanner(call_reaches=False))
    assert fs107 == [Severity.LOW] and verdict == "clean", (verdict, fs107)


@pytest.mark.parametrize("protocol01", [False, True])
def test_an_instance_whose_call_reaches_a_sink_keeps_fs107(protocol01: bool) -> None:
    data = pkl(_made(HELPER, "_Unpickle", protocol01) + t(g(HELPER, "Target")) + b"R")
    verdict, fs107 = _fs107(data, _scanner(call_reaches=True))
    assert fs107 and min(fs107) >= Severity.SUSPICIOUS and verdict != "clean", (verdict, fs107)


def test_an_instance_of_a_class_nobody_indexed_keeps_fs107() -> None:
    data = pkl(_made("thirdparty_events", "_Unpickle", False) + t(s("x")) + b"R")
    verdict, fs107 = _fs107(data, _scanner(call_reaches=False))
    assert fs107 and min(fs107) >= Severity.SUSPICIOUS and verdict != "clean", (verdict, fs107)


def test_a_function_result_called_keeps_fs107() -> None:
    # a function's result, not an instance: its type is unknown
    ix = FakeIndex()
    ix.add(HELPER, "make", "function")
    scanner = Scanner(model=None, rules=RuleSet(load_shipped(), index=ix))
    data = pkl(call(call(g(HELPER, "make")), s("echo hi")))
    verdict, fs107 = _fs107(data, scanner)
    assert fs107 and min(fs107) >= Severity.SUSPICIOUS and verdict != "clean", (verdict, fs107)


def test_a_denylisted_instance_called_stays_malicious_listed_and_withheld() -> None:
    # functools.partial(os.system)("echo hi"): listed, and with both names withheld
    made = call(g("functools", "partial"), g("os", "system"))
    data = pkl(made + t(s("echo hi; touch /tmp/fastscan_x")) + b"R")
    assert Scanner(model=None).scan_bytes(data, "x.pkl").verdict == "malicious"
    rules = default_ruleset()
    names = rules.dangerous_names([("functools", "partial"), ("os", "system")])
    withheld = Scanner(model=None, rules=rules.withholding(names)).scan_bytes(data, "x.pkl")
    assert withheld.verdict != "clean", withheld.findings
