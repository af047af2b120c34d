"""What the structure of a file says: container anomalies and statuses, a stream's walk status
(a break after calls the loader already ran), tokenizer anomalies and extra pickles in a member
that holds one. Each code's rule is a table entry (`ANOMALY_RULES` here, containers/anomalies.py
for container codes)."""

from __future__ import annotations

from collections.abc import Sequence

from .. import facts as A  # tokenizer anomaly codes
from .. import findings as R
from ..containers import anomalies as container_anomalies
from ..containers.base import COMPLETE, ENCRYPTED, ERROR, PARTIAL, UNSUPPORTED, Container
from ..containers.formats import (
    KIND_LEGACY_TORCH,
    SINGLE_PICKLE_FORMATS,
    SINGLE_PICKLE_KINDS,
    TORCH_FORMATS,
)
from ..facts import (
    STATUS_BAD_OPCODE,
    STATUS_BUDGET,
    STATUS_NOT_PICKLE,
    STATUS_TRUNCATED,
    CallSite,
    StreamFacts,
)
from ..findings import FindingRule, Severity
from ..opcodes import STATE_OPCODES  # BUILD sets state, it calls no global
from .collect import Collector, Scope
from .knowledge import Classification

# Tokenizer anomaly code (facts.ANOMALY_TABLE) -> finding rule; tests check every code is here.
ANOMALY_RULES: dict[str, FindingRule] = {
    A.STACK_UNDERFLOW: R.LOADER_WOULD_FAIL,
    A.MARK_MISSING: R.LOADER_WOULD_FAIL,
    A.BAD_TEXT_OPERAND: R.LOADER_WOULD_FAIL,
    A.BAD_MEMO_GET: R.MEMO_TRICK,
    A.BAD_MEMO_KEY: R.MEMO_TRICK,
    A.MEMO_TYPE_CONFUSION: R.MEMO_TRICK,
    A.MEMO_BUDGET: R.MEMO_TRICK,
    A.MISPLACED_PROTO: R.PROTO_TRICK,
    A.DUPLICATE_PROTO: R.PROTO_TRICK,
    A.FRAME_VIOLATION: R.FRAME_VIOLATION,
    A.FRAME_OVERRUN: R.FRAME_VIOLATION,
    A.NEW_FRAME_INSIDE_FRAME: R.FRAME_VIOLATION,
    A.FRAME_IN_OLD_PROTOCOL: R.ODD_STRUCTURE,
    A.EXT_CODE: R.EXT_CODE,
    A.BUILD_ON_GLOBAL: R.MUTATES_GLOBAL,
    A.SETITEM_ON_GLOBAL: R.MUTATES_GLOBAL,
    A.TRAILING_JUNK: R.TRAILING_JUNK,
    A.JUNK_BETWEEN: R.TRAILING_JUNK,
    A.STOP_WITH_STACK: R.ODD_STRUCTURE,
    A.NEGATIVE_LENGTH: R.LOADER_WOULD_FAIL,
    A.NON_UTF8_NAME: R.NON_UTF8_NAME,
    A.NESTED_BUDGET: R.NESTED_BUDGET,
    A.RESYNC_BUDGET: R.TOKENIZER_BUDGET,
    # stack_global_non_string is handled with context below (reported per global as FS104).
}

# Anomalies that a segment starting mid-pickle shows by construction (see Scope.fragment).
_EXPECTED_AFTER_CUT = frozenset(
    {A.STACK_UNDERFLOW, A.MARK_MISSING, A.BAD_MEMO_GET, A.MEMO_TYPE_CONFUSION, A.STOP_WITH_STACK}
)


def container_findings(container: Container, out: Collector) -> None:
    budget_reported = False
    for a in container.anomalies:
        # each code's rule is in containers/anomalies.py; an unlisted one (none is emitted,
        # tests/test_vocabularies.py) is an FS399 note
        kind = container_anomalies.BY_CODE.get(a.code)
        rule = R.CONTAINER_NOTE if kind is None else kind.rule
        text = f"{a.code}: {a.detail}" if a.detail else a.code
        out.add(rule.finding(f"{rule.title} ({text})", member=a.member, subject=a.code))
        budget_reported |= rule is R.CONTAINER_BUDGET
    # hit_budget records both an anomaly and `container.budget`: one budget, one finding
    if container.budget and not budget_reported:
        out.add(
            R.CONTAINER_BUDGET.finding(f"budget {container.budget} hit", subject=container.budget)
        )
    status_rule = {
        PARTIAL: R.PARTIAL_SCAN,
        ENCRYPTED: R.ENCRYPTED,
        ERROR: R.SCAN_ERROR,
        UNSUPPORTED: R.UNSUPPORTED,
    }.get(container.status)
    if container.notes.get("unopened"):
        status_rule = R.UNREADABLE_FILE
    if status_rule is not None and container.status != COMPLETE:
        detail = f": {container.message}" if container.message else ""
        out.add(status_rule.finding(f"{status_rule.title}{detail}", subject=container.status))


def status_findings(
    member: str,
    facts: StreamFacts,
    classes: Sequence[Classification | None],
    out: Collector,
    scope: Scope,
) -> None:
    at, where = scope.at, scope.where
    if facts.status in (STATUS_TRUNCATED, STATUS_BAD_OPCODE):
        if facts.status == STATUS_TRUNCATED and scope.cut_at_end:
            return  # the segment ends where joblib's raw array bytes begin
        limit = facts.error_offset if facts.error_offset >= 0 else facts.length
        before = [c for c in facts.calls if c.opcode not in STATE_OPCODES and c.offset < limit]
        if before:
            # The loader already ran these when it hits the break (C1): fail closed.
            unsafe = [c for c in before if not _is_safe_call(c, classes, scope)]
            severity = Severity.MALICIOUS if unsafe else Severity.SUSPICIOUS
            what = "calls of non-allowlisted callables" if unsafe else "allowlisted calls only"
            out.add(
                R.BROKEN_AFTER_CALL.finding(
                    f"{facts.status} at offset {facts.error_offset} after {len(before)} call(s), "
                    f"{what}{where}",
                    member=member,
                    offset=at(facts.error_offset),
                    subject=facts.status,
                    severity=severity,
                )
            )
        else:
            out.add(
                R.PARSE_FAILURE.finding(
                    f"{facts.error or facts.status}{where}",
                    member=member,
                    offset=at(facts.error_offset),
                    subject=facts.status,
                )
            )
    elif facts.status == STATUS_BUDGET:
        out.add(
            R.TOKENIZER_BUDGET.finding(
                f"budget {facts.budget or '?'} hit at offset {facts.error_offset}{where}",
                member=member,
                offset=at(facts.error_offset),
                subject=facts.budget,
            )
        )
    elif facts.status == STATUS_NOT_PICKLE:
        out.add(R.NOT_A_PICKLE.finding(f"{facts.error or 'not a pickle'}{where}", member=member))


def _is_safe_call(call: CallSite, classes: Sequence[Classification | None], scope: Scope) -> bool:
    if call.callable_is_call:
        return False
    if call.callable_index < 0 or call.callable_index >= len(classes):
        # In a joblib segment the callable may be memoised in an earlier segment, where its
        # import was classified; elsewhere an unresolvable callable is not vouched for.
        return scope.cut_at_start
    cls = classes[call.callable_index]
    return cls is not None and cls.is_safe


def anomaly_findings(member: str, facts: StreamFacts, out: Collector, scope: Scope) -> None:
    for a in facts.anomalies:
        if a.code == "persid":
            if scope.fmt in TORCH_FORMATS or scope.kind == KIND_LEGACY_TORCH:
                continue  # torch stores every tensor as a persistent id
            rule = R.PERSID_OUTSIDE_TORCH
        elif a.code == A.STACK_GLOBAL_NON_STRING:
            continue  # reported per global as FS104
        elif a.code == A.FRAME_OVERRUN and facts.status == STATUS_TRUNCATED:
            rule = R.ODD_STRUCTURE  # a FRAME longer than the bytes left: plain truncation
        elif scope.cut_at_start and a.code in _EXPECTED_AFTER_CUT:
            rule = R.ODD_STRUCTURE  # stack and memo live in the previous joblib segment
        else:
            rule = ANOMALY_RULES.get(a.code, R.ODD_STRUCTURE)
        detail = f" ({a.detail})" if a.detail else ""
        severity, note = None, ""
        if a.code == A.MEMO_BUDGET and not facts.anomaly_count(A.BAD_MEMO_GET):
            # PUTs past the budget are dropped; only a GET of one (bad_memo_get) loses a value
            severity, note = Severity.LOW, ": no GET read a dropped entry, nothing hidden"
        out.add(
            rule.finding(
                f"{a.code}{detail} in pickle #{a.pickle_index}{note}{scope.where}",
                member=member,
                offset=scope.at(a.offset),
                subject=a.code,
                severity=severity,
            )
        )
    single = scope.fmt in SINGLE_PICKLE_FORMATS or scope.kind in SINGLE_PICKLE_KINDS
    if facts.n_pickles > 1 and single:
        second = facts.pickle_offsets[1] if len(facts.pickle_offsets) > 1 else -1
        out.add(
            R.MULTIPLE_PICKLES.finding(
                f"{facts.n_pickles} pickles in a {scope.kind or scope.fmt} member that holds one"
                + scope.where,
                member=member,
                offset=scope.at(second),
                subject=str(facts.n_pickles),
            )
        )
