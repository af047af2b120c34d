"""Rule-level precision on real libraries (issue #15): long index reaches and the memo budget.

Pickles are hand-written; nothing here is loaded."""

from __future__ import annotations

import pytest

from fastscan.facts import ScanLimits
from fastscan.findings import Severity
from fastscan.rules import RuleSet, default_ruleset
from fastscan.rules.engine import evaluate
from fastscan.rules.indexed import REACH_STEPS_MAX
from fastscan.rules.knowledge import load_shipped
from fastscan.scan import Scanner
from fastscan.tokenizer import tokenize

INDEX = default_ruleset().index
needs_index = pytest.mark.skipif(INDEX is None, reason="no shipped index in this checkout")

INNER = b"\x80\x02cposix\nsystem\nX\x07\x00\x00\x00echo hiq\x85R."
WRAPPER = (
    b"\x80\x02ctorch.utils.data.datapipes.datapipe\n_IterDataPipeSerializationWrapper\n)\x81}"
    b"X\x09\x00\x00\x00_datapipeC" + bytes([len(INNER)]) + INNER + b"sb."
)


@needs_index
def test_a_reach_past_the_bound_is_suspicious_not_malicious() -> None:
    # sympy's Pow.__new__ reaches compile() only through sympify -> parse_expr (5+ steps)
    assert INDEX is not None
    pow_ = INDEX.lookup("sympy.core.power", "Pow")
    assert pow_ is not None and pow_.reaches
    assert min(len(r.path) for r in pow_.reaches if r.hook == "new") > REACH_STEPS_MAX
    data = b"\x80\x02csympy.core.power\nPow\n)R."
    result = Scanner(model=None).scan_bytes(data, "pow.pkl")
    reach = [f for f in result.findings if f.rule_id == "FS110"]
    assert reach and all(f.severity == Severity.SUSPICIOUS for f in reach)
    assert "past the malicious bound" in reach[0].message
    assert result.verdict == "suspicious"


@needs_index
def test_index_found_callback_dispatch_is_suspicious_not_malicious() -> None:
    # optuna's _ParzenEstimator.__init__ calls a weights function it is given: a dispatcher,
    # dangerous only with a callable the pickle supplies (here an unlisted one), as the rule
    # base grades dispatchers; handed only data it is low (tests/test_rules_callsites.py)
    data = (
        b"\x80\x02coptuna.samplers._tpe.parzen_estimator\n_ParzenEstimator\n"
        b"cmylab.util\nweights\n\x85R."
    )
    result = Scanner(model=None).scan_bytes(data, "pe.pkl")
    reach = [f for f in result.findings if f.rule_id == "FS110"]
    assert reach and all(f.severity == Severity.SUSPICIOUS for f in reach)
    assert "callback dispatch" in reach[0].message
    assert result.verdict == "suspicious"


@needs_index
def test_a_reach_within_the_bound_stays_malicious() -> None:
    kb = load_shipped()  # denylist entry withheld: the index alone must find the nested loader
    kb.entries = [e for e in kb.entries if e.module != "torch.utils.data.datapipes.datapipe"]
    rules = RuleSet(kb, index=INDEX)
    result = Scanner(model=None, rules=rules).scan_bytes(WRAPPER, "w.pkl")
    reach = [f for f in result.findings if f.rule_id == "FS110"]
    assert reach and reach[0].severity == Severity.MALICIOUS
    assert result.verdict == "malicious"


def _memo_findings(data: bytes, max_memo: int) -> list[tuple[str, Severity]]:
    facts = tokenize(data, ScanLimits(max_memo=max_memo))
    assert facts.anomaly_count("memo_budget") >= 1
    return [(f.rule_id, f.severity) for f in evaluate([("", facts)]) if f.rule_id == "FS206"]


def test_memo_budget_with_nothing_read_back_is_a_low_note() -> None:
    # 20 memoised strings appended to a list, never read back: dropping PUTs loses nothing
    data = b"\x80\x04]\x94" + b"\x8c\x01a\x94a" * 20 + b"."
    found = _memo_findings(data, 10)
    assert found and all(sev == Severity.LOW for _rule, sev in found)


def test_memo_budget_with_a_dropped_entry_read_back_stays_suspicious() -> None:
    # the 11th PUT (key 11) is dropped and then read back: its value is unknown to the scan
    data = b"\x80\x04]\x94" + b"\x8c\x01a\x94a" * 20 + b"h\x0ba."
    found = _memo_findings(data, 10)
    assert (("FS206", Severity.SUSPICIOUS)) in found


def test_default_memo_budget_covers_millions_of_entries() -> None:
    assert ScanLimits().max_memo >= 8_000_000


LOADER = b"\x80\x02ctorch.storage\n_load_from_bytes\nq\x00"
BENIGN_INNER = b"\x80\x02]q\x00(K\x01K\x02e."  # [1, 2]


def _bytes_op(payload: bytes) -> bytes:
    return b"C" + bytes([len(payload)]) + payload


def _loader_verdict(data: bytes) -> tuple[str, Severity]:
    result = Scanner(model=None).scan_bytes(data, "t.pkl")
    loader = [f for f in result.findings if f.subject == "torch.storage._load_from_bytes"]
    assert loader, result.findings
    return result.verdict, loader[0].severity


def test_nested_loader_over_visible_benign_bytes_is_low() -> None:
    data = LOADER + _bytes_op(BENIGN_INNER) + b"q\x01\x85q\x02Rq\x03."
    verdict, severity = _loader_verdict(data)
    assert severity == Severity.LOW and verdict != "malicious"


def test_nested_loader_over_visible_malicious_bytes_stays_malicious() -> None:
    data = LOADER + _bytes_op(INNER) + b"\x85R."
    assert _loader_verdict(data) == ("malicious", Severity.MALICIOUS)


@pytest.mark.parametrize(
    "data",
    [
        # a second argument: the loader is not given just the literal
        LOADER + _bytes_op(BENIGN_INNER) + b"K\x01\x86R.",
        # bytes the tokenizer cannot read as pickles (a zip archive's magic): not visible
        LOADER + _bytes_op(b"PK\x03\x04" + b"\x00" * 20) + b"\x85R.",
        # the argument is another call's result
        LOADER + b"c_codecs\nencode\nX\x02\x00\x00\x00abX\x06\x00\x00\x00latin1\x86R\x85R.",
        # one visible call, and the loader also handed to map() over something else
        LOADER + _bytes_op(BENIGN_INNER) + b"\x85R0cbuiltins\nmap\nh\x00]\x86R.",
    ],
    ids=["two-args", "zip", "computed", "also-passed"],
)
def test_nested_loader_without_visible_content_stays_malicious(data: bytes) -> None:
    verdict, severity = _loader_verdict(data)
    assert severity == Severity.MALICIOUS and verdict == "malicious"


PARTIAL = b"\x80\x02cfunctools\npartial\n"


def _sink_severity(data: bytes, subject: str) -> Severity:
    result = Scanner(model=None).scan_bytes(data, "s.pkl")
    found = [f.severity for f in result.findings if f.subject == subject]
    assert found, result.findings
    return max(found)


def _getattr(module: str, name: str, attr: str) -> bytes:
    text = attr.encode()
    return (
        b"cbuiltins\ngetattr\nc"
        + f"{module}\n{name}\n".encode()
        + b"X"
        + len(text).to_bytes(4, "little")
        + text
        + b"\x86R"
    )


@needs_index
@pytest.mark.parametrize(
    ("data", "subject", "benign"),
    [
        # skorch pickles partial(skorch.setter.optimizer_setter): the index finds it inert
        (PARTIAL + b"cskorch.setter\noptimizer_setter\n\x85R.", "functools.partial", True),
        # sympify reaches compile() through parse_expr: a partial around it stays a sink
        (PARTIAL + b"csympy.core.sympify\nsympify\n\x85R.", "functools.partial", False),
        # sympy pickles partial(getattr(Symbol, "__new__"), ...): Symbol.__new__ is inert
        (
            PARTIAL + _getattr("sympy.core.symbol", "Symbol", "__new__") + b"\x85R.",
            "functools.partial",
            True,
        ),
        # the same shape naming a sink attribute stays malicious
        (
            PARTIAL + _getattr("sympy.core.symbol", "Symbol", "system") + b"\x85R.",
            "functools.partial",
            False,
        ),
        # a getattr result called: Symbol.xreplace is index-inert, so the call is no sink
        (_getattr("sympy.core.symbol", "Symbol", "xreplace") + b")R.", "builtins.getattr", True),
    ],
    ids=["partial-inert", "partial-reaching", "partial-getattr", "partial-getattr-sink", "called"],
)
def test_call_shapes_graded_through_the_index(data: bytes, subject: str, benign: bool) -> None:
    severity = _sink_severity(b"\x80\x02" + data.removeprefix(b"\x80\x02"), subject)
    assert (severity < Severity.MALICIOUS) is benign
