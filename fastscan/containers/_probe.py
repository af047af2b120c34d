"""Cheap "does this look like a pickle?" checks used while routing bytes.

`probe` asks the native `fastscan.tokenizer.probe` about a bounded prefix, after a cheap check of
the first byte; `pickle_end` (native too) finds where one well-formed pickle stops (legacy torch).
`iter_ops` walks `pickletools.genops` for the readers that need decoded operands (joblib).
"""

from __future__ import annotations

# genops decodes protocol-0 UNICODE operands with this codec; left to the codec registry it is
# imported lazily in the middle of the first scan that meets one (an import on hostile input).
import encodings.raw_unicode_escape  # noqa: F401
import pickletools
import re
from collections.abc import Iterator
from typing import Any

from fastscan.tokenizer import probe as native_probe
from fastscan.tokenizer import tokenize

from .base import Buffer

PROBE_PREFIX = 64 * 1024  # bytes a probe may look at

# Opcodes a real pickle can begin with (anything that pushes without needing a stack item).
# EXT1/2/4 are left out: a stream opening with one needs a populated copyreg registry (empty in
# CPython), and tensor bytes often start with 0x82-0x84 (an int64 element count of 130-1100).
_START_OPCODES = frozenset(b"\x80(}])NIJKLMFGSTUVXcB\x8c\x8d\x8e\x88\x89\x8a\x8bCP\x96\x97\x8f")
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w.]*$")


class BufferReader:
    """Minimal file-like view over a buffer for `pickletools.genops` (no copy of the buffer)."""

    __slots__ = ("_mv", "_pos")

    def __init__(self, data: Buffer, pos: int = 0) -> None:
        self._mv = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        self._pos = pos

    def read(self, n: int = -1) -> bytes:
        end = len(self._mv) if n is None or n < 0 else min(len(self._mv), self._pos + n)
        out = bytes(self._mv[self._pos : end])
        self._pos = end
        return out

    def readline(self, limit: int = -1) -> bytes:
        # Text opcodes are short; bound the search so a huge line cannot stall us.
        stop = len(self._mv) if limit < 0 else min(len(self._mv), self._pos + limit)
        stop = min(stop, self._pos + (1 << 20))
        chunk = bytes(self._mv[self._pos : stop])
        nl = chunk.find(b"\n")
        out = chunk if nl < 0 else chunk[: nl + 1]
        self._pos += len(out)
        return out

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int) -> None:
        self._pos = max(0, min(pos, len(self._mv)))


def iter_ops(data: Buffer, start: int = 0) -> Iterator[tuple[Any, Any, int, int]]:
    """(opcode, arg, pos, end) over one pickle from `start`; genops raises ValueError on junk."""
    reader = BufferReader(data, start)
    for op, arg, pos in pickletools.genops(reader):  # type: ignore[arg-type]
        yield op, arg, pos if pos is not None else 0, reader.tell()


def probe(data: Buffer) -> bool:
    """True when `data` starts like a parseable pickle (any protocol, PROTO header or not)."""
    view = memoryview(data)[:PROBE_PREFIX]
    if len(view) == 0 or view[0] not in _START_OPCODES:
        return False  # the first opcode needs stack items: the loader raises before any call
    return native_probe(view)


def may_be_cut_pickle(prefix: Buffer) -> bool:
    """A probe window that may have ended inside a pickle's first, oversized operand.

    A PROTO header, or a protocol-0 text opcode whose line does not end inside the window
    (an 8 MiB UNICODE/STRING operand, THREATS G5): the prefix alone cannot decide, so the
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
    THREATS G5) and any other pickle at offset 0 that imports an importable-looking name. Only
    a pickle starting at offset 0 counts, so text with words that look like GLOBAL lines is not
    promoted by the tokenizer's resynchronisation.
    """
    view = memoryview(data)
    if len(view) == 0 or view[0] not in _START_OPCODES:
        return False  # only a pickle at offset 0 counts: skip the walk (a 50 GB hole of zeros)
    facts = tokenize(view)
    if not facts.pickle_offsets or facts.pickle_offsets[0] != 0:
        return False
    first = [g for g in facts.globals if g.pickle_index == 0]
    if first:
        return all(_IDENTIFIER.match(g.module) and _IDENTIFIER.match(g.name) for g in first[:1])
    single = facts.n_pickles == 1 and not facts.junk_bytes
    return facts.status == "ok" and single and facts.n_opcodes >= 2
