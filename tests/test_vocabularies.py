"""Each vocabulary has one table: every emitted code is listed there with a deliberate rule and
feature slot, the tables refuse a name twice, and the frozen feature list does not move."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from fastscan import _tokenizer, facts, features, opcodes, tokenizer
from fastscan import findings as R
from fastscan.containers import anomalies as A
from fastscan.containers import formats as F
from fastscan.containers.base import Container, ContainerAnomaly
from fastscan.rules import knowledge
from fastscan.rules.engine import evaluate
from fastscan.rules.structure import ANOMALY_RULES

PACKAGE = Path(features.__file__).parent
NATIVE = PACKAGE.parent / "native"
CONTAINER_SOURCES = sorted((PACKAGE / "containers").glob("*.py"))

# sha256 of "|".join(FEATURE_NAMES) of feature schema 3, as the shipped model was trained on it
FEATURE_NAMES_SHA256 = "f90d6d54a826a1975d0abdbcfbc41f0e0a1d396e7b3f795634c92e3a65a9855e"


def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_feature_names_are_the_models_contract() -> None:
    digest = hashlib.sha256("|".join(features.FEATURE_NAMES).encode()).hexdigest()
    assert digest == FEATURE_NAMES_SHA256
    assert features.CONTAINER_ANOMALIES is A.FEATURE_SLOTS
    assert features.FORMATS is F.FEATURE_FORMATS
    assert features.WRAPPERS is F.FEATURE_WRAPPERS
    assert features.STREAM_KINDS is F.FEATURE_STREAM_KINDS
    assert features.STREAM_STATUSES is facts.STREAM_STATUSES
    assert features.CATEGORIES is knowledge.CATEGORIES
    assert features.CALL_OPCODES is opcodes.CALL_OPCODES


# -- container anomalies -----------------------------------------------------------------------


@pytest.mark.parametrize("path", CONTAINER_SOURCES, ids=lambda p: p.name)
def test_container_readers_emit_table_constants_only(path: Path) -> None:
    text = _source(path)
    literal = re.compile(r'(?:\.anomaly|hit_budget|ContainerAnomaly)\(\s*["\']')
    assert not literal.search(text), f"{path.name} emits a code typed by hand"
    for name in set(re.findall(r"\bA\.([A-Z][A-Z0-9_]+)\b", text)) - {"BY_CODE"}:
        assert isinstance(getattr(A, name, None), A.AnomalyKind), f"{path.name}: A.{name}"


def _joblib_walk_codes() -> set[str]:
    text = _source(NATIVE / "_joblibwalk.pyx")
    tuples = re.findall(r'anomalies\.append\(\s*\(\s*"([a-z0-9_]+)"', text)
    chosen = re.findall(r'\bcode = "([a-z0-9_]+)" if .* else "([a-z0-9_]+)"', text)
    return set(tuples) | {c for pair in chosen for c in pair}


def test_native_joblib_walk_codes_are_in_the_table() -> None:
    codes = _joblib_walk_codes()
    assert {"joblib_walk_budget", "joblib_array_extent_mismatch", "trailing_data"} <= codes
    assert codes <= set(A.BY_CODE), sorted(codes - set(A.BY_CODE))


def test_every_code_has_a_container_rule_and_a_declared_slot() -> None:
    used_slots = set()
    for code, kind in A.BY_CODE.items():
        assert kind.code == code
        assert R.REGISTRY[kind.rule.rule_id] is kind.rule
        assert kind.rule.rule_id.startswith("FS3"), code
        assert kind.slot in A.FEATURE_SLOTS, code
        assert kind.description
        assert (kind.slot == A.BUDGET_SLOT) == bool(kind.budget) == code.startswith("budget_")
        used_slots.add(kind.slot)
    # every column counts something: a code of its own, the budgets, or the declared others
    assert used_slots == set(A.FEATURE_SLOTS)


@pytest.mark.parametrize("code", sorted(A.BY_CODE))
def test_each_code_reaches_its_rule_and_its_feature_column(code: str) -> None:
    kind = A.BY_CODE[code]
    container = Container("zip", ".zip", anomalies=[ContainerAnomaly(code, "m", "d")])
    found = [f for f in evaluate([], container) if f.subject == code]
    assert [f.rule_id for f in found] == [kind.rule.rule_id]
    row = features.extract(container, [])
    canom = {n: row[i] for i, n in enumerate(features.FEATURE_NAMES) if n.startswith("canom_")}
    assert canom == {f"canom_{s}": float(s == kind.slot) for s in A.FEATURE_SLOTS}


def test_budget_anomalies_name_the_budget() -> None:
    from fastscan.containers._context import ContainerLimits, ScanState

    state = ScanState(Container("zip", ".zip"), ContainerLimits())
    state.hit_budget(A.BUDGET_MEMBERS, "x", "many")
    state.hit_budget(A.BUDGET_DEPTH, "y", "deep")
    assert state.container.budget == "members"  # the first one hit
    assert [a.code for a in state.container.anomalies] == ["budget_members", "budget_depth"]


def test_unlisted_container_code_is_a_note_counted_as_other() -> None:
    container = Container("zip", ".zip", anomalies=[ContainerAnomaly("budget_not_a_code")])
    assert [f.rule_id for f in evaluate([], container)] == [R.CONTAINER_NOTE.rule_id]
    row = features.extract(container, [])
    assert row[features.FEATURE_NAMES.index("canom_other")] == 1
    assert row[features.FEATURE_NAMES.index("canom_budget")] == 0


# -- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CONTAINER_SOURCES, ids=lambda p: p.name)
def test_container_sources_name_formats_by_constant(path: Path) -> None:
    text = _source(path)
    for name in re.findall(r"\bF\.([A-Z][A-Z0-9_]+)\b", text):
        value = getattr(F, name, None)
        known = F.FEATURE_STREAM_KINDS if name.startswith("KIND_") else F.BY_NAME
        assert isinstance(value, str) and value in known, f"{path.name}: F.{name}"
    if path.name != "formats.py":
        returned = re.findall(r'return "([a-z0-9_]+)"', text)
        assert not set(returned) & set(F.BY_NAME), f"{path.name} returns a format by hand"
        kinds = set(F.FEATURE_STREAM_KINDS) - {F.OTHER}
        assert not set(re.findall(r'"([a-z_]+)"', text)) & (kinds - {F.KIND_PICKLE}), path.name


def test_format_sets_and_columns_come_from_the_table() -> None:
    assert set(F.FEATURE_FORMATS) - {F.OTHER} <= set(F.BY_NAME)
    assert set(F.FEATURE_WRAPPERS) == F.NESTED_FORMATS
    assert F.NESTED_FORMATS == F.ARCHIVE_FORMATS | F.COMPRESSED_FORMATS
    assert not F.NESTED_FORMATS & set(F.NO_PICKLE_FORMATS)
    assert set(F.BY_NAME) >= F.PICKLE_FORMATS | F.SINGLE_PICKLE_FORMATS | F.TORCH_FORMATS
    assert all(F.NO_PICKLE_FORMATS.values())


# -- statuses and tokenizer anomalies ------------------------------------------------------------


def test_native_enums_match_facts() -> None:
    assert _tokenizer.ANOMALY_NAMES == facts.NATIVE_ANOMALY_CODES
    assert _tokenizer.STATUS_NAMES == facts.NATIVE_STATUSES
    assert set(facts.NATIVE_STATUSES) <= set(facts.STREAM_STATUSES)


def test_probe_reads_native_anomaly_values_through_the_table() -> None:
    # the loader raises at a stack underflow before the import: no pickle a loader would run
    assert not tokenizer.starts_like_pickle(b"\x85cos\nsystem\n)R.")
    assert not tokenizer.starts_like_pickle(b"\x80\x02\x85cos\nsystem\n)R.")
    assert tokenizer.starts_like_pickle(
        b"cos\nsystem\n\x85."
    )  # the underflow after the import: it ran


def test_python_side_tokenizer_codes_are_emitted_by_constant() -> None:
    text = _source(PACKAGE / "tokenizer.py")
    assert not re.search(r'Anomaly\(\s*["\']', text)
    python_side = {c for c, a in facts.ANOMALY_TABLE.items() if a.native < 0}
    assert python_side == {facts.NON_UTF8_NAME, facts.NESTED_BUDGET}
    for code in python_side:
        assert f"Anomaly({code.upper()}" in text


def test_every_tokenizer_code_has_a_rule_or_a_reason() -> None:
    handled_in_context = {facts.STACK_GLOBAL_NON_STRING}  # reported per global as FS104
    assert set(facts.ALL_ANOMALY_CODES) == set(ANOMALY_RULES) | handled_in_context
    assert tuple(facts.ANOMALY_TABLE) == facts.ANOMALY_CODES + facts.LATER_ANOMALY_CODES


# -- categories, opcode roles, rule ids ------------------------------------------------------------


def test_categories_are_one_closed_set() -> None:
    assert (
        set(knowledge.CATEGORIES) == knowledge.DANGEROUS_CATEGORIES | knowledge.UNKNOWN_CATEGORIES
    )
    entries = knowledge.load_shipped().entries
    closed = {e.category for e in entries if e.verdict_class != knowledge.SAFE}  # safe: free text
    assert {"exec_sink", "decoder"} <= closed <= set(knowledge.CATEGORIES)
    from fastscan.index.evaluate import PRIORITY

    assert set(PRIORITY) == knowledge.DANGEROUS_CATEGORIES  # a triage order over the same set


def test_opcode_roles_name_real_opcodes() -> None:
    roles = (
        opcodes.BYTES_OPCODES,
        opcodes.CALL_OPCODES,
        opcodes.STATE_OPCODES,
        opcodes.IMPORT_OPCODES,
        opcodes.START_OPCODES,
    )
    assert all(name in opcodes.BY_NAME for role in roles for name in role)
    assert set(opcodes.CALL_OPCODES) >= opcodes.STATE_OPCODES
    # the bytes `probe` and `sniff` accept as a pickle's first opcode
    start = b"\x80(}])NIJKLMFGSTUVXcB\x8c\x8d\x8e\x88\x89\x8a\x8bCP\x96\x97\x8f"
    assert frozenset(start) == opcodes.START_BYTES


@pytest.mark.parametrize(
    "module",
    [
        "verdict.py",
        "sinks.py",
        "rules/engine.py",
        "rules/structure.py",
        "rules/strings.py",
        "scan.py",
    ],
)
def test_no_rule_id_typed_by_hand(module: str) -> None:
    assert not re.search(r"[\"']FS\d{3}[\"']", _source(PACKAGE / module))


def test_judgeable_rules_are_catalog_rules() -> None:
    judgeable = {R.UNKNOWN_GLOBAL, R.REVIEWED_UNKNOWN, R.HELD_BY_UNLISTED}
    assert {R.REGISTRY[r] for r in R.JUDGEABLE_RULES} == judgeable


# -- tables refuse a name twice --------------------------------------------------------------------


def test_tables_refuse_duplicates_and_undeclared_slots() -> None:
    with pytest.raises(ValueError, match="duplicate container anomaly"):
        A._anomaly(A.TRAILING_DATA.code, R.TRAILING_DATA, "again")
    with pytest.raises(ValueError, match="no feature slot"):
        A._anomaly("vocabulary_test_code", R.CONTAINER_NOTE, "no column of its own")
    assert "vocabulary_test_code" not in A.BY_CODE
    with pytest.raises(ValueError, match="duplicate format"):
        F._format(F.ZIP, archive=True)
    with pytest.raises(ValueError, match="duplicate tokenizer anomaly"):
        facts._anomaly(facts.EXT_CODE, 11, "again")
    with pytest.raises(ValueError, match="native value 0 is taken"):
        facts._anomaly("vocabulary_test_code", 0, "clashes with stack_underflow")
    with pytest.raises(ValueError, match="duplicate category"):
        knowledge._closed_category(knowledge.REVIEW, knowledge.UNKNOWN)
    with pytest.raises(ValueError, match="duplicate finding rule"):
        R._rule("FS101", R.S.MALICIOUS, "again", why="again")
