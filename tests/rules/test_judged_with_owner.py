"""The last rule findings that flag skorch and spaCy files when nobody indexed their library
(issue #15), each checked both ways:

- FS113: a class whose load-time hooks reach a sink, only stored in objects of unlisted classes
  (skorch's `NeuralNet.iterator_train = DataLoader`), is as uncertain as those classes: suspicious
  and judgeable with their FS103. Called, handed to a call, held by a function's result or by a
  holder that is handed on: FS110 as before.
- getattr on the result of a reviewed callable of fixed type (spaCy's
  `getattr(re._compile(p, f), "search")`) is that type's attribute, judged like a GLOBAL of it:
  the matching methods are allowlisted, `sub` stays a sink, an unknown callable's result is
  never typed.
- FS112: an unlisted function whose arguments are state and whose result only unlisted classes
  or allowed callables keep is a reconstruction (spaCy's `Tokenizer(unpickle_vocab(...))`); long
  protocol <= 2 latin-1 bytes are weighed like short ones. Command text, a pickle that runs one,
  a result fed to an unlisted function (`eval(b64decode(...))`), called or instantiated stay
  FS112.

Fixtures are written by `pickle` from stand-in modules whose functions raise if called, or by
hand; nothing scanned is loaded.
"""

from __future__ import annotations

import copyreg
import math
import pickle
import re
import struct
import types
from collections.abc import Iterator

import pytest

from fastscan.findings import Finding, Severity
from fastscan.rules import RuleSet, callsites, default_ruleset
from fastscan.rules.knowledge import load_shipped
from fastscan.scan import Scanner
from fastscan.verdict import CLEAN, VerdictPolicy, combine, settleable
from tests.index_fake import sample
from tests.rules.hand_pickles import g, pkl, s
from tests.rules.stand_ins import Reduce, never, stand_in_module

SCANNER = Scanner(model=None)
FAKE = Scanner(model=None, rules=RuleSet(load_shipped(), index=sample()))
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
MODULE = "thirdparty_owner"  # nobody lists or indexes it
# A model's policy: a classifier probability below 0.05 settles judgeable findings (FS903).
POLICY = VerdictPolicy(0.5, 0.9, math.nan, math.nan, 0.05, "suspicious")


@pytest.fixture(scope="module", autouse=True)
def mod() -> Iterator[types.ModuleType]:
    class Holder:  # an unlisted class restored from what it is handed
        pass

    def from_state(*_args: object) -> None:  # a reconstructor of binary state
        never()

    def run(*_args: object) -> None:  # J6: runs what it is handed
        never()

    def decode(*_args: object) -> None:  # b64decode-like
        never()

    with stand_in_module(MODULE, Holder, from_state, run, decode) as module:
        yield module


def scan(data: bytes, scanner: Scanner = SCANNER) -> tuple[str, dict[str, list[Severity]], bool]:
    result = scanner.scan_bytes(data, "x.pkl")
    found: dict[str, list[Severity]] = {}
    for f in result.findings:
        found.setdefault(f.rule_id, []).append(f.severity)
    return result.verdict, found, settleable(result.findings, "complete")


def findings(data: bytes, scanner: Scanner = SCANNER) -> list[Finding]:
    return scanner.scan_bytes(data, "x.pkl").findings


# -- FS113: a reach only held by objects of unlisted classes -----------------------------------

SPAWNER = g("spawnlib", "Spawner")  # fake index: its __init__ reaches subprocess (2 steps)
OWNER = g("mylab.util", "Owner")
RECON = g("copy_reg", "_reconstructor") + b"(" + OWNER + g("__builtin__", "object") + b"NtR"


@pytest.mark.parametrize(
    "body",
    [
        OWNER + b")\x81}" + s("iterator_train") + SPAWNER + b"sb",  # NEWOBJ + BUILD state
        RECON + b"}" + s("iterator_train") + SPAWNER + b"sb",  # copyreg rebuilds the class
        OWNER + b")\x81(" + s("k") + SPAWNER + b"u",  # one of its items (SETITEMS)
        OWNER + b")\x81}" + s("a") + b"]" + SPAWNER + b"asb",  # inside a list in its state
    ],
    ids=["state", "reconstructor", "items", "nested-list"],
)
def test_a_reach_held_by_an_unlisted_class_is_judged_with_it(body: bytes) -> None:
    verdict, found, ok = scan(pkl(body), FAKE)
    assert found.get("FS113") == [Severity.SUSPICIOUS] and "FS110" not in found, found
    assert found["FS103"] == [Severity.SUSPICIOUS] and ok and verdict == "suspicious", found
    # a confident benign score settles the holder and what it holds together
    settled, _ = combine(findings(pkl(body), FAKE), "complete", score=0.01, policy=POLICY)
    assert settled == CLEAN


@pytest.mark.parametrize(
    "body",
    [
        SPAWNER + s("echo hi") + b"\x85R",  # called
        OWNER + b"(" + SPAWNER + b"tR",  # handed to a call
        g("mylab.util", "make_owner") + b")R}" + s("f") + SPAWNER + b"sb",  # a function's result
        # held by an unlisted object that a call then receives
        OWNER + b"(" + OWNER + b")\x81}" + s("f") + SPAWNER + b"sbtR",
        # held by a partial (a dispatcher): it may call it
        g("functools", "partial") + b"(" + g("mylab.util", "f") + b"tR(" + SPAWNER + b")}Ntb",
    ],
    ids=["called", "argument", "function-result", "holder-handed", "partial-state"],
)
def test_a_reach_that_can_be_called_keeps_fs110(body: bytes) -> None:
    verdict, found, ok = scan(pkl(body), FAKE)
    assert "FS113" not in found and "FS110" in found and not ok, found
    assert verdict == "malicious", found


def test_a_holder_applied_like_a_function_is_not_settled() -> None:
    # the holder's own call is an application (its result thrown away): FS112, so FS113 beside
    # it settles nothing
    body = OWNER + b")R}" + s("f") + SPAWNER + b"sb0N"
    verdict, found, ok = scan(pkl(body), FAKE)
    assert "FS112" in found and not ok and verdict == "suspicious", found


# -- getattr on a typed result --------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("method", ["search", "match", "fullmatch", "finditer"])
def test_a_compiled_patterns_matching_method_is_clean(protocol: int, method: str) -> None:
    # spaCy's tokenizer: prefix_search = re.compile(...).search, pickled as
    # getattr(re._compile(pattern, flags), "search")
    hook = getattr(re.compile(r"^[\(\[\{]|^'", re.UNICODE), method)
    verdict, found, _ = scan(pickle.dumps({"prefix_search": hook}, protocol=protocol))
    assert verdict == "clean" and found["FS102"] == [Severity.LOW], found


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_compiled_patterns_sub_stays_a_sink(protocol: int) -> None:
    hook = re.compile("a").sub
    verdict, found, _ = scan(pickle.dumps({"hook": hook}, protocol=protocol))
    assert verdict == "malicious" and Severity.MALICIOUS in found["FS102"], found


def test_an_unknown_callables_result_is_never_typed() -> None:
    # the same getattr on what an unlisted function returned: its type is unknown
    body = g("builtins", "getattr") + b"(" + g("mylab.util", "compile") + b"(" + s("a") + b"tR"
    verdict, found, _ = scan(pkl(body + s("search") + b"tR"))
    assert verdict == "malicious", found


def test_a_typed_result_given_state_is_not_typed() -> None:
    # a BUILD on the result may set the attribute getattr then reads
    made = g("re", "_compile") + b"(" + s("a") + b"K\x00tR}" + s("search") + s("v") + b"sb"
    body = g("builtins", "getattr") + b"(" + made + s("search") + b"tR"
    verdict, found, _ = scan(pkl(body))
    assert verdict == "malicious" and Severity.MALICIOUS in found["FS102"], found


# -- FS112: results kept by the calls they are fed to ------------------------------------------

WKB = b"\x01\x01\x00\x00\x00" + struct.pack("<dd", 1.5, -2.0)  # binary state (NUL bytes)


@pytest.mark.parametrize("protocol", range(3, pickle.HIGHEST_PROTOCOL + 1))
def test_a_reconstruction_fed_to_an_unlisted_class_is_a_reconstruction(
    mod: types.ModuleType, protocol: int
) -> None:
    # spaCy: Tokenizer(unpickle_vocab(...), ...); the class's own call is its FS103
    obj = Reduce((mod.Holder, (Reduce((mod.from_state, (WKB, 3))), "little")))
    verdict, found, ok = scan(pickle.dumps({"tokenizer": obj}, protocol=protocol))
    assert "FS112" not in found and ok and verdict == "suspicious", found


@pytest.mark.parametrize("protocol", range(3, pickle.HIGHEST_PROTOCOL + 1))
def test_a_reconstruction_fed_to_an_allowed_constructor_is_a_reconstruction(
    mod: types.ModuleType, protocol: int
) -> None:
    obj = Reduce((list, (Reduce((mod.from_state, (WKB,))),)))
    verdict, found, ok = scan(pickle.dumps({"items": obj}, protocol=protocol))
    assert "FS112" not in found and ok and verdict == "suspicious", found


@pytest.mark.parametrize(
    "shape",
    ["function", "called", "reconstructor", "command-text", "loadable", "dispatcher"],
)
def test_a_result_fed_to_a_call_that_may_run_it_stays_fs112(
    mod: types.ModuleType, shape: str
) -> None:
    inner = Reduce((mod.from_state, (WKB,)))
    data = b""
    if shape == "function":  # eval(b64decode("...")): both function-shaped, both unlisted
        obj: object = Reduce((mod.run, (Reduce((mod.decode, ("ZWNobyBwd25lZA",))),)))
    elif shape == "called":  # the class's result is called: an application
        made = g(MODULE, "from_state") + b"(B" + struct.pack("<I", len(WKB)) + WKB + b"tR"
        obj = None
        data = b"\x80\x04" + g(MODULE, "Holder") + b"(" + made + b"tR)R."
    elif shape == "reconstructor":  # copyreg instantiates the result as a class
        obj = Reduce((copyreg._reconstructor, (inner, object, None)))  # type: ignore[attr-defined]
    elif shape == "command-text":  # the producer's own text is a command line
        obj = Reduce((mod.Holder, (Reduce((mod.from_state, ("sh -c 'touch /tmp/fs-j6'",))),)))
    elif shape == "loadable":  # the producer's own bytes are a pickle that runs a command
        # (a pickle read whole is graded by its own findings: test_unlisted_arguments)
        nested = pickle.dumps(Reduce((mod.run, ("sh -c 'touch /tmp/fs-j6'",))), protocol=2)
        obj = Reduce((mod.Holder, (Reduce((mod.from_state, (nested,))),)))
    else:  # a reviewed dispatcher calls what it is handed
        obj = Reduce((map, (inner, [1])))
    if obj is not None:
        data = pickle.dumps([obj], protocol=4)
    verdict, found, ok = scan(data)
    assert not ok and verdict in ("suspicious", "malicious"), found
    assert "FS112" in found or verdict == "malicious", found


def _latin1(n: int, chunk: bytes) -> bytes:
    """Protocol 2 writes bytes as `_codecs.encode(text, "latin1")`: `n` bytes of `chunk`."""
    return (chunk * (n // len(chunk) + 1))[:n]


@pytest.mark.parametrize("n", [100, 10_000, 200_000])
def test_long_latin1_state_is_weighed_like_short(mod: types.ModuleType, n: int) -> None:
    # spaCy's unpickle_vectors(<msgpack bytes>) in protocol 2: longer than MAX_TEXT
    state = _latin1(n, b"\x84\xa7strings\xda\x00\x02[]\x00\xff")
    verdict, found, ok = scan(pickle.dumps([Reduce((mod.from_state, (state,)))], protocol=2))
    assert "FS112" not in found and ok and verdict == "suspicious", found


@pytest.mark.parametrize("n", [100, 10_000])
def test_long_latin1_commands_and_pickles_stay_fs112(mod: types.ModuleType, n: int) -> None:
    command = _latin1(n, b"echo fastscan > /tmp/fastscan-j6; ")
    # a pickle read whole is graded by its own findings (test_unlisted_arguments); this one runs
    # a command
    nested = pickle.dumps(Reduce((mod.run, ("touch /tmp/fs-j6",))), protocol=2) + b"\x00" * n
    for raw in (command, nested):
        _verdict, found, ok = scan(pickle.dumps([Reduce((mod.run, (raw,)))], protocol=2))
        assert "FS112" in found and not ok, (n, found)


def test_latin1_state_past_the_judged_bound_stays_fs112(
    mod: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callsites, "MAX_JUDGED_TEXT", 8192)
    data = pickle.dumps([Reduce((mod.from_state, (_latin1(10_000, WKB),)))], protocol=2)
    _verdict, found, ok = scan(data)
    assert "FS112" in found and not ok, found
    monkeypatch.setattr(callsites, "MAX_JUDGED_TEXT", 1 << 20)
    monkeypatch.setattr(callsites, "MAX_JUDGED_TOTAL", 8192)  # the walk's budget is spent
    _verdict, found, ok = scan(data)
    assert "FS112" in found and not ok, found


def test_the_shipped_rules_know_the_result_types() -> None:
    rules = default_ruleset()
    assert rules.classify("re", "Pattern.search").is_safe
    assert rules.classify("re", "Pattern.sub").is_dangerous
