"""Call shapes of unlisted callables (docs/threats.md J6): a function applied to arguments stays at
least suspicious whatever the classifier says (FS112); a class restored with its state stays
settleable (FS103, FS903). Every protocol, through the real tokenizer, rules and verdict."""

from __future__ import annotations

import pickle
import types
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from fastscan import features, tokenizer
from fastscan.containers import open_container
from fastscan.facts import ARG_BYTES, ARG_NUMBER, ARG_STR
from fastscan.rules import evaluate
from fastscan.rules.unknown_calls import (
    APPLICATION,
    CONSTRUCTION,
    KNOWN_GADGET,
    KNOWN_INERT,
    RESTORATION,
    UNKNOWN_NAME,
    StreamShapes,
    knowledge_of,
)
from fastscan.shape_features import SHAPE_NAMES
from fastscan.train.fit import classifier_constraints
from fastscan.verdict import CLEAN, SUSPICIOUS, VerdictPolicy, combine, settle
from tests.rules.stand_ins import Reduce, never, stand_in_module

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
MODULE = "thirdparty_runner"  # a stand-in for some registry package; its code never runs here
# A classifier as sure as it gets that the file is benign, and a generous settling cut.
CONFIDENT = 0.0
POLICY = VerdictPolicy(0.5, 0.9, float("nan"), 0.1, 0.5, SUSPICIOUS)


@pytest.fixture(scope="module", autouse=True)
def thirdparty() -> Iterator[types.ModuleType]:
    """A module `pickle` can reference by name while the fixtures are written."""

    def run_command(*_args: object) -> None:  # what J6's helper would do: run its argument
        never()

    class Model:
        def __init__(self, name: str = "") -> None:
            self.name = name
            self.weights = [1.0, 2.0]

    with stand_in_module(MODULE, run_command, Model) as module:
        yield module


def _findings(data: bytes) -> list[tuple[str, str]]:
    return [(f.rule_id, f.subject) for f in evaluate([("", tokenizer.tokenize(data))])]


def _verdict(data: bytes, score: float = CONFIDENT) -> tuple[str, list[str]]:
    found = evaluate([("", tokenizer.tokenize(data))])
    verdict, extra = combine(found, "complete", score, float("nan"), POLICY)
    return verdict, [f.rule_id for f in settle(found, extra)]


def _extract(data: bytes, knowledge: _Index | None = None) -> np.ndarray:
    with open_container(data, name="x.pkl") as container:
        streams = [(s, tokenizer.tokenize(s.data)) for s in container.streams]
        return features.extract(container, streams, knowledge=knowledge)


def _row(data: bytes) -> dict[str, float]:
    row = _extract(data)
    return {n: float(row[features.FEATURE_NAMES.index(n)]) for n in SHAPE_NAMES}


def _shapes(data: bytes) -> list[tuple[str, str]]:
    facts = tokenizer.tokenize(data)
    names = [g.qualname for g in facts.globals]
    shapes = StreamShapes(facts)
    return [
        (names[s.callable_index], s.shape)
        for i, g in enumerate(facts.globals)
        if g.module == MODULE
        for s in shapes.of_callable(i)
    ]


# --- function application: never settled -------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("argument", ["echo fastscan > /tmp/fastscan-j6", b"echo fastscan"])
def test_function_applied_to_text_stays_suspicious(
    thirdparty: types.ModuleType, protocol: int, argument: str | bytes
) -> None:
    data = pickle.dumps(Reduce((thirdparty.run_command, (argument,))), protocol=protocol)
    subject = f"{MODULE}.run_command"
    assert (("FS112", subject)) in _findings(data)
    assert ("FS103", subject) not in _findings(data)
    assert _shapes(data) == [(subject, APPLICATION)]
    verdict, rule_ids = _verdict(data)
    assert verdict == SUSPICIOUS and "FS903" not in rule_ids  # J6: a sure classifier is not enough
    row = _row(data)
    kind = ARG_STR if isinstance(argument, str) else ARG_BYTES
    assert row["shape_application"] == row["shape_application_text"] == 1
    assert row["shape_arg_str" if kind == ARG_STR else "shape_arg_bytes"] == 1
    assert row["shape_name_function"] == 1 and row["shape_restoration"] == 0
    assert row["know_unknown"] == 1 and row["know_inert"] == row["know_gadget"] == 0


@pytest.mark.parametrize(
    ("name", "data"),
    [
        # result thrown away: run for its side effect (a class name does not help)
        ("discarded", b"cthirdparty_runner\nModel\n(I1\ntR0N."),
        # the result is called: a factory of callables
        ("called", b"cthirdparty_runner\nrun_command\n(I1\ntR(I2\ntR."),
        # a function's result fed to another call
        ("argument", b"cthirdparty_runner\nModel\n(cthirdparty_runner\nrun_command\n(I1\ntRtR."),
        # INST and OBJ call like REDUCE
        ("inst", b"(S'echo fastscan'\nithirdparty_runner\nrun_command\n."),
        ("obj", b"(cthirdparty_runner\nrun_command\nS'echo fastscan'\no."),
    ],
)
def test_other_application_shapes_stay_suspicious(name: str, data: bytes) -> None:
    assert APPLICATION in {shape for _, shape in _shapes(data)}, name
    verdict, rule_ids = _verdict(data)
    assert verdict == SUSPICIOUS and "FS112" in rule_ids and "FS903" not in rule_ids


# --- object restoration: settleable ---------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_class_restored_with_state_is_settleable(
    thirdparty: types.ModuleType, protocol: int
) -> None:
    data = pickle.dumps(thirdparty.Model("net"), protocol=protocol)
    assert ("FS103", f"{MODULE}.Model") in _findings(data)
    assert not any(rule == "FS112" for rule, _ in _findings(data))
    verdict, rule_ids = _verdict(data)
    assert verdict == CLEAN and "FS903" in rule_ids
    assert _verdict(data, score=0.6)[0] == SUSPICIOUS  # an unsure classifier does not settle
    row = _row(data)
    assert row["shape_application"] == 0
    # protocols 0/1 restore through copyreg._reconstructor, 2+ with NEWOBJ and BUILD
    restored = row["shape_by_helper"] if protocol < 2 else row["shape_restoration"]
    assert restored == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_class_called_on_a_string_then_built_is_restoration(
    thirdparty: types.ModuleType, protocol: int
) -> None:
    reduced = Reduce((thirdparty.Model, ("net",), {"weights": [1.0]}))
    data = pickle.dumps(reduced, protocol=protocol)
    assert _shapes(data) == [(f"{MODULE}.Model", RESTORATION)]
    assert _verdict(data)[0] == CLEAN


def test_function_of_numbers_kept_is_left_to_the_classifier(thirdparty: types.ModuleType) -> None:
    data = pickle.dumps({"x": Reduce((thirdparty.run_command, (3, 4)))}, protocol=4)
    assert _shapes(data) == [(f"{MODULE}.run_command", CONSTRUCTION)]
    assert tokenizer.tokenize(data).calls[0].arg_kinds == ARG_NUMBER
    assert _verdict(data)[0] == CLEAN


# --- what an index knows -----------------------------------------------------------------


@dataclass(frozen=True)
class _Symbol:
    kind: str
    reaches: tuple[str, ...]


class _Index:
    def __init__(self, reaches: tuple[str, ...]) -> None:
        self.reaches = reaches

    def lookup(self, module: str, qualname: str) -> _Symbol | None:
        if (module, qualname) == (MODULE, "run_command"):
            return _Symbol("function", self.reaches)
        return None


def test_index_knowledge_feeds_features_and_rules(thirdparty: types.ModuleType) -> None:
    data = pickle.dumps(Reduce((thirdparty.run_command, ("echo fastscan",))), protocol=4)
    assert knowledge_of(None, MODULE, "run_command") == UNKNOWN_NAME
    assert knowledge_of(_Index(()), MODULE, "run_command") == KNOWN_INERT
    assert knowledge_of(_Index(("subprocess.run",)), MODULE, "run_command") == KNOWN_GADGET
    assert knowledge_of(_Index(()), MODULE, "other") == UNKNOWN_NAME
    for index, slot in ((_Index(()), "know_inert"), (_Index(("os.system",)), "know_gadget")):
        row = _extract(data, index)
        assert row[features.FEATURE_NAMES.index(slot)] == 1
        assert row[features.FEATURE_NAMES.index("know_unknown")] == 0
    gadget_row = _extract(data, _Index(("os.system",)))
    assert gadget_row[features.FEATURE_NAMES.index("know_gadget_calls")] == 1
    facts = [("", tokenizer.tokenize(data))]
    # a function the index proves inert is no application worth flagging; unknown or gadget is
    assert "FS112" not in {f.rule_id for f in evaluate(facts, knowledge=_Index(()))}
    assert "FS112" in {f.rule_id for f in evaluate(facts, knowledge=_Index(("os.system",)))}


# --- padding can never lower the verdict ---------------------------------------------------


def test_shape_features_are_monotone_counts_that_padding_only_raises(
    thirdparty: types.ModuleType,
) -> None:
    from fastscan.train import wrappers
    from fastscan.train.payloads import as_snippet

    blind, monotone = classifier_constraints()
    residual = {"shape_res_kept", "shape_restoration", "shape_construction"}
    for name in SHAPE_NAMES:
        j = features.FEATURE_NAMES.index(name)
        if name in residual:  # a wrapped payload's call can leave them: the classifier is blind
            assert blind[j] and name in features.PADDING_SHIFTED, name
        else:  # the classifier may only rise with it
            assert not blind[j] and monotone[j] == 1, name
    payload = pickle.dumps(Reduce((thirdparty.run_command, ("echo fastscan",))), protocol=2)
    bare = _row(payload)
    # benign padding: arrays, and restored user objects (which add shape counts of their own)
    benign = [np.zeros(8, np.float32) for _ in range(50)] + [thirdparty.Model("x")] * 3
    padding = pickle.dumps(benign, protocol=2)
    padded_data = wrappers.inject(padding, as_snippet(payload), "middle")
    padded = _row(padded_data)
    for name in set(SHAPE_NAMES) - residual:
        assert padded[name] >= bare[name], name
    assert padded["shape_res_discarded"] > bare["shape_res_discarded"]  # inject POPs the payload
    verdict, rule_ids = _verdict(padded_data)
    assert verdict == SUSPICIOUS and "FS112" in rule_ids


def test_shipped_model_score_does_not_drop_under_padding(thirdparty: types.ModuleType) -> None:
    from fastscan import model
    from fastscan.train import wrappers
    from fastscan.train.payloads import as_snippet

    m = model.load(None)
    payload = pickle.dumps(Reduce((thirdparty.run_command, ("echo fastscan",))), protocol=2)
    rows = [_extract(payload)]
    for n in (10, 200):
        padding = pickle.dumps([np.zeros(8, np.float32) for _ in range(n)], protocol=2)
        rows.append(_extract(wrappers.inject(padding, as_snippet(payload), "middle")))
    prob, _ = m.score_matrix(features.to_matrix(rows))
    assert (prob[1:] >= prob[0] - 1e-6).all(), prob


# --- what the tokenizer records ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tokenizer_records_argument_kinds_through_the_memo(
    thirdparty: types.ModuleType, protocol: int
) -> None:
    from fastscan.facts import (
        ARG_CALL,
        ARG_CONTAINER,
        ARG_GLOBAL,
        ARG_NONE,
        ARG_OPAQUE,
    )

    args = (1, 2.5, "s", b"b", None, True, [1], {"k": 1}, (1, 2), thirdparty.Model)
    # the same argument tuple twice: the second call gets it from the memo
    twice = [Reduce((thirdparty.run_command, args)), Reduce((thirdparty.run_command, args))]
    data = pickle.dumps(twice, protocol=protocol)
    facts = tokenizer.tokenize(data)
    calls = [c for c in facts.calls if facts.globals[c.callable_index].name == "run_command"]
    assert len(calls) == 2
    # protocols <= 2 write bytes as a _codecs.encode call
    text = ARG_BYTES if protocol >= 3 else ARG_CALL
    expected = ARG_NUMBER | ARG_STR | text | ARG_NONE | ARG_CONTAINER | ARG_GLOBAL
    assert [c.arg_kinds for c in calls] == [expected, expected]
    assert not expected & ARG_OPAQUE
    empty = tokenizer.tokenize(pickle.dumps(Reduce((thirdparty.run_command, ())), protocol))
    assert [c.arg_kinds for c in empty.calls] == [0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tokenizer_records_what_became_of_a_result(
    thirdparty: types.ModuleType, protocol: int
) -> None:
    from collections import OrderedDict

    from fastscan.facts import USE_BUILT, USE_FILLED

    obj = thirdparty.Model("x")
    data = pickle.dumps([obj, OrderedDict(a=1)], protocol=protocol)
    facts = tokenizer.tokenize(data)
    uses = {
        facts.globals[c.callable_index].qualname: c.result_use
        for c in facts.calls
        if c.opcode != "BUILD" and c.callable_index >= 0
    }
    maker = f"{MODULE}.Model" if protocol >= 2 else "copyreg._reconstructor"
    assert uses[maker] & USE_BUILT
    assert uses["collections.OrderedDict"] & USE_FILLED
