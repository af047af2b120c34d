"""A file (or member) that is pickle bytes: the whole buffer is one stream.

The tokenizer itself handles concatenated pickles, junk between them and trailing bytes, so the
raw reader does not cut anything (except at the `max_member_bytes` budget). Two pickle-based
formats are told apart here by content: a joblib dump (it names `NumpyArrayWrapper`: arrays are
inlined and must be cut out) and a legacy torch file whose magic number is computed instead of
literal (docs/threats.md A5).
"""

from __future__ import annotations

from . import anomalies as A
from . import formats as F
from . import joblib_dump, torch_legacy
from ._context import ScanState
from .base import Buffer


def read_raw(state: ScanState, buf: Buffer, member: str, kind: str = F.KIND_PICKLE) -> str:
    """Add the stream(s) of a pickle buffer; return the format recognised."""
    view = memoryview(buf)
    cap = state.limits.max_member_bytes
    if len(view) > cap:
        # Every pass below (joblib marker search, tokenizer resync over junk) is linear in the
        # size: a 50 GB sparse file would be read whole. Scan the first `cap` bytes, say so.
        state.hit_budget(
            A.BUDGET_MEMBER_BYTES, member, f"{len(view)} bytes, scanned the first {cap}"
        )
        view = view[:cap]
    if torch_legacy.looks_forged(view):
        state.anomaly(A.LEGACY_MAGIC_FORGED, member, "first pickle computes the magic number")
        state.add_stream(member, 0, view, torch_legacy.KIND)
        return F.TORCH_LEGACY
    if joblib_dump.buffer_has_wrapper(view):
        joblib_dump.read_joblib(state, view, member)
        return F.JOBLIB
    state.add_stream(member, 0, view, kind)
    return F.RAW_PICKLE
