"""joblib dumps: a pickle with numpy array bytes written raw in the middle of it.

joblib's NumpyPickler replaces each ndarray by a `NumpyArrayWrapper` object; right after the
wrapper's BUILD it writes the array: for joblib >= 1.2 one padding-length byte plus that many
padding bytes (alignment), then `prod(shape) * itemsize` raw bytes; object arrays are instead
written as a nested protocol-5 pickle. The loader's BUILD handler reads exactly that extent and
resumes unpickling after it, so a payload can follow an array (docs/threats.md A12). A pickle
walker dies on the raw bytes; this module computes each extent from the wrapper's own state
(shape, dtype, alignment) with a small symbolic stack, and cuts the dump into pickle segments
around the arrays.
That walk is native (`fastscan._joblibwalk`, one C loop per dump); its Python specification lives in
tests/specs/joblib_walk.py, and the two are tested equal.

Compressed dumps (zlib, gzip, bz2, xz, lzma, lz4 prefixes) are decompressed by `archive` first and
land here as plain bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import _joblibwalk
from ..tokenizer import byte_view, find
from . import anomalies as A
from . import formats as F
from ._context import ScanState
from .base import Buffer

KIND = F.KIND_JOBLIB
WRAPPER_MARKERS = (b"NumpyArrayWrapper", b"NDArrayWrapper")
# Every marker ends in this stem: one in-place search, then a look at the bytes before it.
_WRAPPER_STEM = b"ArrayWrapper"
_WRAPPER_PREFIXES = tuple(m.removesuffix(_WRAPPER_STEM) for m in WRAPPER_MARKERS)
_LONGEST_PREFIX = max(map(len, _WRAPPER_PREFIXES))
MAX_WALK_OPCODES = 5_000_000  # symbolic walk budget; beyond it the rest is one raw stream


@dataclass(slots=True)
class _Segment:
    start: int
    end: int
    kind: str


def buffer_has_wrapper(buf: Buffer) -> bool:
    """Whether a pickle buffer names joblib's array wrapper (searched in place, no copy)."""
    view = memoryview(buf)
    pos = find(view, _WRAPPER_STEM)
    while pos >= 0:
        before = bytes(view[max(0, pos - _LONGEST_PREFIX) : pos])
        if before.endswith(_WRAPPER_PREFIXES):
            return True
        pos = find(view, _WRAPPER_STEM, pos + 1)
    return False


def split_dump(view: memoryview) -> tuple[list[_Segment], list[tuple[str, str]]]:
    """Cut a joblib dump into pickle segments around inline arrays; also return anomalies."""
    raw_segments, anomalies = _joblibwalk.split(byte_view(view), MAX_WALK_OPCODES)
    return [_Segment(start, end, kind) for start, end, kind in raw_segments], anomalies


def read_joblib(state: ScanState, buf: Buffer, member: str) -> None:
    view = memoryview(buf)
    segments, anomalies = split_dump(view)
    for code, detail in anomalies:  # the walk's literals; tests check anomalies.BY_CODE has them
        state.anomaly(A.BY_CODE[code], member, detail)
    # The main pickle is one stream interrupted by raw array bytes: tokenize it as one buffer with
    # the arrays cut out, so stack and memo carry across arrays exactly as in the loader.
    # Offsets after the first array are then offsets in the joined stream (noted below).
    main = [seg for seg in segments if seg.kind == KIND and seg.end > seg.start]
    if len(main) > 1:
        joined = b"".join(view[seg.start : seg.end] for seg in main)
        state.add_stream(member, main[0].start, joined, KIND)
        state.container.notes["joblib_joined_segments"] = str(len(main))
    elif main:
        state.add_stream(member, main[0].start, view[main[0].start : main[0].end], KIND)
    for seg in segments:
        if seg.kind != KIND and seg.end > seg.start:
            state.add_stream(member, seg.start, view[seg.start : seg.end], seg.kind)
    skipped = len(view) - sum(s.end - s.start for s in segments)
    state.container.notes["joblib_array_bytes"] = str(skipped)
