# Byte-level helpers of the walk (included by _tokenizer.pyx).


cdef inline bint is_ascii_space(uint8_t c) noexcept nogil:
    """str.isspace() (and regex \\s) for the ASCII range."""
    return (9 <= c <= 13) or (28 <= c <= 32)


cdef inline uint64_t read_le(const uint8_t* q, int n) noexcept nogil:
    """Little-endian unsigned integer of n bytes (gcc turns the fixed sizes into one load)."""
    cdef uint64_t v = 0
    cdef int i
    if n == 1:
        return q[0]
    if n == 2:
        return <uint64_t>q[0] | (<uint64_t>q[1] << 8)
    if n == 4:
        return <uint64_t>q[0] | (<uint64_t>q[1] << 8) | (<uint64_t>q[2] << 16) \
            | (<uint64_t>q[3] << 24)
    for i in range(n - 1, -1, -1):
        v = (v << 8) | q[i]
    return v


cdef inline bint is_ident_byte(uint8_t c) noexcept nogil:
    return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122) \
        or c == 95 or c == 46


cdef inline bint is_ident_span(const uint8_t* q, int64_t length) noexcept nogil:
    """A dotted identifier (a trailing \\r from a \\r\\n line is tolerated)."""
    cdef int64_t i
    if length > 0 and q[length - 1] == 13:
        length -= 1
    if length <= 0 or length > 512 or (q[0] >= 48 and q[0] <= 57):
        return False
    for i in range(length):
        if not is_ident_byte(q[i]):
            return False
    return True
