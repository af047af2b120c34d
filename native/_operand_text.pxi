# Text operands as the loader reads them (included by _tokenizer.pyx): protocol-0 numbers
# checked the way _pickle parses them, and the bytes a loader makes of a string operand, walked
# for an early import (nested pickles carried by strings, docs/threats.md J1/H1).

cdef inline bint is_py_space(uint8_t c) noexcept nogil:
    """Py_ISSPACE: what CPython's number parsers skip (not \\x1c-\\x1f, unlike str.isspace)."""
    return c == 32 or (9 <= c <= 13)


cdef extern from *:
    """
    /* Whether a string operand may carry an importing pickle: an importing opcode stream holds
       a newline (GLOBAL, INST) or a byte >= 0x80 (STACK_GLOBAL, EXT, and any latin-1 char in
       UTF-8); escaped text may spell them with a backslash. A word at a time. */
    static inline int fastscan_may_carry(const uint8_t* q, int64_t n, int escaped) {
        const uint64_t ones = 0x0101010101010101ULL, hi = 0x8080808080808080ULL;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t w, x;
            memcpy(&w, q + i, 8);
            if (w & hi) return 1;
            x = w ^ (0x0aULL * ones);
            if ((x - ones) & ~x & hi) return 1;
            if (escaped) {
                x = w ^ (0x5cULL * ones);
                if ((x - ones) & ~x & hi) return 1;
            }
        }
        for (; i < n; i++) {
            if (q[i] >= 0x80 || q[i] == 10 || (escaped && q[i] == 92)) return 1;
        }
        return 0;
    }
    /* All of q[0:n] are ASCII digits; a word at a time (a carry or borrow across bytes only
       ever reports "no", which sends the text to the exact check). */
    static inline int fastscan_all_digits(const uint8_t* q, int64_t n) {
        const uint64_t hi = 0x8080808080808080ULL;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, q + i, 8);
            if (((w + 0x4646464646464646ULL) | (w - 0x3030303030303030ULL)) & hi) return 0;
        }
        for (; i < n; i++) {
            if (q[i] < '0' || q[i] > '9') return 0;
        }
        return 1;
    }
    /* Whether byte c occurs in q[0:n], a word at a time (short texts: no call to memchr). */
    static inline int fastscan_has_byte(const uint8_t* q, int64_t n, uint8_t c) {
        const uint64_t ones = 0x0101010101010101ULL, hi = 0x8080808080808080ULL;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t w, x;
            memcpy(&w, q + i, 8);
            x = w ^ (c * ones);
            if ((x - ones) & ~x & hi) return 1;
        }
        for (; i < n; i++) {
            if (q[i] == c) return 1;
        }
        return 0;
    }
    static inline int fastscan_hex(uint8_t c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    /* The bytes a loader makes of a text operand, up to cap of them: STRING's escapes
       (codecs.escape_decode), UTF-8 or raw-unicode-escape text encoded to latin-1
       (_codecs.encode(s, "latin1")). Stops early where the exact decoder would fail or the
       text holds a character latin-1 cannot encode. enc: 1 bytes, 2 quoted, 3 raw unicode,
       0 UTF-8 (the ENC_* values). */
    static int64_t fastscan_carried_bytes(const uint8_t* q, int64_t n, int enc, uint8_t* out,
                                          int64_t cap) {
        int64_t i = 0, o = 0;
        while (i < n && o < cap) {
            uint8_t c = q[i];
            if (enc == 0) {
                if (c < 0x80) { out[o++] = c; i++; continue; }
                if ((c == 0xC2 || c == 0xC3) && i + 1 < n && (q[i + 1] & 0xC0) == 0x80) {
                    out[o++] = (uint8_t)(((c & 0x1F) << 6) | (q[i + 1] & 0x3F));
                    i += 2;
                    continue;
                }
                break;
            }
            if (c != 92 || enc == 1) { out[o++] = c; i++; continue; }
            if (enc == 3) {
                /* a run of backslashes is literal; an odd run before u/U starts an escape */
                int64_t run = 0, k, digits;
                uint32_t v = 0;
                while (i < n && q[i] == 92) { run++; i++; }
                if (!(run & 1) || i >= n || (q[i] != 'u' && q[i] != 'U')) {
                    for (k = 0; k < run && o < cap; k++) out[o++] = 92;
                    continue;
                }
                for (k = 0; k < run - 1 && o < cap; k++) out[o++] = 92;
                digits = q[i] == 'u' ? 4 : 8;
                if (i + 1 + digits > n) return o;
                for (k = 0; k < digits; k++) {
                    int h = fastscan_hex(q[i + 1 + k]);
                    if (h < 0) return o;
                    v = (v << 4) | (uint32_t)h;
                }
                if (v > 0xFF || o >= cap) return o;
                out[o++] = (uint8_t)v;
                i += 1 + digits;
                continue;
            }
            /* enc == 2: escape_decode */
            if (i + 1 >= n) return o;  /* a trailing backslash: the loader raises */
            c = q[i + 1];
            i += 2;
            switch (c) {
            case 10: break;
            case 92: out[o++] = 92; break;
            case 39: out[o++] = 39; break;
            case 34: out[o++] = 34; break;
            case 'b': out[o++] = 8; break;
            case 'f': out[o++] = 12; break;
            case 't': out[o++] = 9; break;
            case 'n': out[o++] = 10; break;
            case 'r': out[o++] = 13; break;
            case 'v': out[o++] = 11; break;
            case 'a': out[o++] = 7; break;
            case 'x': {
                int h1 = i < n ? fastscan_hex(q[i]) : -1;
                int h2 = i + 1 < n ? fastscan_hex(q[i + 1]) : -1;
                if (h1 < 0 || h2 < 0) return o;
                out[o++] = (uint8_t)(h1 * 16 + h2);
                i += 2;
                break;
            }
            default:
                if (c >= '0' && c <= '7') {
                    int v = c - '0';
                    if (i < n && q[i] >= '0' && q[i] <= '7') {
                        v = v * 8 + (q[i++] - '0');
                        if (i < n && q[i] >= '0' && q[i] <= '7') v = v * 8 + (q[i++] - '0');
                    }
                    out[o++] = (uint8_t)v;
                } else {
                    out[o++] = 92;
                    if (o < cap) out[o++] = c;
                }
            }
        }
        return o;
    }
    """
    bint fastscan_may_carry(const uint8_t* q, int64_t n, int escaped) noexcept nogil
    bint fastscan_all_digits(const uint8_t* q, int64_t n) noexcept nogil
    bint fastscan_has_byte(const uint8_t* q, int64_t n, uint8_t c) noexcept nogil
    int64_t fastscan_carried_bytes(const uint8_t* q, int64_t n, int enc, uint8_t* out,
                                   int64_t cap) noexcept nogil


cdef int imports_early(const uint8_t* q, int64_t n) noexcept nogil:
    """Whether `q` starts like a pickle that imports: valid opcodes up to a GLOBAL/INST with
    identifier lines or a STACK_GLOBAL right after two string pushes or memo reads, within
    NEST_PROBE_OPS opcodes (a pre-filter: `tokenizer.starts_like_pickle` judges what it lets
    through, and never counts an EXT code, so neither does this). 1 yes, 0 no, -1 the bytes ran
    out first."""
    cdef int64_t pos = 0, nl, nl2, length
    cdef int _op_count, strs = 0
    cdef uint8_t op, kind
    for _op_count in range(NEST_PROBE_OPS):
        if pos >= n:
            return -1
        op = q[pos]
        kind = ARG_KIND[op]
        if kind == ARG_INVALID or op == OP_STOP:
            return 0
        if op == OP_STACK_GLOBAL and strs >= 2:
            return 1
        if op == OP_SHORT_BINUNICODE or op == OP_BINUNICODE or op == OP_BINUNICODE8 \
                or op == OP_UNICODE or op == OP_STRING or op == OP_BINSTRING \
                or op == OP_SHORT_BINSTRING or op == OP_BINGET or op == OP_LONG_BINGET \
                or op == OP_GET:
            strs += 1
        elif not (op == OP_MEMOIZE or op == OP_BINPUT or op == OP_LONG_BINPUT or op == OP_PUT
                  or op == OP_FRAME or op == OP_PROTO):
            strs = 0
        pos += 1
        if op == OP_GLOBAL or op == OP_INST:
            nl = find_newline(q, n, pos)
            nl2 = find_newline(q, n, nl + 1) if nl >= 0 else -1
            if nl2 < 0:
                return -1
            return is_ident_span(q + pos, nl - pos) and is_ident_span(q + nl + 1, nl2 - nl - 1)
        if kind == ARG_FIXED:
            pos += ARG_FIXED_LEN[op]
        elif kind == ARG_LINE or kind == ARG_LINE2:
            nl = find_newline(q, n, pos)
            if kind == ARG_LINE2 and nl >= 0:
                nl = find_newline(q, n, nl + 1)
            if nl < 0:
                return -1
            pos = nl + 1
        elif kind == ARG_LEN1:
            if pos >= n:
                return -1
            pos += 1 + q[pos]
        elif kind != ARG_NONE:
            length = 8 if kind == ARG_LEN8U else 4
            if length > n - pos or read_le(q + pos, <int>length) > <uint64_t>(n - pos - length):
                return -1
            pos += length + <int64_t>read_le(q + pos, <int>length)
    return 0


cdef inline bint plain_number(uint8_t op, const uint8_t* q, int64_t n) noexcept nogil:
    """Number text every loader accepts, a subset checked in the walk: -?digits without a
    leading zero, at most 18 of them (INT also 00/01, its bools; LONG with its trailing L);
    FLOAT -?digits.digits in at most 30 characters. `loader_rejects_number` judges the rest."""
    cdef int64_t i = 0
    cdef const uint8_t* dot
    if op == OP_INT and n == 2 and q[0] == 48 and (q[1] == 48 or q[1] == 49):
        return True
    if op == OP_LONG and n > 0 and q[n - 1] == 76:
        n -= 1
    if n > 0 and q[0] == 45:
        i = 1
    if n - i < 1 or n > 30:
        return False
    if op == OP_FLOAT:
        dot = <const uint8_t*>memchr(q + i, 46, <size_t>(n - i))
        return dot != NULL and dot > q + i and dot < q + n - 1 \
            and fastscan_all_digits(q + i, dot - (q + i)) \
            and fastscan_all_digits(dot + 1, q + n - dot - 1)
    return n - i <= 18 and (q[i] != 48 or n - i == 1) and fastscan_all_digits(q + i, n - i)


cdef extern from *:
    """
    #include <errno.h>
    #include <stdlib.h>
    /* load_int's first try: strtol(base 0) without overflow, up to the newline or a NUL. */
    static int fastscan_strtol_whole(const char* s) {
        char* end;
        errno = 0;
        (void)strtol(s, &end, 0);
        return errno == 0 && (*end == '\\n' || *end == '\\0');
    }
    """
    int fastscan_strtol_whole(const char* s)


def loader_rejects_number(int op, bytes text):
    """Whether _pickle raises on this INT, LONG or FLOAT operand (`text` without its newline).

    The checks of its load_int, load_long and load_float, with the functions they call: INT is
    strtol(base 0) up to the newline or a NUL, else PyLong_FromString(base 0) (so 010 is 8 and
    1_0 is 10); LONG drops a trailing L, then PyLong_FromString(base 0); FLOAT is
    PyOS_string_to_double up to the newline or a NUL, raising on overflow (no whitespace or
    underscores, unlike float()).
    """
    cdef bytes line
    cdef const char* s
    cdef char* end = NULL
    cdef PyObject* obj
    cdef double d
    if not text:
        return True  # an empty line: "pickle data was truncated"
    if op == OP_LONG and text[len(text) - 1] == 76:
        line = text[:len(text) - 1] + b"\0\n"
    else:
        line = text + b"\n"
    s = line  # NUL-terminated like the loader's line copy
    if op == OP_INT and fastscan_strtol_whole(s):
        return False
    if op == OP_INT or op == OP_LONG:
        obj = PyLong_FromString(s, NULL, 0)
        if obj == NULL:
            PyErr_Clear()
            return True
        value = <object>obj
        Py_DECREF(value)  # <object> took a reference of its own
        return False
    if op == OP_FLOAT:
        d = PyOS_string_to_double(s, &end, PyExc_OverflowError)
        if d == -1.0 and PyErr_Occurred() != NULL:
            PyErr_Clear()
            return True
        return not (end[0] == 10 or end[0] == 0)
    raise ValueError(f"not a number opcode: {op}")
