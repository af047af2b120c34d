"""The `shape_*` and `know_*` feature blocks: how unlisted callables are called, and what an index
knows about them (see fastscan.rules.unknown_calls for the shapes).

Every feature is a count over the calls (or distinct names) of unlisted callables. Padding a
file with benign content only adds calls, and wrapping a payload only adds uses of its results
(a POP after it), so most counts can only rise and the classifier is monotone in them. Three
are residual classes a payload's call can leave when it gains a use (`shape_res_kept`,
`shape_restoration`, `shape_construction`): features.PADDING_SHIFTED hides them from the
classifier (the anomaly model still sees them).
"""

from __future__ import annotations

from collections.abc import Sequence

from .facts import ARG_BYTES, ARG_STR, StreamFacts
from .rules.unknown_calls import (
    APPLICATION,
    ARG_NAMES,
    CLASS_NAME,
    CONSTRUCTION,
    DOTTED_NAME,
    FUNCTION_NAME,
    KNOWN_GADGET,
    KNOWN_INERT,
    RESTORATION,
    UNKNOWN_NAME,
    USES,
    CallShape,
    Knowledge,
    StreamShapes,
    knowledge_of,
)

_OPS = (("reduce", ("REDUCE",)), ("inst_obj", ("INST", "OBJ")), ("newobj", ("NEWOBJ", "NEWOBJ_EX")))
_NAME_SHAPES = (CLASS_NAME, FUNCTION_NAME, DOTTED_NAME)
_SHAPES = (RESTORATION, APPLICATION, CONSTRUCTION)
_KNOWLEDGE = (KNOWN_INERT, KNOWN_GADGET, UNKNOWN_NAME)

SHAPE_NAMES: tuple[str, ...] = (
    "shape_calls",
    *(f"shape_op_{name}" for name, _ in _OPS),
    *(f"shape_name_{s}" for s in _NAME_SHAPES),
    "shape_arg_empty",
    *(f"shape_arg_{name}" for name, _ in ARG_NAMES),
    *(f"shape_res_{name}" for name, _ in USES),
    "shape_res_kept",
    *(f"shape_{s}" for s in _SHAPES),
    "shape_application_text",
    "shape_by_helper",
    *(f"know_{k}" for k in _KNOWLEDGE),
    "know_gadget_calls",
)
_SLOT = {name: i for i, name in enumerate(SHAPE_NAMES)}
_OP_SLOT = {op: _SLOT[f"shape_op_{name}"] for name, ops in _OPS for op in ops}
_NAME_SLOT = {s: _SLOT[f"shape_name_{s}"] for s in _NAME_SHAPES}
_ARG_SLOTS = tuple((bit, _SLOT[f"shape_arg_{name}"]) for name, bit in ARG_NAMES)
_USE_SLOTS = tuple((bit, _SLOT[f"shape_res_{name}"]) for name, bit in USES)
_SHAPE_SLOT = {s: _SLOT[f"shape_{s}"] for s in _SHAPES}
_KNOW_SLOT = {k: _SLOT[f"know_{k}"] for k in _KNOWLEDGE}
_GADGET_CALLS = _SLOT["know_gadget_calls"]


def shape_block(
    streams: Sequence[StreamFacts], classes: dict[str, str], knowledge: Knowledge | None
) -> list[int]:
    """Counts laid out as SHAPE_NAMES. `classes`: qualname -> rule class of the file's distinct
    globals (features' `distinct`); only "unknown" ones are looked at."""
    out = [0] * len(SHAPE_NAMES)
    known: dict[str, str] = {}  # qualname -> knowledge, for distinct called/restored names
    for facts in streams:
        names = [g.qualname for g in facts.globals]
        unknown = {i for i, q in enumerate(names) if classes.get(q) == "unknown"}
        if not unknown or not facts.calls:
            continue
        shapes = StreamShapes.for_stream(facts)  # built by the rules already
        for i in sorted(unknown):
            calls = shapes.of_callable(i)
            if not calls:
                continue
            g = facts.globals[i]
            know = known.get(names[i])
            if know is None:
                know = known[names[i]] = knowledge_of(knowledge, g.module, g.name)
            for s in calls:
                _count_call(out, s)
                out[_GADGET_CALLS] += know == KNOWN_GADGET
        for g in shapes.restored_by_helper(unknown):
            out[_SLOT["shape_by_helper"]] += 1
            if g.qualname not in known:
                known[g.qualname] = knowledge_of(knowledge, g.module, g.name)
    for know in known.values():
        out[_KNOW_SLOT[know]] += 1
    return out


def _count_call(out: list[int], s: CallShape) -> None:
    kinds, uses, shape = s.arg_kinds, s.uses, s.shape
    out[0] += 1
    slot = _OP_SLOT.get(s.opcode)
    if slot is not None:
        out[slot] += 1
    if shape != RESTORATION:
        # how a name is spelled says little once the loader restores an object with it (a
        # lowercase class rebuilt by NEWOBJ): spelling is counted for the other calls only
        out[_NAME_SLOT[s.name_shape]] += 1
    if not kinds:
        out[_SLOT["shape_arg_empty"]] += 1
    for bit, slot in _ARG_SLOTS:
        out[slot] += bool(kinds & bit)
    for bit, slot in _USE_SLOTS:
        out[slot] += bool(uses & bit)
    if not uses:
        out[_SLOT["shape_res_kept"]] += 1
    out[_SHAPE_SLOT[shape]] += 1
    if shape == APPLICATION and kinds & (ARG_STR | ARG_BYTES):
        out[_SLOT["shape_application_text"]] += 1
