"""The per-file result every sink writes, and the verdict it carries.

`combine` turns findings, file status and model scores into one fail-closed verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from .findings import (
    ANOMALY_SCORE,
    CLASSIFIER_SCORE,
    JUDGEABLE_RULES,
    UNKNOWN_JUDGED_BENIGN,
    Finding,
    Severity,
)

CLEAN = "clean"
SUSPICIOUS = "suspicious"
MALICIOUS = "malicious"
VERDICTS = (CLEAN, SUSPICIOUS, MALICIOUS)

STATUSES = ("complete", "partial", "unsupported", "encrypted", "error")


@dataclass(slots=True)
class FileResult:
    """One row of output: everything fastscan says about one file."""

    path: str
    size: int = -1
    mtime: float = 0.0
    etag: str = ""
    format: str = "unknown"
    extension: str = ""
    status: str = "complete"
    verdict: str = CLEAN
    score: float = float("nan")  # classifier probability of malicious
    anomaly_score: float = float("nan")  # unsupervised score; higher = more unusual
    findings: list[Finding] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)  # distinct "module.name", sorted
    members_scanned: int = 0
    pickles: int = 0
    bytes_read: int = 0
    error: str = ""
    scan_seconds: float = 0.0
    hf_repo: str | None = None  # "org/name" when the path is in a Hugging Face cache/mirror
    hf_revision: str | None = None  # the snapshot folder (commit hash or ref) of that path
    sha256: str | None = None  # content hash, only when asked (--hash): it reads every byte

    @property
    def rule_ids(self) -> list[str]:
        """Ids of the findings that count (suppressed ones are only in `findings`)."""
        return sorted({f.rule_id for f in self.findings if not f.suppressed})

    @property
    def reasons(self) -> list[str]:
        order = sorted(
            self.findings, key=lambda f: (bool(f.suppressed), -int(f.severity), f.rule_id, f.offset)
        )
        return [
            f"{f.rule_id} {f.severity.name.lower()}: {f.message} [{f.where()}]"
            + (f" (suppressed: {f.suppressed})" if f.suppressed else "")
            for f in order
        ]

    @property
    def max_severity(self) -> Severity:
        return max((f.severity for f in self.findings if not f.suppressed), default=Severity.INFO)


# -- combining findings, file status and model scores -------------------------------------------

# Statuses that mean some bytes were not looked at; they never produce a silent "clean".
INCOMPLETE_STATUSES = ("partial", "encrypted", "error")


@dataclass(frozen=True, slots=True)
class VerdictPolicy:
    """Thresholds and policy for `combine`. A model's policy has one source, its manifest's
    `thresholds` (`model.Model.policy`, through `from_mapping`), written by `fastscan train`
    (`train.fit.choose_thresholds`); without a model, `RULES_ONLY` (scores are NaN there).

    `incomplete_verdict` decides what a partial/encrypted/error scan WITHOUT findings becomes:
    "suspicious" (fail closed, docs/threats.md G1/G2) or "clean" for users who gate on the `status`
    column separately. Findings always count, whatever the policy.
    """

    classifier_suspicious: float  # probability at or above -> FS901 suspicious
    classifier_malicious: float  # probability at or above -> FS901 malicious
    anomaly_suspicious: float  # anomaly score at or above -> FS902; NaN = off
    anomaly_needs_classifier: float  # FS902 is suspicious only with p_malicious >= this
    # Below this probability, a complete scan whose only suspicion is unlisted globals (FS103,
    # FS108, FS113: user classes look like that) is judged benign: FS903, they become `low`.
    # 0 keeps every unlisted global suspicious (strict).
    unknown_benign: float
    incomplete_verdict: str

    # manifest key -> field; the manifest writes these short names
    MANIFEST_KEYS: ClassVar[dict[str, str]] = {
        "suspicious": "classifier_suspicious",
        "malicious": "classifier_malicious",
        "anomaly": "anomaly_suspicious",
        "anomaly_needs_classifier": "anomaly_needs_classifier",
        "unknown_benign": "unknown_benign",
        "incomplete_verdict": "incomplete_verdict",
    }

    @classmethod
    def from_mapping(cls, thresholds: Mapping[str, float | str]) -> VerdictPolicy:
        """From a manifest's thresholds (MANIFEST_KEYS, or the field names): every field must
        be there, so no value silently falls back to a default."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in thresholds.items():
            name = cls.MANIFEST_KEYS.get(key, key)
            if name not in known:
                raise ValueError(f"unknown threshold {key!r}; expected one of {sorted(known)}")
            values[name] = value if name == "incomplete_verdict" else float(value)
        missing = sorted(known - set(values))
        if missing:
            raise ValueError(f"verdict policy lacks {', '.join(missing)}")
        return cls(**values)

    def to_mapping(self) -> dict[str, float | str]:
        """The manifest's `thresholds` for this policy (inverse of `from_mapping`)."""
        return {key: getattr(self, name) for key, name in self.MANIFEST_KEYS.items()}

    def __post_init__(self) -> None:
        if self.incomplete_verdict not in (CLEAN, SUSPICIOUS):
            raise ValueError("incomplete_verdict must be 'clean' or 'suspicious'")
        if self.classifier_suspicious > self.classifier_malicious:
            raise ValueError("classifier_suspicious must not exceed classifier_malicious")
        if self.unknown_benign > self.classifier_suspicious:
            raise ValueError("unknown_benign must not exceed classifier_suspicious")


_OFF = float("nan")  # a threshold nothing reaches (comparisons with NaN are false)
# No model: no score to judge, so only the incomplete-scan floor applies (fail closed).
RULES_ONLY = VerdictPolicy(_OFF, _OFF, _OFF, _OFF, _OFF, SUSPICIOUS)


_VERDICT_OF = {
    Severity.INFO: CLEAN,
    Severity.LOW: CLEAN,
    Severity.SUSPICIOUS: SUSPICIOUS,
    Severity.MALICIOUS: MALICIOUS,
}


def combine(
    findings: list[Finding],
    status: str,
    score: float = float("nan"),
    anomaly_score: float = float("nan"),
    policy: VerdictPolicy | Mapping[str, float] | None = None,
) -> tuple[str, list[Finding]]:
    """One fail-closed verdict from rule findings, scan status and model scores.

    Returns (verdict, model_findings); the caller appends model_findings to the file's findings.
    - Suppressed findings (`Finding.suppressed`) are not counted; they stay for the audit.
    - The verdict is the highest severity among all findings (rule + model): a rule-based
      malicious verdict can never be lowered by a model score (G6), only raised. The one thing
      a score can settle: a complete scan whose only suspicious findings are unlisted globals
      (JUDGEABLE_RULES) and whose classifier probability is below `policy.unknown_benign` gets
      FS903 and is judged without them (`settle` lowers them to `low` in the file's findings).
    - Fail closed: the rule engine grades a call seen before a parse failure (FS201) and sinks
      (FS101/FS102) as malicious, unknown globals (FS103) as suspicious; here an incomplete
      scan without such findings becomes `policy.incomplete_verdict` (suspicious by default).
    - `unsupported` (not a pickle container, e.g. a PNG or a Git-LFS pointer) is not incomplete.
    `policy`: the model's (`Model.policy`, or its manifest's thresholds mapping); None means
    no model (`RULES_ONLY`), which refuses a score: a score is judged by its own model's policy.
    """
    if policy is None:
        if not (math.isnan(score) and math.isnan(anomaly_score)):
            raise ValueError("a model score needs that model's policy (Model.policy)")
        policy = RULES_ONLY
    elif not isinstance(policy, VerdictPolicy):
        policy = VerdictPolicy.from_mapping(policy)
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
    model: list[Finding] = []
    if not math.isnan(score):
        if score >= policy.classifier_malicious:
            sev: Severity | None = Severity.MALICIOUS
        elif score >= policy.classifier_suspicious:
            sev = Severity.SUSPICIOUS
        else:
            sev = None
        if sev is not None:
            message = (
                f"classifier probability {score:.3f} (suspicious at "
                f"{policy.classifier_suspicious:.6g}, "
                f"malicious at {policy.classifier_malicious:.6g})"
            )
            model.append(CLASSIFIER_SCORE.finding(message, severity=sev))
    # NaN compares false, so a missing score or a disabled threshold never fires.
    if anomaly_score >= policy.anomaly_suspicious:
        # Unusual is not malicious: benign files of a kind the model never saw are unusual too.
        # The anomaly flags a file only when the classifier does not call it clearly benign.
        unsure = not math.isnan(score) and score >= policy.anomaly_needs_classifier
        needs = policy.anomaly_needs_classifier
        model.append(
            ANOMALY_SCORE.finding(
                f"anomaly score {anomaly_score:.3f} >= {policy.anomaly_suspicious:.6g}"
                + (
                    f", classifier {score:.3f} >= {needs:.6g}"
                    if unsure
                    else f" (classifier {score:.3f} < {needs:.6g}: recorded only)"
                ),
                severity=Severity.SUSPICIOUS if unsure else Severity.LOW,
            )
        )
    counted: list[Finding] = [f for f in findings if not f.suppressed]
    sure = not math.isnan(score) and score < policy.unknown_benign
    if sure and settleable(findings, status):
        n = sum(f.rule_id in JUDGEABLE_RULES and not f.suppressed for f in findings)
        model.append(
            UNKNOWN_JUDGED_BENIGN.finding(
                f"{n} unlisted global(s) judged benign: classifier {score:.3f} "
                f"< {policy.unknown_benign:.6g}"
            )
        )
        counted = [f for f in counted if f.rule_id not in JUDGEABLE_RULES]
    worst = max((f.severity for f in (*counted, *model)), default=Severity.INFO)
    verdict = _VERDICT_OF[worst]
    if verdict == CLEAN and status in INCOMPLETE_STATUSES:
        verdict = policy.incomplete_verdict
    return verdict, model


def score_decides(findings: list[Finding], status: str) -> bool:
    """Whether a model score decides if this file is flagged at all: a complete scan that the
    rules leave clean (a score may raise it) or `settleable` (a score may settle it). Elsewhere
    the rules' verdict stands whatever the score, so the classifier is fit on these rows only
    (train.fit.fit_classifier): what it learns is what separates benign from malicious where
    it decides, not what the rules already know."""
    return _judgeable_suspicion(findings, status) is not None


def settleable(findings: list[Finding], status: str) -> bool:
    """A confident benign score may settle this file: the scan saw every byte and its only
    findings at suspicious or above are unlisted globals (findings.JUDGEABLE_RULES)."""

    return bool(_judgeable_suspicion(findings, status))


def _judgeable_suspicion(findings: list[Finding], status: str) -> list[Finding] | None:
    """The counted findings at suspicious or above of a complete scan whose every such finding
    is judgeable (findings.JUDGEABLE_RULES); None for an incomplete scan or another finding."""
    if status != "complete":
        return None
    flagged = [f for f in findings if f.severity >= Severity.SUSPICIOUS and not f.suppressed]
    return flagged if all(f.rule_id in JUDGEABLE_RULES for f in flagged) else None


def settle(findings: list[Finding], model_findings: list[Finding]) -> list[Finding]:
    """The file's final findings: rule findings (unlisted globals lowered to `low` when `combine`
    judged them benign, FS903) followed by the model's findings."""

    if any(f.rule_id == UNKNOWN_JUDGED_BENIGN.rule_id for f in model_findings):
        findings = [
            replace(f, severity=Severity.LOW) if f.rule_id in JUDGEABLE_RULES else f
            for f in findings
        ]
    return [*findings, *model_findings]
