"""`fastscan explain`: what a file's pickles do — opcodes with offsets, imports, calls, why flagged.

Builds a plain-text report from an Analysis; reads opcode arguments straight from the buffer
(nothing is ever unpickled or imported).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from typing import Any

from .containers import PickleStream
from .facts import StreamFacts
from .findings import rule_findings
from .opcodes import (
    ARG_FIXED,
    ARG_LEN1,
    ARG_LINE,
    ARG_LINE2,
    ARG_NONE,
    BY_CODE,
    BYTES_OPCODES,
    STATE_OPCODES,
)
from .render import render_pickles
from .rules import RuleSet
from .rules.indexed import describe
from .scan import Analysis
from .text import clip
from .tokenizer import Op, list_opcodes
from .verdict import FileResult, score_decides

_FIXED_FORMATS = {
    "BININT": "<i",
    "BININT1": "<B",
    "BININT2": "<H",
    "BINFLOAT": ">d",
    "LONG_BINGET": "<I",
    "LONG_BINPUT": "<I",
    "BINGET": "<B",
    "BINPUT": "<B",
    "PROTO": "<B",
    "EXT1": "<B",
    "EXT2": "<H",
    "EXT4": "<i",
    "FRAME": "<Q",
}


def describe_arg(view: memoryview, op: Op, width: int = 60) -> str:
    """A short, safe rendering of an opcode's argument."""
    info = BY_CODE[op.code]
    if info.arg_kind == ARG_NONE:
        return ""
    raw = bytes(view[op.arg_offset : op.arg_offset + min(op.arg_length, 4 * width)])
    if info.arg_kind == ARG_FIXED:
        fmt = _FIXED_FORMATS.get(info.name)
        if fmt and len(raw) == struct.calcsize(fmt):
            return str(struct.unpack(fmt, raw)[0])
        return raw.hex()
    if info.arg_kind in (ARG_LINE, ARG_LINE2):
        text = raw.rstrip(b"\r\n").decode("utf-8", "replace").replace("\n", " ")
        return clip(text, width)
    if info.name in BYTES_OPCODES:
        return f"<{op.arg_length} bytes>"
    if info.arg_kind == ARG_LEN1 and info.name.startswith("LONG"):
        return f"<long, {op.arg_length} bytes>"
    text = raw.decode("utf-8", "replace")
    suffix = f" … ({op.arg_length} bytes)" if op.arg_length > len(raw) else ""
    return clip(repr(text), width) + suffix


def render(
    analysis: Analysis | None,
    result: FileResult,
    data_for: dict[str, Any],
    rules: RuleSet,
    *,
    max_ops: int = 400,
) -> Iterator[str]:
    """Lines of the explanation. `data_for` maps a member name to its buffer (for listings);
    without an analysis (a file that could not be read) the row alone is explained."""
    c = analysis.container if analysis is not None else None
    yield f"file:     {result.path}"
    if c is not None:
        wrappers = f" (inside {' > '.join(c.wrappers)})" if c.wrappers else ""
        ext = c.extension or "-"
        yield f"format:   {c.format}{wrappers}; extension {ext} (recorded, not trusted)"
    yield f"status:   {result.status}" + (f" — {result.error}" if result.error else "")
    yield (
        f"verdict:  {result.verdict.upper()}  score={_num(result.score)}"
        f" anomaly={_num(result.anomaly_score)}"
    )
    if not math.isnan(result.score) and not score_decides(
        rule_findings(result.findings), result.status
    ):
        # the classifier is fit where its score decides (verdict.score_decides): a low score
        # beside a rule verdict is no opinion that the file is safe
        yield "          (the rules decide this file; the classifier may raise it, never lower it)"
    for a in c.anomalies if c is not None else ():
        yield f"container anomaly: {a.code} {a.member} {a.detail}".rstrip()
    for stream, facts in analysis.streams if analysis is not None else ():
        yield ""
        yield from _stream_section(stream, facts, data_for.get(stream.member), rules, max_ops)
    yield ""
    if result.findings:
        yield "why:"
        for reason in result.reasons:
            yield f"  {reason}"
    else:
        yield "why: no findings"


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def _stream_section(
    stream: PickleStream, facts: StreamFacts, data: Any, rules: RuleSet, max_ops: int
) -> Iterator[str]:
    where = stream.member or "<file>"
    yield f"== stream {where} (+{stream.offset}, {facts.length} bytes, kind {stream.kind})"
    yield (
        f"   status {facts.status}; {facts.n_pickles} pickle(s) at {list(facts.pickle_offsets)};"
        f" protocols {list(facts.protocols)}; {facts.n_opcodes} opcodes"
    )
    if facts.error:
        yield f"   error: {facts.error}"
    if data is not None:
        view = memoryview(data).cast("B") if memoryview(data).format != "B" else memoryview(data)
        if facts.pickle_offsets:
            yield "   as Python (what the loader runs; nothing here was executed):"
            for line in render_pickles(view, facts.pickle_offsets):
                yield f"     {line}"
        for index, start in enumerate(facts.pickle_offsets):
            ops, _end, status = list_opcodes(view, start, max_ops)
            state = status if len(ops) < max_ops else "listing cut"
            yield f"   -- pickle {index} at offset {start} ({state})"
            for op in ops:
                yield f"   {op.offset:>10}  {op.name:<18} {describe_arg(view, op)}"
    yield "   imports:" + ("" if rules.index is not None else " (no ecosystem index loaded)")
    for g in facts.globals:
        cls = rules.classify(g.module, g.name)
        how = "" if g.resolved else " (unresolved operand)"
        memo = " via memo" if g.via_memo else ""
        yield (
            f"     @{g.offset:<8} {g.opcode:<12} {g.qualname:<50} {cls.verdict_class}"
            f"{'/' + cls.category if cls.category else ''}{how}{memo}"
        )
        if cls.resolved and cls.resolved != g.qualname:
            yield f"               resolves to {cls.resolved}: {cls.reason}"
        if rules.index is not None:
            yield f"               {describe(cls)}"
        for r in cls.reaches:
            yield f"               load-time {r.hook} -> [{r.category}] {' -> '.join(r.path)}"
    yield "   calls:"
    for call in facts.calls:
        if call.opcode in STATE_OPCODES and call.callable_index < 0:
            continue
        target = (
            facts.globals[call.callable_index].qualname
            if call.callable_index >= 0
            else ("<result of a call>" if call.callable_is_call else "<unresolved>")
        )
        flags = " (result discarded)" if call.discarded else ""
        yield f"     @{call.offset:<8} {call.opcode:<10} {target}{flags}"
    for a in facts.anomalies:
        yield f"   anomaly @{a.offset}: {a.code} {a.detail}".rstrip()
    for nested in facts.nested:
        how = f"{nested.encoding}, {nested.carrier}" if nested.carrier else nested.encoding
        yield f"   nested pickle ({how}) @{nested.offset}, {nested.length} bytes:"
        for g in nested.facts.globals:
            yield f"     imports {g.qualname} @{g.offset}"
