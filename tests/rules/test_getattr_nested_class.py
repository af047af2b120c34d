"""A nested class fetched by getattr is judged as the same name imported by STACK_GLOBAL.

Protocols < 4 pickle `Outer.Inner` as `getattr(Outer, "Inner")`, so an enum member of an unlisted
library (formulaic's `Factor.EvalMethod("lookup")`) is that getattr's result called on a string.
Protocols 4-5 import `Outer.Inner` by name and the call is a construction (FS103, which a
classifier score may settle); the getattr spelling raised FS112 (never settled) for the same
object. Both ways: the benign shape is FS103 in every protocol, while command text, a discarded or
called result, a function-shaped attribute and a sink class (denylisted, or withheld and judged
by the index) stay flagged. Fixtures come from a stand-in module or by hand; nothing is loaded.
"""

from __future__ import annotations

import enum
import pickle
import sys
import types
from collections.abc import Iterator

import pytest

from fastscan.rules import RuleSet, default_ruleset
from fastscan.rules.knowledge import load_shipped
from fastscan.scan import Scanner
from tests.index_fake import FakeIndex, Reach
from tests.rules.hand_pickles import call, g, pkl, s, t
from tests.rules.stand_ins import RULES_ONLY, judged

MODULE = "thirdparty_nested"  # nobody lists or indexes it
SCANNER = RULES_ONLY


@pytest.fixture(scope="module")
def outer() -> Iterator[type]:
    class Outer:
        class Kind(enum.Enum):
            DATA = "data"
            LOOKUP = "lookup"

    module = types.ModuleType(MODULE)
    for cls, qual in ((Outer, "Outer"), (Outer.Kind, "Outer.Kind")):
        cls.__module__, cls.__qualname__ = MODULE, qual
    module.Outer = Outer  # type: ignore[attr-defined]
    sys.modules[MODULE] = module
    try:
        yield Outer
    finally:
        del sys.modules[MODULE]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_an_enum_member_of_a_nested_class_is_judged_alike_in_every_protocol(
    outer: type, protocol: int
) -> None:
    data = pickle.dumps({"kind": outer.Kind.LOOKUP, "n": 3}, protocol=protocol)  # type: ignore[attr-defined]
    assert (b"getattr" in data) == (protocol < 4)  # the spelling this test is about
    verdict, rules, ok = judged(data)
    assert "FS112" not in rules and "FS103" in rules, rules
    assert verdict == "suspicious" and ok  # unlisted, and a score may settle it


def _getattr_call(attr: str, arg: bytes, tail: bytes = b"") -> bytes:
    """{"k": getattr(thirdparty_nested.Outer, attr)(arg)}, `tail` after the call."""
    fetched = call(g("builtins", "getattr"), g(MODULE, "Outer"), s(attr))
    return pkl(b"}" + s("k") + fetched + t(arg) + b"R" + tail + b"s")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_getattr_call("Kind", s("echo hi; touch /tmp/fastscan_x")), "command text"),
        (_getattr_call("Kind", s("https://example.org/x.sh")), "a URL"),
        (_getattr_call("from_value", s("lookup")), "a function-shaped attribute"),
        (_getattr_call("Kind", s("lookup"), b"0" + s("x")), "its result discarded"),
        (_getattr_call("Kind", s("lookup"), t() + b"R"), "its result called"),
        (_getattr_call("Kind", b"C\x05hello"), "bytes"),
    ],
)
def test_applications_through_getattr_stay_fs112(data: bytes, why: str) -> None:
    verdict, rules, ok = judged(data)
    assert "FS112" in rules and not ok and verdict != "clean", (why, rules)


def _withheld(data: bytes) -> Scanner:
    """Rules with every dangerous name `data` imports withheld (a novel gadget family)."""
    rules = default_ruleset()
    analysis = SCANNER.analyse(data, "x.pkl")
    pairs = {
        (x.module, x.name) for _s, f in analysis.streams for sub in f.walk() for x in sub.globals
    }
    return Scanner(model=None, rules=rules.withholding(rules.dangerous_names(pairs)))


@pytest.mark.parametrize("text", ["lookup", "echo hi; touch /tmp/fastscan_x"])
def test_a_sink_class_through_getattr_stays_caught_listed_and_withheld(text: str) -> None:
    # getattr(<the subprocess module>, "Popen")(text), its result kept: class-shaped, a sink
    owner = g("asyncio.subprocess", "subprocess")
    fetched = call(g("builtins", "getattr"), owner, s("Popen"))
    data = pkl(b"}" + s("k") + fetched + t(s(text)) + b"R" + b"s")
    assert judged(data)[0] == "malicious"
    verdict, rules, ok = judged(data, _withheld(data))
    assert verdict != "clean" and not ok, rules


def test_a_class_the_index_sees_reach_a_sink_stays_flagged() -> None:
    # acme.jobs.Outer.Runner's __init__ runs os.system (the index knows; no list names it)
    ix = FakeIndex()
    ix.add("acme.jobs", "Outer", "class")
    ix.add("acme.jobs", "Outer.Runner", "class",
           Reach("init", "process", ("acme.jobs.Outer.Runner.__init__", "os.system")))  # fmt: skip
    scanner = Scanner(model=None, rules=RuleSet(load_shipped(), index=ix))
    fetched = call(g("builtins", "getattr"), g("acme.jobs", "Outer"), s("Runner"))
    data = pkl(b"}" + s("k") + fetched + t(s("lookup")) + b"R" + b"s")
    verdict, rules, ok = judged(data, scanner)
    assert verdict != "clean" and not ok and rules & {"FS110", "FS102", "FS101"}, rules
