# cython: language_level=3
# distutils: language = c++
"""Native pickle tokenizer: one nogil pass over a buffer, returning flat facts.

The loop never raises on input. It keeps a small symbolic stack (mark | string ref | global |
call result | other) and memo so STACK_GLOBAL operands are resolved the way the loader resolves
them, not by searching backwards. Strings are kept as (offset, length, encoding) into the caller's
buffer; `fastscan/tokenizer.py` decodes them and builds the typed records.
"""

cimport cython
from cpython.ref cimport PyObject, Py_DECREF
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memset
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

include "_opcodes.pxi"
include "_records.pxi"
include "_newline.pxi"

include "_tok_types.pxi"
include "_operand_text.pxi"
include "_tok_bytes.pxi"
include "_tok_walker.pxi"


# The argument layout each hot case of Walker.walk_one hard-codes, as (arg kind, size). The
# generic path reads the generated table; this is checked against it when the module loads.
HOT_LAYOUT = {
    **{op: (ARG_NONE, 0) for op in (
        OP_MEMOIZE, OP_MARK, OP_NONE, OP_NEWTRUE, OP_NEWFALSE, OP_EMPTY_LIST, OP_EMPTY_DICT,
        OP_EMPTY_TUPLE, OP_EMPTY_SET, OP_APPENDS, OP_ADDITEMS, OP_SETITEMS, OP_SETITEM, OP_APPEND,
        OP_TUPLE1, OP_TUPLE2, OP_TUPLE3, OP_TUPLE, OP_LIST, OP_DICT, OP_FROZENSET, OP_POP,
        OP_STOP)},
    OP_BINGET: (ARG_FIXED, 1),
    OP_BINPUT: (ARG_FIXED, 1),
    OP_BININT1: (ARG_FIXED, 1),
    OP_BININT2: (ARG_FIXED, 2),
    OP_BININT: (ARG_FIXED, 4),
    OP_BINFLOAT: (ARG_FIXED, 8),
    OP_SHORT_BINUNICODE: (ARG_LEN1, 0),
    OP_SHORT_BINBYTES: (ARG_LEN1, 0),
    **{op: (ARG_LINE, 0) for op in (OP_INT, OP_FLOAT, OP_LONG, OP_GET, OP_PUT, OP_UNICODE)},
}


def _check_hot_layout():
    for op, layout in HOT_LAYOUT.items():
        if (ARG_KIND[op], ARG_FIXED_LEN[op]) != layout:
            raise ImportError(f"walk_one hard-codes {layout} for opcode {op}; the opcode table "
                              f"says {(ARG_KIND[op], ARG_FIXED_LEN[op])}: update its hot cases")


_check_hot_layout()


def arg_layout():
    """(arg_kind, fixed_len) per byte value, as compiled in; tested against fastscan.opcodes."""
    return tuple((ARG_KIND[i], ARG_FIXED_LEN[i]) for i in range(256))


cdef extern from "<string.h>" nogil:
    void* memmem(const void* haystack, size_t hlen, const void* needle, size_t nlen)


def find(const uint8_t[::1] data, bytes needle, int64_t start=0):
    """`bytes.find` over any buffer, in place (glibc memmem: ~2.5x Python's search)."""
    cdef int64_t n = data.shape[0]
    cdef const uint8_t* base
    cdef const void* hit
    cdef const char* pat = needle
    cdef size_t m = len(needle)
    if start < 0:
        start = 0
    if start > n:
        return -1
    if m == 0:
        return start
    if <int64_t>m > n - start:
        return -1
    base = &data[0]
    with nogil:
        hit = memmem(base + start, <size_t>(n - start), pat, m)
    return -1 if hit == NULL else <int64_t>(<const uint8_t*>hit - base)


def list_opcodes(const uint8_t[::1] data, int64_t start=0, int64_t max_ops=10_000_000,
                 bint collect=True):
    """Opcode bytes and offsets of the single pickle at `start`, up to STOP or the first error.

    Returns (codes: bytes, offsets: list[int], arg_offsets: list[int], arg_lengths: list[int],
    end: int, status: str). Uses the same argument rules as the Walker; for listings and the
    differential test against pickletools.genops. `collect=False` only finds the end and status
    (the lists stay empty), for readers that split stacked pickles.
    """
    cdef int64_t n = data.shape[0]
    cdef int64_t pos = start, op_start, arg_off, arg_len, nl, count = 0
    cdef uint8_t op, kind
    cdef uint64_t ulen
    cdef int slen
    cdef const uint8_t* p = &data[0] if n > 0 else NULL
    codes = bytearray()
    offsets = []
    arg_offsets = []
    arg_lengths = []
    status = "truncated"
    while pos < n and count < max_ops:
        op_start = pos
        op = p[pos]
        kind = ARG_KIND[op]
        if kind == ARG_INVALID:
            status = "bad_opcode"
            break
        pos += 1
        arg_off = pos
        arg_len = 0
        if kind == ARG_NONE:
            pass
        elif kind == ARG_FIXED:
            arg_len = ARG_FIXED_LEN[op]
            if arg_len > n - pos:
                pos = op_start
                break
        elif kind == ARG_LINE or kind == ARG_LINE2:
            nl = find_newline(p, n, pos)
            if kind == ARG_LINE2 and nl >= 0:
                nl = find_newline(p, n, nl + 1)
            if nl < 0:
                pos = op_start
                break
            arg_len = nl + 1 - pos
        elif kind == ARG_LEN1:
            if pos >= n:
                pos = op_start
                break
            arg_len = p[pos]
            arg_off = pos + 1
            if arg_len > n - arg_off:
                pos = op_start
                break
        else:
            slen = 8 if kind == ARG_LEN8U else 4
            if slen > n - pos:
                pos = op_start
                break
            ulen = read_le(p + pos, slen)
            arg_off = pos + slen
            if kind == ARG_LEN4S and <int32_t>(<uint32_t>ulen) < 0:
                status = "bad_opcode"
                pos = op_start
                break
            if ulen > <uint64_t>(n - arg_off):
                pos = op_start
                break
            arg_len = <int64_t>ulen
        pos = arg_off + arg_len
        if collect:
            codes.append(op)
            offsets.append(op_start)
            arg_offsets.append(arg_off)
            arg_lengths.append(arg_len)
        count += 1
        if op == OP_STOP:
            status = "ok"
            break
    if count >= max_ops and status != "ok":
        status = "budget"
    return bytes(codes), offsets, arg_offsets, arg_lengths, pos, status
