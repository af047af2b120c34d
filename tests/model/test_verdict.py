"""verdict.combine: the fail-closed table, model thresholds, and "the model never lowers" (G6)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fastscan.facts import STATUS_TRUNCATED, CallSite, GlobalRef, StreamFacts
from fastscan.findings import Finding, Severity
from fastscan.rules import evaluate
from fastscan.verdict import CLEAN, MALICIOUS, STATUSES, SUSPICIOUS, VerdictPolicy, combine, settle

NAN = float("nan")
# A model's policy as its manifest would give it (tests spell every field: there are no defaults)
POLICY = VerdictPolicy(
    classifier_suspicious=0.5,
    classifier_malicious=0.9,
    anomaly_suspicious=NAN,
    anomaly_needs_classifier=0.1,
    unknown_benign=0.05,
    incomplete_verdict=SUSPICIOUS,
)


def finding(severity: Severity, rule_id: str = "FS103") -> Finding:
    return Finding(rule_id, severity, "test finding")


@pytest.mark.parametrize(
    ("severities", "status", "expected"),
    [
        ((), "complete", CLEAN),
        ((Severity.INFO,), "complete", CLEAN),
        ((Severity.LOW, Severity.INFO), "complete", CLEAN),
        ((Severity.SUSPICIOUS,), "complete", SUSPICIOUS),
        ((Severity.LOW, Severity.SUSPICIOUS), "complete", SUSPICIOUS),
        ((Severity.SUSPICIOUS, Severity.MALICIOUS), "complete", MALICIOUS),
        # an incomplete scan is never silently clean
        ((), "partial", SUSPICIOUS),
        ((), "encrypted", SUSPICIOUS),
        ((), "error", SUSPICIOUS),
        ((Severity.LOW,), "partial", SUSPICIOUS),
        ((Severity.MALICIOUS,), "partial", MALICIOUS),
        ((Severity.MALICIOUS,), "error", MALICIOUS),
        # not a pickle container at all (PNG, Git-LFS pointer): nothing to be unsure about
        ((), "unsupported", CLEAN),
        ((Severity.SUSPICIOUS,), "unsupported", SUSPICIOUS),
    ],
)
def test_fail_closed_table(severities: tuple[Severity, ...], status: str, expected: str) -> None:
    verdict, extra = combine([finding(s) for s in severities], status)
    assert verdict == expected
    assert extra == []  # no model scores, no model findings


def test_incomplete_policy_is_configurable_but_findings_always_count() -> None:
    lenient = replace(POLICY, incomplete_verdict=CLEAN)
    assert combine([], "partial", policy=lenient)[0] == CLEAN
    assert combine([finding(Severity.SUSPICIOUS)], "partial", policy=lenient)[0] == SUSPICIOUS
    assert combine([finding(Severity.MALICIOUS)], "error", policy=lenient)[0] == MALICIOUS


@pytest.mark.parametrize(
    ("score", "expected", "model_severity"),
    [
        (NAN, CLEAN, None),
        (0.1, CLEAN, None),
        (0.5, SUSPICIOUS, Severity.SUSPICIOUS),
        (0.89, SUSPICIOUS, Severity.SUSPICIOUS),
        (0.9, MALICIOUS, Severity.MALICIOUS),
        (1.0, MALICIOUS, Severity.MALICIOUS),
    ],
)
def test_classifier_raises_a_clean_verdict(
    score: float, expected: str, model_severity: Severity | None
) -> None:
    verdict, extra = combine([], "complete", score, policy=POLICY)
    assert verdict == expected
    if model_severity is None:
        assert extra == []
    else:
        assert [(f.rule_id, f.severity) for f in extra] == [("FS901", model_severity)]


@pytest.mark.parametrize("score", [0.0, 0.2, NAN])
def test_model_never_lowers_a_rule_verdict(score: float) -> None:
    # G6: a benign-looking score (padding with tensors) must not soften a sink finding.
    malicious = [finding(Severity.MALICIOUS, "FS102")]
    assert combine(malicious, "complete", score, 0.0, POLICY)[0] == MALICIOUS
    assert combine([finding(Severity.SUSPICIOUS, "FS104")], "complete", score, 0.0, POLICY)[0] == (
        SUSPICIOUS
    )
    assert combine([], "partial", score, policy=POLICY)[0] == SUSPICIOUS


def test_a_confident_benign_score_settles_unlisted_globals_only() -> None:
    unknown = [finding(Severity.SUSPICIOUS, "FS103"), finding(Severity.SUSPICIOUS, "FS108")]
    verdict, extra = combine(unknown, "complete", 0.01, policy=POLICY)
    assert verdict == CLEAN
    assert [(f.rule_id, f.severity) for f in extra] == [("FS903", Severity.LOW)]
    settled = settle(unknown, extra)
    assert [(f.rule_id, f.severity) for f in settled] == [
        ("FS103", Severity.LOW),
        ("FS108", Severity.LOW),
        ("FS903", Severity.LOW),
    ]
    # not sure enough, no score, an incomplete scan, or another reason: stays suspicious
    assert combine(unknown, "complete", 0.2, policy=POLICY)[0] == SUSPICIOUS
    assert combine(unknown, "complete", NAN, policy=POLICY)[0] == SUSPICIOUS
    assert combine(unknown, "partial", 0.01, policy=POLICY)[0] == SUSPICIOUS
    other = [*unknown, finding(Severity.SUSPICIOUS, "FS104")]
    verdict, extra = combine(other, "complete", 0.01, policy=POLICY)
    assert verdict == SUSPICIOUS and extra == []
    assert settle(other, extra) == other
    assert (
        combine([*unknown, finding(Severity.MALICIOUS, "FS102")], "complete", 0.0, policy=POLICY)[0]
        == MALICIOUS
    )
    # strict policy: unlisted globals always count
    assert combine(unknown, "complete", 0.0, policy=replace(POLICY, unknown_benign=0.0))[0] == (
        SUSPICIOUS
    )


def test_anomaly_score_needs_a_threshold() -> None:
    assert combine([], "complete", NAN, 123.0, POLICY) == (CLEAN, [])
    policy = replace(POLICY, anomaly_suspicious=0.7)
    verdict, extra = combine([], "complete", 0.2, 0.8, policy)
    assert verdict == SUSPICIOUS
    assert [(f.rule_id, f.severity) for f in extra] == [("FS902", Severity.SUSPICIOUS)]
    assert combine([], "complete", 0.2, 0.6, policy) == (CLEAN, [])


def test_anomaly_alone_is_recorded_when_the_classifier_says_benign() -> None:
    policy = replace(POLICY, anomaly_suspicious=0.7)
    for score in (NAN, 0.01):
        verdict, extra = combine([], "complete", score, 0.8, policy)
        assert verdict == CLEAN
        assert [(f.rule_id, f.severity) for f in extra] == [("FS902", Severity.LOW)]
    assert combine([], "complete", NAN, NAN, policy) == (CLEAN, [])


def test_thresholds_from_a_manifest_mapping() -> None:
    manifest = {**POLICY.to_mapping(), "suspicious": 0.25, "anomaly": 0.5}
    verdict, extra = combine([], "complete", 0.3, 0.9, manifest)
    assert verdict == SUSPICIOUS
    assert sorted(f.rule_id for f in extra) == ["FS901", "FS902"]
    assert VerdictPolicy.from_mapping(POLICY.to_mapping()) == POLICY
    policy = VerdictPolicy.from_mapping({**POLICY.to_mapping(), "classifier_malicious": 0.95})
    assert policy.classifier_malicious == 0.95 and policy.classifier_suspicious == 0.5
    with pytest.raises(ValueError, match="unknown threshold"):
        VerdictPolicy.from_mapping({**POLICY.to_mapping(), "bogus": 1.0})
    # every field comes from the manifest: a missing one is an error, never a default
    for key in POLICY.to_mapping():
        partial = {k: v for k, v in POLICY.to_mapping().items() if k != key}
        with pytest.raises(ValueError, match="lacks"):
            VerdictPolicy.from_mapping(partial)


def test_a_score_needs_its_models_policy() -> None:
    with pytest.raises(ValueError, match="policy"):
        combine([], "complete", 0.3)
    with pytest.raises(ValueError, match="policy"):
        combine([], "complete", NAN, 0.3)
    assert combine([], "encrypted")[0] == SUSPICIOUS  # rules only: fail closed


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="status"):
        combine([], "fine")
    with pytest.raises(ValueError, match="incomplete_verdict"):
        replace(POLICY, incomplete_verdict=MALICIOUS)
    with pytest.raises(ValueError, match="exceed"):
        replace(POLICY, classifier_suspicious=0.9, classifier_malicious=0.5)
    assert set(STATUSES) >= {"complete", "partial", "unsupported", "encrypted", "error"}


def test_model_findings_carry_the_score() -> None:
    _, extra = combine([], "complete", 0.9731, policy=POLICY)
    assert "0.973" in extra[0].message


# --- end to end through the rule engine ------------------------------------------------------


def _stream(module: str, name: str, *, call_at: int, status: str, error_offset: int) -> StreamFacts:
    return StreamFacts(
        status=status,
        error_offset=error_offset,
        length=200,
        n_pickles=1,
        globals=(GlobalRef(module, name, "GLOBAL", 2, 0, True),),
        calls=(CallSite("REDUCE", call_at, 0, 0),),
    )


@pytest.mark.parametrize(
    ("module", "name", "call_at", "expected"),
    [
        ("os", "system", 40, MALICIOUS),  # C1: payload first, garbage after
        ("mylab.models", "Net", 40, MALICIOUS),  # unknown callable ran before the break
        ("collections", "OrderedDict", 40, SUSPICIOUS),  # allowlisted call, then truncation
        ("mylab.models", "Net", 150, SUSPICIOUS),  # the call sits after the break: never ran
    ],
)
def test_call_before_parse_failure_is_malicious(
    module: str, name: str, call_at: int, expected: str
) -> None:
    facts = _stream(module, name, call_at=call_at, status=STATUS_TRUNCATED, error_offset=100)
    findings = evaluate([("", facts)])
    assert combine(findings, "partial")[0] == expected
    assert combine(findings, "complete", 0.0, policy=POLICY)[0] == expected


def test_score_decides_only_where_a_score_can_flag_or_settle() -> None:
    from fastscan.verdict import score_decides

    unlisted = Finding("FS103", Severity.SUSPICIOUS, "acme.Net called", subject="acme.Net")
    sink = Finding("FS101", Severity.MALICIOUS, "os.system called", subject="os.system")
    applied = Finding("FS112", Severity.SUSPICIOUS, "acme.run applied", subject="acme.run")
    low = Finding("FS102", Severity.LOW, "getattr judged", subject="builtins.getattr")
    assert score_decides([], "complete")  # a score may raise it
    assert score_decides([low], "complete")
    assert score_decides([unlisted, low], "complete")  # a score may settle it
    assert not score_decides([unlisted, sink], "complete")  # the rules' verdict stands
    assert not score_decides([applied], "complete")  # nothing settles an application
    assert not score_decides([], "partial")  # the incomplete floor stands
    suppressed = replace(sink, suppressed="CONFIG: reviewed")
    assert score_decides([suppressed], "complete")
