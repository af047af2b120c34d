"""Where a stream sits (`Scope`: format, kind, joblib fragment, nesting) and how the engine
gathers findings (`Collector`: one per rule, member and subject, each rule capped per member).
Shared by the engine and the structure and string checks (rules/structure.py, rules/strings.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..containers.base import Container
from ..containers.formats import KIND_JOBLIB
from ..facts import StreamFacts
from ..findings import Finding

MAX_FINDINGS_PER_RULE = 64  # per member; the rest is summarised so hostile files stay small


@dataclass(frozen=True, slots=True)
class Scope:
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


def stream_scopes(
    streams: Sequence[tuple[str, StreamFacts]], container: Container | None
) -> list[tuple[str, StreamFacts, Scope]]:
    if container is None:
        return [(member, facts, Scope()) for member, facts in streams]
    fmt = container.format
    described = container.streams
    if len(described) != len(streams) or any(
        d.member != member for d, (member, _) in zip(described, streams, strict=False)
    ):
        kinds = {d.member: d.kind for d in described}  # caller passed a subset: no fragments
        return [(m, f, Scope(fmt, kinds.get(m, ""))) for m, f in streams]
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
        out.append((member, facts, Scope(fmt, d.kind, fragment, base=d.offset)))
    return out


class Collector:
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
