# Enums, records and tables of the tokenizer (included by _tokenizer.pyx).

# Symbolic stack item kinds.
cdef enum:
    K_OTHER = 0
    K_MARK = 1
    K_STR = 2
    K_GLOBAL = 3
    K_CALL = 4
    # a tuple: a = kind of its first item | AK_* mask of its items << 8,
    # b = the first item's global/call index (0 when it is neither)
    K_TUPLE = 5
    K_ABSENT = 7  # an empty dense memo slot (fits the 3 kind bits of MemoEntry)

# What an opaque K_OTHER value is, kept in its Item.b (call shapes: facts.CallSite.arg_kinds).
cdef enum:
    V_OPAQUE = 0  # unknown: PERSID, a bad memo GET, a stack underflow
    V_NUMBER = 1
    V_NONE = 2  # None, True, False
    V_CONTAINER = 3  # list, dict, set, frozenset
    V_BYTES = 4  # BINBYTES family, BYTEARRAY8, out-of-band buffers

# Argument kinds of a call, as a bit mask (facts.ARG_* repeats these values).
cdef enum:
    AK_STR = 1
    AK_BYTES = 2
    AK_NUMBER = 4
    AK_NONE = 8
    AK_CONTAINER = 16
    AK_GLOBAL = 32
    AK_CALL = 64
    AK_OPAQUE = 128  # an argument (or an argument tuple) the walk cannot see into

# What happened to a call's result (facts.USE_* repeats these values).
cdef enum:
    USE_BUILT = 1  # BUILD set its state
    USE_FILLED = 2  # SETITEM(S), APPEND(S) or ADDITEMS stored items into it
    USE_CALLED = 4  # a later call's callable
    USE_ARGUMENT = 8  # a later REDUCE/NEWOBJ's first argument

cdef uint8_t VALUE_OF[256]  # opcode -> V_* of the constant it pushes (see push_plain)
memset(VALUE_OF, V_OPAQUE, sizeof(VALUE_OF))
for _op in (OP_INT, OP_BININT, OP_BININT1, OP_BININT2, OP_LONG, OP_LONG1, OP_LONG4, OP_FLOAT,
            OP_BINFLOAT):
    VALUE_OF[_op] = V_NUMBER
for _op in (OP_NONE, OP_NEWTRUE, OP_NEWFALSE):
    VALUE_OF[_op] = V_NONE
for _op in (OP_EMPTY_LIST, OP_EMPTY_DICT, OP_EMPTY_SET):
    VALUE_OF[_op] = V_CONTAINER
for _op in (OP_BINBYTES, OP_SHORT_BINBYTES, OP_BINBYTES8, OP_BYTEARRAY8, OP_NEXT_BUFFER):
    VALUE_OF[_op] = V_BYTES

# Item kind -> AK_* bit (K_OTHER goes by its V_* class through VALUE_BIT); a K_STR is a str,
# BINSTRING too (a Python 2 str loads as str).
cdef uint8_t KIND_BIT[8]
cdef uint8_t VALUE_BIT[8]
memset(KIND_BIT, AK_OPAQUE, sizeof(KIND_BIT))
memset(VALUE_BIT, AK_OPAQUE, sizeof(VALUE_BIT))
KIND_BIT[K_STR] = AK_STR
KIND_BIT[K_GLOBAL] = AK_GLOBAL
KIND_BIT[K_CALL] = AK_CALL
KIND_BIT[K_TUPLE] = AK_CONTAINER
VALUE_BIT[V_NUMBER] = AK_NUMBER
VALUE_BIT[V_NONE] = AK_NONE
VALUE_BIT[V_CONTAINER] = AK_CONTAINER
VALUE_BIT[V_BYTES] = AK_BYTES

# How Python must decode a string reference.
cdef enum:
    ENC_UTF8 = 0  # BINUNICODE family and GLOBAL/INST lines
    ENC_BYTES = 1  # BINSTRING family
    ENC_QUOTED = 2  # STRING: a quoted, escaped repr
    ENC_RAW_UNICODE = 3  # UNICODE: raw-unicode-escape

ENCODING_NAMES = ("utf8", "bytes", "quoted", "raw_unicode")

cdef enum:
    # Anomalies that can repeat thousands of times are recorded at most this often per pickle.
    MAX_SAME_ANOMALY = 16
    # protocol-0 number/string operands left for `loader_rejects` to check exactly, per buffer
    MAX_TEXT_CHECKS = 256
    # opcodes a nested candidate is walked for its first import, and the decoded bytes that walk
    # may look at (a carrier's text is transcoded to the bytes a loader would get)
    NEST_PROBE_OPS = 64
    NEST_DECODE_MAX = 1 << 20

# Why a region was queued for a separate parse (Span.enc of `nested`; see tokenizer._nested).
cdef enum:
    NEST_RAW = 0  # a bytes operand that starts like a pickle
    NEST_FRAME = 1  # the bytes after a straddled frame end
    NEST_TEXT = 2  # + ENC_*: an operand whose loader-made bytes import early (probe them)


cdef struct Item:
    uint8_t kind
    uint8_t enc
    uint8_t from_memo
    int64_t a  # K_STR: offset; K_GLOBAL: global index; K_CALL: call index
    int64_t b  # K_STR: length


# A dense memo slot, packed to 16 bytes: the memo is the largest structure the walk writes
# (one slot per MEMOIZE), so its size is page faults and cache misses. A string length always
# fits the low 56 bits (it is bounded by the buffer length).
cdef struct MemoEntry:
    int64_t a
    uint64_t packed  # Item.b | kind << 56 | enc << 59

cdef enum:
    MEMO_LEN_BITS = 56

cdef extern from *:
    # frame_end while no FRAME is open (a compile-time constant, unlike a module global)
    const int64_t NO_FRAME "INT64_MAX"

cdef inline void memo_pack(MemoEntry* m, const Item* it) noexcept nogil:
    m.a = it.a
    m.packed = (<uint64_t>it.b & ((<uint64_t>1 << MEMO_LEN_BITS) - 1)) \
        | (<uint64_t>(it.kind & 7) << MEMO_LEN_BITS) \
        | (<uint64_t>(it.enc & 3) << (MEMO_LEN_BITS + 3))


cdef inline uint8_t memo_kind(const MemoEntry* m) noexcept nogil:
    return <uint8_t>((m.packed >> MEMO_LEN_BITS) & 7)


cdef inline void memo_unpack(Item* it, const MemoEntry* m) noexcept nogil:
    it.a = m.a
    it.b = <int64_t>(m.packed & ((<uint64_t>1 << MEMO_LEN_BITS) - 1))
    it.kind = memo_kind(m)
    it.enc = <uint8_t>((m.packed >> (MEMO_LEN_BITS + 3)) & 3)
    it.from_memo = 1


cdef struct ArgSpan:
    int64_t off
    int64_t length
    int64_t end  # offset after the argument
    int status  # R_OK when the argument is whole


# Result of Walker.generic_op: the offset after the opcode and G_NEXT, or the R_* code that ends
# the pickle (R_OK after STOP; R_TRUNCATED / R_BAD_OPCODE when the argument is cut or invalid).
cdef struct OpResult:
    int64_t pos
    int status

cdef enum:
    G_NEXT = -1


cdef struct GlobalRec:
    int64_t offset
    int64_t mod_off
    int64_t mod_len
    int64_t name_off
    int64_t name_len
    int64_t ext_code
    int32_t pickle_index
    uint8_t opcode
    uint8_t resolved
    uint8_t via_memo
    uint8_t mod_enc
    uint8_t name_enc


cdef struct CallRec:
    int64_t offset
    int64_t callable_index
    int64_t callable_call_index  # the call whose result is being called, or -1
    int64_t first_arg_index  # the first argument's global/call index, or -1
    uint8_t first_arg_kind  # K_GLOBAL, K_CALL or K_OTHER
    int32_t pickle_index
    uint8_t opcode
    uint8_t discarded
    uint8_t callable_is_call
    uint8_t arg_kinds  # AK_* mask
    uint8_t result_use  # USE_* mask


cdef struct Span:
    int64_t offset
    int64_t length
    uint8_t enc


cdef struct TextRec:
    int64_t op_start
    int64_t off
    int64_t length
    int32_t pickle_index
    uint8_t op


cdef struct AnomRec:
    int64_t offset
    int64_t detail
    int32_t pickle_index
    uint8_t code


cdef extern from *:
    """
    #include <string.h>
    /* First b'\\n' at or after pos, or -1. Protocol-0 lines are short, so scan a word at a time
       inline (a call to memchr costs more than the line) and hand long lines to memchr. */
    static inline int64_t fastscan_find_nl(const uint8_t* p, int64_t pos, int64_t n) {
        const int64_t word_limit = pos + 64;
        while (pos + 8 <= n && pos < word_limit) {
            uint64_t w, t;
            memcpy(&w, p + pos, 8);
            w ^= 0x0a0a0a0a0a0a0a0aULL;
            t = (w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL;
            if (t) return pos + (__builtin_ctzll(t) >> 3);
            pos += 8;
        }
        if (pos >= n) return -1;
        const void* hit = memchr(p + pos, 10, (size_t)(n - pos));
        return hit ? (const uint8_t*)hit - p : -1;
    }
    """
    int64_t fastscan_find_nl(const uint8_t* p, int64_t pos, int64_t n) noexcept nogil


cdef extern from "Python.h":
    # Declared raw (NULL on error) so a string that does not decode costs a PyErr_Clear, not a
    # raised exception; the caller then asks the Python fallback for the exact loader result.
    PyObject* PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    PyObject* PyUnicode_DecodeRawUnicodeEscape(const char* s, Py_ssize_t size, const char* errors)
    void PyErr_Clear()
    PyObject* PyErr_Occurred()
    PyObject* PyLong_FromString(const char* s, char** pend, int base)
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception)
    PyObject* PyExc_OverflowError
