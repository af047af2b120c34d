"""Cheap "does this look like a pickle?" checks used while routing bytes.

`prefix_is_pickle` is the router's check: a first byte that can open a real pickle, then
`fastscan.tokenizer.starts_like_pickle` on a bounded prefix; `pickle_end` (native too) finds
where one well-formed pickle stops (legacy torch).
`iter_ops` lists opcodes natively and decodes operands like `pickletools.genops`, for the readers
that need operand values (joblib, legacy torch records).
"""

from __future__ import annotations

# pickletools decodes protocol-0 UNICODE operands with this codec; left to the codec registry it is
# imported lazily in the middle of the first scan that meets one (an import on hostile input).
import encodings.raw_unicode_escape  # noqa: F401
import io
import pickletools
import re
from collections.abc import Iterator
from typing import Any

from fastscan.opcodes import START_BYTES
from fastscan.tokenizer import opcode_bounds, starts_like_pickle, tokenize

from .base import Buffer

PROBE_PREFIX = 64 * 1024  # bytes a probe may look at

_IDENTIFIER = re.compile(r"^[A-Za-z_][\w.]*$")


_OPINFO = {op.code.encode("latin-1")[0]: op for op in pickletools.opcodes}
_OPS_PER_BATCH = 1 << 16  # bounds the listing held in memory at once


def iter_ops(
    data: Buffer, start: int = 0, max_ops: int = 10_000_000
) -> Iterator[tuple[Any, Any, int, int]]:
    """(opcode, arg, pos, end) over one pickle from `start`, as `pickletools.genops` gives them.

    The native lister finds opcode boundaries, a bounded batch at a time; only operands are
    decoded here, by pickletools' own argument readers, so values and errors match genops
    (ValueError on junk or truncation, and past `max_ops` opcodes).
    """
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
    pos, left = start, max_ops
    while True:
        codes, offsets, _aoffs, _alens, end, status = opcode_bounds(
            view, pos, min(left, _OPS_PER_BATCH)
        )
        bounds = [*offsets[1:], end] if codes else []  # an empty batch: no opcode, no bound
        for code, at, stop in zip(codes, offsets, bounds, strict=True):
            op = _OPINFO[code]
            arg = None if op.arg is None else op.arg.reader(io.BytesIO(view[at + 1 : stop]))
            yield op, arg, at, stop
        left -= len(codes)
        if status == "ok":
            return
        if status != "budget" or left <= 0:
            raise ValueError(f"pickle {status} at offset {end}")
        pos = end


def prefix_is_pickle(data: Buffer) -> bool:
    """True when `data` starts like a parseable pickle (any protocol, PROTO header or not)."""
    view = memoryview(data)[:PROBE_PREFIX]
    if len(view) == 0 or view[0] not in START_BYTES:
        return False  # the first opcode needs stack items: the loader raises before any call
    return starts_like_pickle(view)


def may_be_cut_pickle(prefix: Buffer) -> bool:
    """A probe window that may have ended inside a pickle's first, oversized operand.

    A PROTO header, or a protocol-0 text opcode whose line does not end inside the window
    (an 8 MiB UNICODE/STRING operand, docs/threats.md G5): the prefix alone cannot decide, so the
    caller reads the member whole and asks `parses_as_pickle`.
    """
    head = bytes(memoryview(prefix)[:2])
    if len(head) < 2:
        return False
    if head[0] == 0x80:
        return 2 <= head[1] <= 5
    return head[:1] in (b"V", b"S") and b"\n" not in bytes(prefix)


def parses_as_pickle(data: Buffer) -> bool:
    """Last resort for bytes the prefix probe rejected: walk the whole buffer natively.

    Catches pickles whose first opcode outruns the probe window (an 8 MiB protocol-0 string,
    docs/threats.md G5) and any other pickle at offset 0 that imports an importable-looking
    name. Only a pickle starting at offset 0 counts, so text with words that look like GLOBAL
    lines is not promoted by the tokenizer's resynchronisation.
    """
    view = memoryview(data)
    if len(view) == 0 or view[0] not in START_BYTES:
        return False  # only a pickle at offset 0 counts: skip the walk (a 50 GB hole of zeros)
    facts = tokenize(view)
    if not facts.pickle_offsets or facts.pickle_offsets[0] != 0:
        return False
    first = [g for g in facts.globals if g.pickle_index == 0]
    if first:
        return all(_IDENTIFIER.match(g.module) and _IDENTIFIER.match(g.name) for g in first[:1])
    single = facts.n_pickles == 1 and not facts.junk_bytes
    return facts.status == "ok" and single and facts.n_opcodes >= 2
