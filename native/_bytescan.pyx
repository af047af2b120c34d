# cython: language_level=3
# distutils: language = c++
"""Byte scans outside the tokenizer's walk: an in-place `bytes.find` and the opcode listing.

The listing uses the Walker's argument rules (the generated opcode table); it serves
`tokenizer.list_opcodes`, the probes that split stacked pickles, and the differential test
against pickletools.genops. Its own extension, so the walk's module holds only the walk.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

include "_opcodes.pxi"
include "_tables.pxi"
include "_newline.pxi"
include "_tok_bytes.pxi"


# The listing's status strings, looked up once (C globals: no module-dict lookup per call).
cdef str S_OK = STATUS_NAMES[R_OK]
cdef str S_TRUNCATED = STATUS_NAMES[R_TRUNCATED]
cdef str S_BAD_OPCODE = STATUS_NAMES[R_BAD_OPCODE]
cdef str S_BUDGET = STATUS_NAMES[R_BUDGET]


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
    status = S_TRUNCATED
    while pos < n and count < max_ops:
        op_start = pos
        op = p[pos]
        kind = ARG_KIND[op]
        if kind == ARG_INVALID:
            status = S_BAD_OPCODE
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
                status = S_BAD_OPCODE
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
            status = S_OK
            break
    if count >= max_ops and status != S_OK:
        status = S_BUDGET
    return bytes(codes), offsets, arg_offsets, arg_lengths, pos, status
