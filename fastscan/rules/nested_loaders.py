"""Nested loaders over visible content: `loader(b"...")` judged by what the bytes hold.

`torch.storage._load_from_bytes(b)` is how plain `pickle` writes every tensor (skorch,
sentence-transformers, any pickled nn.Module): the loader runs `torch.load` on bytes the stream
carries as a literal operand. When that operand is the call's only argument and the tokenizer
read it whole as nested pickles (torch's legacy format is five of them), the nested scan sees
everything the loader will load, so the call is judged by that content (engine: low when the
nested findings hold nothing malicious). Anything else fails closed and stays malicious: an
argument that is computed, memoised, carried through `_codecs.encode`, a zip archive the
tokenizer does not open, truncated or past a budget, or a loader global used other than by
those calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..facts import STATUS_OK, StreamFacts
from ..opcodes import STATE_OPCODES
from .knowledge import NESTED_LOADER

# Bytes opcodes whose operand the tokenizer reads as a nested pickle: opcode -> length size.
_BYTES_HEADERS = {b"C"[0]: 1, b"B"[0]: 4, 0x8E: 8}  # SHORT_BINBYTES, BINBYTES, BINBYTES8
_MEMOIZE, _BINPUT, _LONG_BINPUT, _TUPLE1 = 0x94, b"q"[0], b"r"[0], 0x85
_REDUCE = "REDUCE"

Visible = Mapping[int, int]  # call offset -> index into StreamFacts.nested of its sole argument


def _operand_whole(data: memoryview, offset: int, length: int) -> bool:
    """The nested pickle at `offset` is the entire payload of a bytes opcode just before it."""
    for op, size in _BYTES_HEADERS.items():
        start = offset - 1 - size
        if start < 0 or data[start] != op:
            continue
        raw = bytes(data[start + 1 : offset])
        if int.from_bytes(raw, "little") == length:
            return True
    return False


def _only_tuple1(data: memoryview, start: int, end: int) -> bool:
    """data[start:end] is memo puts around one TUPLE1: the operand becomes `(operand,)`."""
    i, tuples = start, 0
    while i < end:
        op = data[i]
        if op == _MEMOIZE:
            i += 1
        elif op == _BINPUT:
            i += 2
        elif op == _LONG_BINPUT:
            i += 5
        elif op == _TUPLE1:
            tuples += 1
            i += 1
        else:
            return False
    return i == end and tuples == 1


def visible_operands(data: object, facts: StreamFacts) -> Visible:
    """Per REDUCE whose argument tuple is exactly one literal bytes operand read as nested
    pickles: the index of that nested pickle. Empty when the stream has none."""
    if not facts.nested:
        return {}
    view = memoryview(data).cast("B")  # type: ignore[arg-type]
    reduces = {c.offset for c in facts.calls if c.opcode == _REDUCE}
    out: dict[int, int] = {}
    for k, n in enumerate(facts.nested):
        if n.encoding != "raw" or n.carrier or n.facts.status != STATUS_OK:
            continue
        end = n.offset + n.length
        if not _operand_whole(view, n.offset, n.length):
            continue
        # the REDUCE follows within a few memo puts and the TUPLE1 (at most 12 bytes)
        for call_at in range(end + 1, min(end + 13, len(view))):
            if call_at in reduces:
                if _only_tuple1(view, end, call_at):
                    out[call_at] = k
                break
    return out


def visible_loader_calls(
    index: int,
    facts: StreamFacts,
    dangerous_categories: Sequence[str],
    visible: Visible,
) -> list[int] | None:
    """Nested pickles holding every argument of nested-loader global `index`, or None when
    one is not visible. `dangerous_categories` (per global, "" when not dangerous) fails this
    closed when the stream also holds a non-loader sink that could hand the loader other
    bytes (a dispatcher, getattr); a reference to the loader other than as a callable (its
    use as a first argument) fails it too."""
    if any(cat not in ("", NESTED_LOADER) for cat in dangerous_categories):
        return None
    held: list[int] = []
    for c in facts.calls:
        if c.first_arg_global == index:
            return None
        if c.callable_index != index or c.opcode in STATE_OPCODES:
            continue
        k = visible.get(c.offset, -1) if c.opcode == _REDUCE else -1
        if k < 0:
            return None
        held.append(k)
    return held or None


def benign_content(
    index: int,
    facts: StreamFacts,
    dangerous_categories: Sequence[str],
    visible: Visible | None,
    clean: Callable[[StreamFacts], bool],
) -> str:
    """Why nested loader `index` is benign here: every call of it loads literal bytes whose
    nested scan (`clean`: complete, nothing malicious) passes; "" otherwise (stays malicious)."""
    if not visible:
        return ""
    held = visible_loader_calls(index, facts, dangerous_categories, visible)
    if held is None or not all(clean(facts.nested[k].facts) for k in held):
        return ""
    return f"{len(held)} visible operand(s) whose nested scan holds nothing malicious"


__all__ = ["Visible", "benign_content", "visible_loader_calls", "visible_operands"]
