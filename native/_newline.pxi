# Shared by the tokenizer's text operands (_operand_text.pxi), the opcode listing (_bytescan.pyx)
# and the joblib walk (_joblibwalk.pyx): where a protocol-0 text operand ends.

from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memchr


cdef inline int64_t find_newline(const uint8_t* p, int64_t n, int64_t pos) noexcept nogil:
    """Offset of the first b"\\n" at or after `pos` in p[:n], or -1."""
    cdef const void* hit
    if pos >= n:
        return -1
    hit = memchr(p + pos, 10, <size_t>(n - pos))
    if hit == NULL:
        return -1
    return <const uint8_t*>hit - p
