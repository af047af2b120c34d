"""numpy `.npy`: a short literal header, then either raw array bytes or (object dtype) a pickle.

`np.load(allow_pickle=True)` unpickles everything after the header when the dtype holds objects
(docs/threats.md A10). Plain arrays are data: status complete, no streams. The header is parsed with
`ast.literal_eval` (literals only, never code) and the itemsize computed without numpy.
"""

from __future__ import annotations

import ast
import math
import re
import struct
from typing import Any

from . import anomalies as A
from . import formats as F
from ._context import ScanState
from ._probe import prefix_is_pickle
from .base import Buffer

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 20  # numpy itself refuses headers above ~10 KiB unless told otherwise
_CODE = re.compile(r"^[<>|=]?([a-zA-Z?])(\d*)")
_FIXED = {
    "b": 1,
    "B": 1,
    "?": 1,
    "M": 8,
    "m": 8,
    "O": 8,
    "e": 2,
    "h": 2,
    "H": 2,
    "i": 4,
    "I": 4,
    "l": 8,
    "L": 8,
    "q": 8,
    "Q": 8,
    "f": 4,
    "d": 8,
    "g": 16,
    "F": 8,
    "D": 16,
}


class NpyError(ValueError):
    pass


# The header exactly as numpy writes it for a plain dtype (ast.literal_eval costs ~40 us):
# anything else, structured dtypes included, goes through literal_eval.
_DIM = r"(?:0|[1-9][0-9]*)"
_NUMPY_HEADER = re.compile(
    r"\{'descr': '([<>|=]?[a-zA-Z][0-9]*)', 'fortran_order': (True|False), "
    rf"'shape': \(({_DIM},|{_DIM}(?:, {_DIM})+,?|)\), \}} *\n?\Z"
)


def _numpy_written(text: str) -> dict[str, Any] | None:
    """`ast.literal_eval(text)` for a header in numpy's own layout, else None."""
    match = _NUMPY_HEADER.match(text)
    if match is None:
        return None
    descr, fortran, dims = match.groups()
    shape = tuple(int(d) for d in dims.split(",") if d.strip())
    return {"descr": descr, "fortran_order": fortran == "True", "shape": shape}


def parse_header(buf: Buffer) -> tuple[dict[str, Any], int]:
    """(header dict, offset of the data) of an .npy buffer; raises NpyError."""
    head = bytes(memoryview(buf)[:12])
    if not head.startswith(MAGIC) or len(head) < 10:
        raise NpyError("no .npy magic")
    major = head[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", head, 8)
        start = 10
    elif major in (2, 3):
        (hlen,) = struct.unpack_from("<I", head, 8)
        start = 12
    else:
        raise NpyError(f"unknown .npy version {major}")
    if hlen > MAX_HEADER:
        raise NpyError(f"header of {hlen} bytes")
    raw = bytes(memoryview(buf)[start : start + hlen])
    text = raw.decode("utf-8" if major == 3 else "latin-1")
    header = _numpy_written(text)
    if header is None:
        try:
            header = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise NpyError(f"header is not a literal: {exc}") from None
    if not isinstance(header, dict) or "descr" not in header:
        raise NpyError("header has no descr")
    return header, start + hlen


def descr_info(descr: Any, depth: int = 0) -> tuple[int, bool]:
    """(itemsize, has object) of an .npy `descr` (type string or list of fields)."""
    if depth > 32:
        raise NpyError("descr nested too deep")
    if isinstance(descr, str):
        match = _CODE.match(descr)
        if not match:
            raise NpyError(f"descr {descr!r}")
        letter, digits = match.groups()
        size = int(digits) if digits else _FIXED.get(letter, -1)
        if letter == "U" and digits:
            size = 4 * int(digits)
        if size < 0:
            raise NpyError(f"descr {descr!r}")
        return size, letter == "O"
    if isinstance(descr, list):
        total, has_object = 0, False
        for field in descr:
            if not isinstance(field, tuple) or len(field) < 2:
                raise NpyError("bad field")
            size, obj = descr_info(field[1], depth + 1)
            if len(field) > 2 and isinstance(field[2], tuple):
                size *= math.prod(int(d) for d in field[2])
            total += size
            has_object = has_object or obj
        return total, has_object
    raise NpyError(f"descr {descr!r}")


def read_npy(state: ScanState, buf: Buffer, member: str) -> None:
    view = memoryview(buf)
    try:
        header, data_start = parse_header(view)
        itemsize, has_object = descr_info(header["descr"])
    except NpyError as exc:
        # np.load would refuse it too; still hand any pickle-looking tail to the tokenizer.
        state.anomaly(A.NPY_BAD_HEADER, member, str(exc))
        state.partial(f"unreadable .npy header in {member or 'file'}: {exc}")
        return
    if has_object:
        state.add_stream(member, data_start, view[data_start:], F.KIND_NPY_OBJECT)
        return
    shape = header.get("shape", ())
    try:
        count = math.prod(int(d) for d in shape) if isinstance(shape, tuple) else -1
    except (TypeError, ValueError):
        count = -1
    expected = data_start + count * itemsize if count >= 0 else len(view)
    if expected < len(view):
        tail = view[expected:]
        state.anomaly(A.TRAILING_DATA, member, f"{len(tail)} bytes after the array")
        if prefix_is_pickle(tail):
            state.add_stream(member, expected, tail, F.KIND_PICKLE)
    elif expected > len(view):
        state.anomaly(A.NPY_TRUNCATED, member, f"{expected - len(view)} bytes missing")
    state.container.bytes_read += data_start
