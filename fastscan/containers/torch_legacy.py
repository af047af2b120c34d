"""PyTorch legacy (pre-1.6, `_use_new_zipfile_serialization=False`) and 0.1.x tar checkpoints.

The legacy stream is five stacked pickles (magic number, protocol version, sys_info, the object,
the storage keys) followed by raw storage bytes that torch.load never unpickles. A forged magic
(docs/threats.md A5: the first pickle computes the number, e.g. via eval) is still accepted by
the loader, so then the whole file is handed over as raw pickles. The 0.1.x layout is a tar with
`storages` (pickles interleaved with raw storage data), `tensors` (pickles interleaved with shape
records) and `pickle`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from ..tokenizer import pickle_end
from . import anomalies as A
from . import formats as F
from ._context import ScanState, join_member
from ._probe import PROBE_PREFIX, iter_ops, parses_as_pickle, prefix_is_pickle
from .base import Buffer
from .sniff import LEGACY_MAGIC, LEGACY_MAGIC_PICKLE

KIND = F.KIND_LEGACY_TORCH
N_PICKLES = 5
MAX_EXTRA_PICKLES = 64  # pickles found where the raw storage bytes should begin

# Text forms of the magic that a forged first pickle would carry (hex literal, decimal).
_MAGIC_TEXTS = (b"%x" % LEGACY_MAGIC, b"%X" % LEGACY_MAGIC, b"%d" % LEGACY_MAGIC)

# Element size per legacy storage class (torch._utils._element_size of its dtype).
STORAGE_ELEMENT_SIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
    "QUInt8Storage": 1, "QInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
}  # fmt: skip


def looks_forged(buf: Buffer) -> bool:
    """The first pickle mentions the magic number as text rather than as the LONG1 literal."""
    head = bytes(memoryview(buf)[:4096])
    end = pickle_end(head)
    first = head[:end] if end else head[:512]
    return any(text in first for text in _MAGIC_TEXTS)


def read_legacy(state: ScanState, buf: Buffer, member: str) -> None:
    """Yield the five stacked pickles of a legacy checkpoint (or the whole file if forged)."""
    view = memoryview(buf)
    if bytes(view[: len(LEGACY_MAGIC_PICKLE)]) != LEGACY_MAGIC_PICKLE:
        state.anomaly(A.LEGACY_MAGIC_FORGED, member, "magic number is not a LONG1 literal")
        state.add_stream(member, 0, view, KIND)
        return
    pos = 0
    for index in range(N_PICKLES):
        end = pickle_end(view, pos)
        if end is None:
            # The loader still runs whatever parses; give the tokenizer everything left.
            state.anomaly(A.LEGACY_PICKLE_BROKEN, member, f"pickle #{index} at offset {pos}")
            state.add_stream(member, pos, view[pos:], KIND)
            return
        state.add_stream(member, pos, view[pos:end], KIND)
        pos = end
    pos = _extra_pickles(state, view, member, pos)
    state.container.notes["legacy_storage_bytes"] = str(len(view) - pos)


def _extra_pickles(state: ScanState, view: memoryview, member: str, pos: int) -> int:
    """Pickles stacked after the fifth one (docs/threats.md C3): a loader that calls load() again
    runs them, and torch.load itself then reads a shifted layout. Storage bytes start with an int64
    element count, which never parses as a whole pickle, so benign files stop here at once."""
    for extra in range(MAX_EXTRA_PICKLES):
        window = view[pos : pos + PROBE_PREFIX]
        if pos >= len(view) or not prefix_is_pickle(window):
            break
        end = pickle_end(view, pos)
        if end is None and not parses_as_pickle(window):
            break  # neither a whole pickle nor one that imports before it breaks (C1)
        state.anomaly(A.LEGACY_EXTRA_PICKLE, member, f"pickle #{N_PICKLES + extra} at {pos}")
        state.add_stream(member, pos, view[pos : end or len(view)], KIND)
        if end is None:
            return len(view)
        pos = end
    return pos


def is_legacy_tar(names: set[str]) -> bool:
    return {"pickle", "storages", "tensors"} <= names


def _storage_class(data: Buffer, start: int) -> str:
    """Name of the last GLOBAL/STACK_GLOBAL class in the pickle at `start` (best effort)."""
    last = ""
    strings: list[str] = []
    for op, arg, _pos, _end in iter_ops(data, start):
        if op.name == "GLOBAL":
            last = str(arg).split(" ")[-1]
        elif isinstance(arg, str):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL" and strings:
            last = strings[-1]
    return last


def _first_int(data: Buffer) -> int:
    for op, arg, _pos, _end in iter_ops(data, 0):
        if isinstance(arg, int) and op.name in ("BININT", "BININT1", "BININT2", "INT", "LONG1"):
            return arg
    return -1


def _walk_records(state: ScanState, data: Buffer, member: str, which: str) -> None:
    """Split `storages`/`tensors`: a count pickle, then per record a pickle and raw bytes.

    `storages` ends with one more pickle (the storage views); anything the layout does not
    explain is handed to the tokenizer as a raw stream with an anomaly.
    """
    view = memoryview(data)
    end = pickle_end(view, 0)
    count = _first_int(view) if end is not None else -1
    if end is None or count < 0:
        state.anomaly(A.LEGACY_TAR_UNPARSED, member)
        state.add_stream(member, 0, view, KIND)
        return
    state.add_stream(member, 0, view[:end], KIND)
    for _ in range(count):
        pos = end
        stop = pickle_end(view, pos)
        raw = -1
        if stop is not None:
            state.add_stream(member, pos, view[pos:stop], KIND)
            try:
                if which == "storages":
                    size = STORAGE_ELEMENT_SIZE.get(_storage_class(view, pos), 0)
                    (numel,) = struct.unpack_from("<q", view, stop)
                    raw = 8 + numel * size if size and numel >= 0 else -1
                else:
                    (ndim,) = struct.unpack_from("<i", view, stop)
                    raw = 8 + 16 * ndim + 8 if ndim >= 0 else -1
            except (struct.error, ValueError):
                raw = -1
        if stop is None or raw < 0 or stop + raw > len(view):
            state.anomaly(A.LEGACY_TAR_UNPARSED, member, f"record at {pos}")
            state.add_stream(member, pos, view[pos:], KIND)
            return
        end = stop + raw
    if which == "storages" and end < len(view):
        stop = pickle_end(view, end)
        state.add_stream(member, end, view[end : stop or len(view)], KIND)
        end = stop or len(view)
    if end < len(view):
        state.anomaly(A.TRAILING_DATA, member, f"{len(view) - end} bytes")
        state.add_stream(member, end, view[end:], KIND)


def read_legacy_tar(state: ScanState, members: Mapping[str, Buffer], parent: str) -> None:
    """Pickles of the 0.1.x tar layout; `members` maps name -> full member bytes."""
    state.add_stream(join_member(parent, "pickle"), 0, members["pickle"], KIND)
    for which in ("storages", "tensors"):
        _walk_records(state, members[which], join_member(parent, which), which)
