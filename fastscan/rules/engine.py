"""Facts -> findings. One linear pass over each stream's globals, calls, anomalies and strings.

Severity policy (docs/threats.md, "Lessons"): importing or calling a sink is malicious; a global
outside the allowlist is suspicious, never a pass; structure that benign `torch.save`/`joblib.dump`/
`numpy.save` never produce is graded by how much it says about intent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .. import _features as _native
from .. import facts as A  # tokenizer anomaly codes
from .. import findings as R
from ..containers import anomalies as container_anomalies
from ..containers.base import COMPLETE, ENCRYPTED, ERROR, PARTIAL, UNSUPPORTED, Container
from ..containers.formats import (
    KIND_JOBLIB,
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
from ..findings import Finding, FindingRule, Severity
from ..opcodes import STATE_OPCODES  # BUILD sets state, it calls no global
from . import indexed, nested_loaders
from .call_shapes import CallShapes
from .callsites import StreamSites
from .handed import Handed
from .knowledge import CALLBACK_DISPATCH, CODE_CONSTRUCTION, NESTED_LOADER, UNKNOWN, Classification
from .nested_loaders import Visible
from .ruleset import RuleSet, default_ruleset
from .unknown_calls import Knowledge, StreamShapes, application, built_by_code_construction

MAX_FINDINGS_PER_RULE = 64  # per member; the rest is summarised so hostile files stay small

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

# Strings that are commands or code, never tensor names or config values.
_SHELL = re.compile(
    r"(?:^|[\s;&|`(])(?:/bin/(?:ba|z|da)?sh|cmd(?:\.exe)?\s+/c|powershell|curl\s|wget\s|nc\s+-|"
    r"ncat\s|bash\s+-[ci]|sh\s+-c|rm\s+-rf|chmod\s+[+0-7]|mkfifo|/dev/tcp/|base64\s+-d)"
    r"|__import__\s*\(|\bexec\s*\(|\beval\s*\(|\bos\.system\b|\bsubprocess\.|\bimport\s+os\b",
    re.IGNORECASE,
)
_URL = re.compile(r"\b(?:https?|ftp)://[^\s'\"]+", re.IGNORECASE)
# Cheap pre-filter over all strings at once: does one of these needles occur in some string?
# Only a hit pays for the per-string regexes above (an alternation over all strings costs
# ~100 us per file). It must hit whenever a regex can match, so every alternative of _SHELL and
# _URL holds a needle among the characters it always matches (proved from the parsed patterns
# by tests/rules/test_prefilter_native_equals_spec.py), and needles are compared with each
# character folded the way the regexes see it: " " stands for any `\s` ("nc\t-e", "sh\u00a0-c"),
# a letter for its re.IGNORECASE variants ("\u017fh -c" is "sh -c" to `re`). Needles as long as
# that allows keep tensor names ("layer_norm", "shape", "rms", "system_prompt") from paying for
# the regex pass.
_MAYBE = (
    "/bin/", "cmd", "powershell", "curl ", "wget ", "nc ", "ncat ", "sh ", "rm ", "chmod ",
    "mkfifo", "/dev/tcp/", "base64 ", "__import__", "exec", "eval", "os.system", "subprocess.",
    "import ", "://",
)  # fmt: skip

# Anomalies that a segment starting mid-pickle shows by construction (see _Scope.fragment).
_EXPECTED_AFTER_CUT = frozenset(
    {A.STACK_UNDERFLOW, A.MARK_MISSING, A.BAD_MEMO_GET, A.MEMO_TYPE_CONFUSION, A.STOP_WITH_STACK}
)


def evaluate(
    streams: Sequence[tuple[str, StreamFacts]],
    container: Container | None = None,
    ruleset: RuleSet | None = None,
    *,
    path: str = "",
    rel: str = "",
    targets: Sequence[indexed.Targets | None] = (),
    operands: Sequence[Visible] = (),
    sites: Sequence[StreamSites] = (),
    knowledge: Knowledge | None = None,
) -> list[Finding]:
    """All findings for one file: container facts, then every stream and its nested pickles.

    `path` (and `rel`, the path relative to the scan root) are used only to match user
    suppressions; suppressed findings stay in the list, marked. `targets`, aligned
    with `streams`, says which objects each stream's SETITEMS/APPENDS/ADDITEMS fill
    (rules.fills.attribute_containers); without it those hooks are assumed on every object.
    `operands`, aligned the same way, maps nested-loader calls to the literal bytes they load
    (rules.nested_loaders.visible_operands); without it every nested loader stays malicious.
    `knowledge`: what an ecosystem index knows about unlisted names (an application of a
    known-inert function is no FS112); None = nothing. `sites`, aligned with `streams`: what
    getattr/partial/dispatcher calls are handed (rules.callsites; without it they are judged
    by the stream's strings, rules.call_shapes).
    """
    rules = ruleset or default_ruleset()
    out = _Collector()
    if container is not None:
        _container_findings(container, out)
    for i, (member, facts, scope) in enumerate(_scopes(streams, container)):
        found = targets[i] if i < len(targets) else None
        visible = operands[i] if i < len(operands) else {}
        handed = sites[i] if i < len(sites) else None
        _stream_findings(
            member, facts, rules, out, scope, found, visible, knowledge=knowledge, sites=handed
        )
    return rules.suppress(out.findings, path, rel)


@dataclass(frozen=True, slots=True)
class _Scope:
    """Where a stream sits: container format, stream kind, joblib fragment, nesting."""

    fmt: str = ""
    kind: str = ""
    # joblib cuts one pickle into segments around raw array bytes and each is tokenized alone:
    # "first"/"middle"/"last" segments start or end mid-pickle by construction.
    fragment: str = ""
    nested_at: int = -1  # outer offset of the operand holding this (nested) pickle
    base: int = 0  # the stream's offset inside its member (PickleStream.offset)

    def at(self, offset: int) -> int:
        """The offset a finding reports: inside the member, or the nested operand's."""
        if self.nested_at >= 0:
            return self.nested_at
        return self.base + offset if offset >= 0 else offset

    @property
    def where(self) -> str:
        return f" (in nested pickle at offset {self.nested_at})" if self.nested_at >= 0 else ""

    @property
    def cut_at_end(self) -> bool:
        return self.fragment in ("first", "middle")

    @property
    def cut_at_start(self) -> bool:
        return self.fragment in ("middle", "last")


def _scopes(
    streams: Sequence[tuple[str, StreamFacts]], container: Container | None
) -> list[tuple[str, StreamFacts, _Scope]]:
    if container is None:
        return [(member, facts, _Scope()) for member, facts in streams]
    fmt = container.format
    described = container.streams
    if len(described) != len(streams) or any(
        d.member != member for d, (member, _) in zip(described, streams, strict=False)
    ):
        kinds = {d.member: d.kind for d in described}  # caller passed a subset: no fragments
        return [(m, f, _Scope(fmt, kinds.get(m, ""))) for m, f in streams]
    segments: dict[str, list[int]] = {}
    for i, d in enumerate(described):
        if d.kind == KIND_JOBLIB:
            segments.setdefault(d.member, []).append(i)
    out = []
    for i, (d, (member, facts)) in enumerate(zip(described, streams, strict=True)):
        fragment = ""
        group = segments.get(member, [])
        if d.kind == KIND_JOBLIB and len(group) > 1:
            fragment = "first" if i == group[0] else "last" if i == group[-1] else "middle"
        out.append((member, facts, _Scope(fmt, d.kind, fragment, base=d.offset)))
    return out


class _Collector:
    """Keeps the first finding per (rule, member, subject) and caps each rule per member."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self._seen: dict[tuple[str, str, str], int] = {}
        self._per_rule: dict[tuple[str, str], int] = {}

    def add(self, finding: Finding) -> None:
        key = (finding.rule_id, finding.member, finding.subject)
        index = self._seen.get(key)
        if index is not None:
            if finding.severity > self.findings[index].severity:
                self.findings[index] = finding  # e.g. the same global later seen being called
            return
        count_key = (finding.rule_id, finding.member)
        count = self._per_rule.get(count_key, 0)
        self._per_rule[count_key] = count + 1
        if count > MAX_FINDINGS_PER_RULE:
            return
        if count == MAX_FINDINGS_PER_RULE:
            finding = Finding(
                finding.rule_id,
                finding.severity,
                f"more than {MAX_FINDINGS_PER_RULE} findings of this rule; the rest are omitted",
                finding.member,
                finding.offset,
                "…",
            )
        self._seen[key] = len(self.findings)
        self.findings.append(finding)


def _container_findings(container: Container, out: _Collector) -> None:
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


def _stream_findings(  # noqa: PLR0917
    member: str,
    facts: StreamFacts,
    rules: RuleSet,
    out: _Collector,
    scope: _Scope,
    targets: indexed.Targets | None = None,
    visible: Visible | None = None,
    *,
    knowledge: Knowledge | None = None,
    sites: StreamSites | None = None,
) -> None:
    """Findings of one buffer; nested pickles are reported at their operand's outer offset."""
    at, where = scope.at, scope.where
    classes: list[Classification | None] = [
        rules.classify(g.module, g.name) if g.resolved else None for g in facts.globals
    ]
    first_call: dict[int, CallSite] = {}
    calls_of_calls: list[CallSite] = []
    for c in facts.calls:
        if c.opcode in STATE_OPCODES:
            continue
        if c.callable_index >= 0 and c.callable_index not in first_call:
            first_call[c.callable_index] = c
        if c.callable_is_call:
            calls_of_calls.append(c)
    # A called global whose operands hid from us is malicious, unless the memo budget or a
    # joblib cut (operands memoised in an earlier segment) explains the gap.
    lenient = facts.anomaly_count(A.MEMO_BUDGET) > 0 or scope.cut_at_start
    categories: set[str] = set()
    handed, visible = Handed.for_stream(facts, classes, rules, sites, visible)
    shapes = CallShapes(facts, classes, rules, handed)
    # Hooks the loader runs per global: only worked out when the index knows a reach.
    live = any(c and c.reaches and not (c.pinned or c.is_dangerous) for c in classes)
    stored = sites.stored if sites is not None else None
    run = indexed.hooks(facts, classes, targets, stored) if live else None
    unknown_shapes: StreamShapes | None = None  # built for the first unlisted call

    for index, (g, cls) in enumerate(zip(facts.globals, classes, strict=True)):
        call = first_call.get(index)
        verb = "called" if call is not None else "imported"
        offset = at(call.offset if call is not None else g.offset)
        if cls is None:
            # Operands computed at runtime (D6) or an EXT code (C11): nothing to look up.
            severity = Severity.MALICIOUS if call is not None and not lenient else None
            out.add(
                R.UNRESOLVED_GLOBAL.finding(
                    f"{g.opcode} target not resolvable statically, {verb}{where}",
                    member=member,
                    offset=offset,
                    subject=g.qualname,
                    severity=severity,
                )
            )
            continue
        categories.add(cls.category)
        resolved = f" -> {cls.resolved}" if cls.resolved and cls.resolved != g.qualname else ""
        if cls.is_dangerous and _serialized_code_helper(index, cls, facts, classes):
            msg = (
                f"{g.qualname} {verb} only on objects the pickle built itself (dill/cloudpickle"
                f" serialized code){where}"
            )
            out.add(
                R.CODE_CONSTRUCTION.finding(msg, member=member, offset=offset, subject=g.qualname)
            )
            continue
        if cls.is_dangerous and cls.category == NESTED_LOADER and call is not None:
            content = nested_loaders.benign_content(
                index,
                facts,
                [shapes.sink_left(i, c) for i, c in enumerate(classes)],
                visible,
                lambda nested: _nested_clean(
                    member, nested, rules, scope, StreamSites.of(sites, facts, nested)
                ),
            )
            if content:
                msg = f"{g.qualname}{resolved} called only on {content}{where}"
                out.add(
                    R.DANGEROUS_CALL.finding(
                        msg, member=member, offset=offset, subject=g.qualname, severity=Severity.LOW
                    )
                )
                continue
        if cls.is_dangerous:
            # getattr(<class>, "<name>"), partial(<safe function>): how stdlib values pickle
            shape = shapes.sink_call(index, cls) if call is not None else None
            rule = R.DANGEROUS_CALL if call is not None else R.DANGEROUS_IMPORT
            if shape is not None:
                msg = f"{g.qualname}{resolved} called only {shape.note}{where}"
            else:
                msg = f"{g.qualname}{resolved} {verb} [{cls.category}]: {cls.reason}{where}"
            severity = shape.severity if shape is not None else None
            out.add(
                rule.finding(
                    msg, member=member, offset=offset, subject=g.qualname, severity=severity
                )
            )
            for f in shape.fetched if shape is not None else ():
                # what getattr fetched, graded as if the pickle imported that name
                out.add(
                    f.rule.finding(
                        f"{f.name} fetched by getattr: {f.reason}{where}",
                        member=member,
                        offset=offset,
                        subject=f.name,
                        severity=f.severity,
                    )
                )
            continue
        reach = indexed.fired(cls, run[index]) if run is not None else None
        benign = ""
        if reach is not None and handed is not None and run is not None:
            # a dispatcher, a nested loader or a text sink judged by what it is handed
            benign = handed.reach_note(
                index,
                cls,
                run[index],
                lambda n: _nested_clean(member, n, rules, scope, StreamSites.of(sites, facts, n)),
            )
        if benign:
            msg = f"{g.qualname}{resolved} {verb}: {benign}{where}"
            out.add(
                R.REACHES_SINK.finding(
                    msg, member=member, offset=offset, subject=g.qualname, severity=Severity.LOW
                )
            )
            continue
        if reach is not None:
            categories.add(reach.category)
            far = indexed.long_reach(reach)
            msg = (
                f"{g.qualname}{resolved} {verb} [{reach.category}]: its {reach.hook} hook reaches"
                f" a sink: {' -> '.join(reach.path)} ({cls.package or 'index'})"
                + (
                    ""
                    if not far
                    else " (callback dispatch: runs only a callable the pickle hands it)"
                    if reach.category == CALLBACK_DISPATCH
                    else f" ({len(reach.path)} steps, past the malicious bound)"
                )
                + where
            )
            out.add(
                R.REACHES_SINK.finding(
                    msg,
                    member=member,
                    offset=offset,
                    subject=g.qualname,
                    severity=Severity.SUSPICIOUS if far else None,
                )
            )
            continue
        if cls.dotted and (cls.through_allowlisted or cls.is_safe):
            out.add(
                R.DOTTED_THROUGH_ALLOWED.finding(
                    f"{g.qualname}{resolved}: attribute path through an allowlisted module{where}",
                    member=member,
                    offset=at(g.offset),
                    subject=g.qualname,
                )
            )
        if cls.verdict_class == UNKNOWN:
            severity = None
            if cls.category == CODE_CONSTRUCTION:
                rule, reason = R.CODE_CONSTRUCTION, cls.reason
            elif cls.entry_id and cls.category == CALLBACK_DISPATCH and call is None:
                # a consumer (max, sorted) referenced, never called: it runs nothing at load
                rule, reason = R.REVIEWED_UNKNOWN, f"[{cls.category}] referenced, not called"
                severity = Severity.LOW
            elif cls.entry_id:
                rule, reason = R.REVIEWED_UNKNOWN, f"[{cls.category}] {cls.reason}"
            elif cls.index == indexed.UNDEFINED:
                rule, reason = R.UNDEFINED_IN_INDEX, cls.reason
            elif cls.index == indexed.KNOWN and (call is None or cls.kind in indexed.CALLABLE):
                ran = run[index] if run is not None else frozenset()
                rule, reason = R.KNOWN_BY_INDEX, indexed.describe(cls) + indexed.no_sink(cls, ran)
                severity = Severity.LOW if call is not None else Severity.INFO
            else:
                rule, reason = R.UNKNOWN_GLOBAL, "not in the reviewed allowlist"
                if call is not None:
                    if unknown_shapes is None:
                        unknown_shapes = StreamShapes.for_stream(facts)
                    applied = application(
                        unknown_shapes,
                        index,
                        g,
                        classes,
                        knowledge,
                        sites=sites.sites if sites is not None else None,
                    )
                    if applied:
                        rule = R.UNKNOWN_APPLIED
                        reason = f"not in the reviewed allowlist, {applied}"
            msg = f"{g.qualname}{resolved} {verb}: {reason}{where}"
            out.add(
                rule.finding(
                    msg, member=member, offset=offset, subject=g.qualname, severity=severity
                )
            )

    for c in calls_of_calls[:MAX_FINDINGS_PER_RULE]:
        severity, what = shapes.call_of_call(c, categories)
        out.add(
            R.CALL_OF_CALL_RESULT.finding(
                f"{c.opcode} calls {what}{where}",
                member=member,
                offset=at(c.offset),
                subject=c.opcode,
                severity=severity,
            )
        )

    _status_findings(member, facts, classes, out, scope)
    _anomaly_findings(member, facts, out, scope)
    _string_findings(member, facts.strings, out, scope)

    for k, n in enumerate(facts.nested):
        outer = at(n.offset)
        if n.encoding == "frame_divergence":
            rule = R.FRAME_VIOLATION
        else:
            rule = R.NESTED_PICKLE if n.encoding == "raw" else R.ENCODED_PICKLE
        # a raw nested pickle read whole says nothing alone: its own findings grade it
        whole = rule is R.NESTED_PICKLE and nested_loaders.read_whole(n.facts)
        out.add(
            rule.finding(
                f"{n.encoding} pickle of {n.length} bytes embedded at offset {n.offset}"
                + (f" ({n.carrier})" if n.carrier else "")
                + (", scanned whole: graded by its own findings" if whole else "")
                + where,
                member=member,
                offset=outer,
                subject=f"{n.encoding}@{n.offset}",
                severity=Severity.LOW if whole else None,
            )
        )
        inner = _Scope(scope.fmt, "nested", "", outer)
        inner_sites = sites.nested.get(k) if sites is not None else None
        _stream_findings(member, n.facts, rules, out, inner, knowledge=knowledge, sites=inner_sites)


def _nested_clean(
    member: str,
    facts: StreamFacts,
    rules: RuleSet,
    scope: _Scope,
    sites: StreamSites | None = None,
) -> bool:
    """A nested buffer's findings (its own nesting included, judged with its `sites`) hold
    nothing malicious."""
    scratch = _Collector()
    inner = _Scope(scope.fmt, "nested", "", 0)
    _stream_findings(member, facts, rules, scratch, inner, sites=sites)
    return all(f.severity < Severity.MALICIOUS for f in scratch.findings)


# Globals dill writes around the functions and classes it rebuilds: setattr on what it just
# built, and the builtins namespace it installs as a function's __builtins__.
_ATTRIBUTE_SETTERS = frozenset({"builtins.setattr", "dill._dill._setattr"})
_BUILTINS_NAMESPACE = "builtins.__dict__"


def _serialized_code_helper(
    index: int,
    cls: Classification,
    facts: StreamFacts,
    classes: Sequence[Classification | None],
) -> bool:
    """True when a dangerous global only serves serialized code the stream itself builds.

    setattr counts only when every call's target is the result of a code-construction call
    (never a module or class imported by name: that is attribute poisoning, D7); the builtins
    namespace (or a module's `__dict__`: dill's globals of a function defined in that module)
    only when it is never called nor any call's first argument (a receiver it could mutate)
    and the stream builds functions.
    """

    def built_here(call_index: int) -> bool:
        return built_by_code_construction(call_index, facts, classes)

    calls = [c for c in facts.calls if c.callable_index == index]
    if cls.resolved in _ATTRIBUTE_SETTERS:
        return bool(calls) and all(built_here(c.first_arg_call) for c in calls)
    namespace = cls.resolved == _BUILTINS_NAMESPACE or (
        cls.resolved.endswith(".__dict__") and cls.category == "introspection"
    )
    if namespace:
        if calls or any(c.first_arg_global == index for c in facts.calls):
            return False
        return any(built_here(i) for i in range(len(facts.calls)))
    return False


def _status_findings(
    member: str,
    facts: StreamFacts,
    classes: Sequence[Classification | None],
    out: _Collector,
    scope: _Scope,
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


def _is_safe_call(call: CallSite, classes: Sequence[Classification | None], scope: _Scope) -> bool:
    if call.callable_is_call:
        return False
    if call.callable_index < 0 or call.callable_index >= len(classes):
        # In a joblib segment the callable may be memoised in an earlier segment, where its
        # import was classified; elsewhere an unresolvable callable is not vouched for.
        return scope.cut_at_start
    cls = classes[call.callable_index]
    return cls is not None and cls.is_safe


def _anomaly_findings(member: str, facts: StreamFacts, out: _Collector, scope: _Scope) -> None:
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


def _string_findings(member: str, strings: Sequence[str], out: _Collector, scope: _Scope) -> None:
    offset, where = scope.at(-1), scope.where
    if not strings:
        return
    if not _maybe_command(strings):
        return
    for text in strings:
        if _SHELL.search(text):
            out.add(
                R.SHELL_STRING.finding(
                    f"string looks like a command or code: {text[:120]!r}{where}",
                    member=member,
                    offset=offset,
                    subject=text[:80],
                )
            )
        else:
            url = _URL.search(text)
            if url:
                out.add(
                    R.URL_STRING.finding(
                        f"string holds a URL: {url.group(0)[:120]!r}{where}",
                        member=member,
                        offset=offset,
                        subject=url.group(0)[:80],
                    )
                )


def _maybe_command(strings: Sequence[str]) -> bool:
    """Whether a _MAYBE needle occurs in some string, folded (see _MAYBE); native, one pass.

    Its plain Python specification is tests/specs/prefilter.py.
    """
    return bool(_native.contains_folded(strings, _MAYBE))
