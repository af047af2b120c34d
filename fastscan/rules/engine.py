"""Facts -> findings. One linear pass over each stream's globals and calls; the container, the
stream's status and anomalies (rules/structure.py) and its strings (rules/strings.py) are judged
by their own modules, within the same scope and collector (rules/collect.py).

Severity policy (docs/threats.md, "Lessons"): importing or calling a sink is malicious; a global
outside the allowlist is suspicious, never a pass; structure that benign `torch.save`/`joblib.dump`/
`numpy.save` never produce is graded by how much it says about intent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .. import facts as A  # tokenizer anomaly codes
from .. import findings as R
from ..containers.base import Container
from ..facts import CallSite, StreamFacts
from ..findings import Finding, Severity
from ..opcodes import STATE_OPCODES  # BUILD sets state, it calls no global
from . import indexed, kept, nested_loaders
from .call_shapes import CallShapes
from .callsites import StreamSites
from .collect import MAX_FINDINGS_PER_RULE, Collector, Scope, stream_scopes
from .handed import Handed
from .knowledge import CALLBACK_DISPATCH, CODE_CONSTRUCTION, NESTED_LOADER, UNKNOWN, Classification
from .nested_loaders import Archives, Opened, Visible
from .ruleset import RuleSet, default_ruleset
from .strings import referenced_by_text, string_findings
from .structure import anomaly_findings, container_findings, status_findings
from .unknown_calls import (
    KNOWN_INERT,
    Knowledge,
    StreamShapes,
    application,
    built_by_code_construction,
    callbacks_handed,
    knowledge_of,
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
    opened: Sequence[Opened] = (),
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
    by the stream's strings, rules.call_shapes). `opened`, aligned with `streams`: the archives
    nested loader calls are handed, opened and scanned (nested_loaders.open_archives): their
    content's findings are reported, and a loader of a clean one is judged by it.
    """
    rules = ruleset or default_ruleset()
    out = Collector()
    if container is not None:
        container_findings(container, out)
    for i, (member, facts, scope) in enumerate(stream_scopes(streams, container)):
        found = targets[i] if i < len(targets) else None
        visible = operands[i] if i < len(operands) else {}
        handed = sites[i] if i < len(sites) else None
        archives = opened[i] if i < len(opened) else Opened({})
        _stream_findings(
            member,
            facts,
            rules,
            out,
            scope,
            found,
            visible,
            knowledge=knowledge,
            sites=handed,
            archives=archives.archives,
        )
        for f in archives.findings:
            out.add(replace(f, member=member, offset=scope.at(f.offset)))
    return rules.suppress(out.findings, path, rel)


def _stream_findings(  # noqa: PLR0917
    member: str,
    facts: StreamFacts,
    rules: RuleSet,
    out: Collector,
    scope: Scope,
    targets: indexed.Targets | None = None,
    visible: Visible | None = None,
    *,
    knowledge: Knowledge | None = None,
    sites: StreamSites | None = None,
    archives: Archives | None = None,
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
    # Hooks the loader runs per global: only worked out when the index knows a reach, or a
    # wildcard yielded to it (restored when the pickle constructs the class).
    live = any(
        c and (c.denied_by or (c.reaches and not (c.pinned or c.is_dangerous))) for c in classes
    )
    stored = sites.stored if sites is not None else None
    run = indexed.hooks(facts, classes, targets, stored) if live else None
    if run is not None:
        classes = indexed.denied_when_constructed(classes, run)
    handed, visible = Handed.for_stream(facts, classes, rules, sites, visible)
    shapes = CallShapes(facts, classes, rules, handed)
    unknown_shapes: StreamShapes | None = None  # built for the first unlisted call
    handed_callbacks: dict[int, str] | None = None  # likewise

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
                archives=archives,
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
        # only stored in objects of unlisted classes: as uncertain as they are (judgeable)
        held = reach is not None and call is None
        holders = kept.held_by_unlisted(facts, classes, index, stored) if held else []
        if reach is not None and holders:
            categories.add(reach.category)
            msg = (
                f"{g.qualname}{resolved} {verb} [{reach.category}]: its {reach.hook} hook reaches"
                f" a sink ({' -> '.join(reach.path)}), but it is only held by objects of"
                f" unlisted {', '.join(holders[:3])}: it runs only if their own code calls it"
                + where
            )
            out.add(
                R.HELD_BY_UNLISTED.finding(msg, member=member, offset=offset, subject=g.qualname)
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
                if rule is R.UNKNOWN_GLOBAL and knowledge_of(knowledge, g.module, g.name) != (
                    KNOWN_INERT
                ):
                    if handed_callbacks is None:
                        handed_callbacks = callbacks_handed(facts)
                    caller = handed_callbacks.get(index, "")
                    bound = handed.kept.bound_text(index) if handed and not caller else ""
                    if caller:
                        rule = R.UNKNOWN_APPLIED
                        reason = (
                            f"not in the reviewed allowlist, handed to {caller} as a callable"
                            " beside text (a callback and its argument)"
                        )
                    elif bound:
                        rule = R.UNKNOWN_APPLIED
                        reason = f"not in the reviewed allowlist, {bound}"
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

    status_findings(member, facts, classes, out, scope)
    anomaly_findings(member, facts, out, scope)
    string_findings(member, facts.strings, out, scope)
    referenced_by_text(member, facts.strings, rules.classify, out, scope)

    for k, n in enumerate(facts.nested):
        outer = at(n.offset)
        if n.encoding == "frame_divergence":
            rule = R.FRAME_VIOLATION
        else:
            rule = R.NESTED_PICKLE if n.encoding == "raw" else R.ENCODED_PICKLE
        # a raw nested pickle read whole says nothing alone: its own findings grade it
        whole = nested_loaders.graded_whole(n)
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
        inner = Scope(scope.fmt, "nested", "", outer)
        inner_sites = sites.nested.get(k) if sites is not None else None
        _stream_findings(member, n.facts, rules, out, inner, knowledge=knowledge, sites=inner_sites)


def _nested_clean(
    member: str,
    facts: StreamFacts,
    rules: RuleSet,
    scope: Scope,
    sites: StreamSites | None = None,
) -> bool:
    """A nested buffer's findings (its own nesting included, judged with its `sites`) hold
    nothing malicious."""
    scratch = Collector()
    inner = Scope(scope.fmt, "nested", "", 0)
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
