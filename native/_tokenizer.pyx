# cython: language_level=3
# distutils: language = c++
"""Native pickle tokenizer: one nogil pass over a buffer, returning flat facts.

The loop never raises on input. It keeps a small symbolic stack (mark | string ref | global |
call result | other) and memo so STACK_GLOBAL operands are resolved the way the loader resolves
them, not by searching backwards. Strings are kept as (offset, length, encoding) into the caller's
buffer; `fastscan/tokenizer.py` decodes them and builds the typed records.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memchr, memset
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

include "_opcodes.pxi"

# Symbolic stack item kinds.
cdef enum:
    K_OTHER = 0
    K_MARK = 1
    K_STR = 2
    K_GLOBAL = 3
    K_CALL = 4
    K_ABSENT = 255  # an empty dense memo slot

# How Python must decode a string reference.
cdef enum:
    ENC_UTF8 = 0  # BINUNICODE family and GLOBAL/INST lines
    ENC_BYTES = 1  # BINSTRING family
    ENC_QUOTED = 2  # STRING: a quoted, escaped repr
    ENC_RAW_UNICODE = 3  # UNICODE: raw-unicode-escape

# Result of walking one pickle.
cdef enum:
    R_STOP = 0
    R_TRUNCATED = 1
    R_BAD_OPCODE = 2
    R_BUDGET = 3

# Anomaly codes, in the order of ANOMALY_NAMES.
cdef enum:
    A_STACK_UNDERFLOW = 0
    A_MARK_MISSING = 1
    A_BAD_MEMO_GET = 2
    A_MEMO_TYPE_CONFUSION = 3
    A_MEMO_BUDGET = 4
    A_MISPLACED_PROTO = 5
    A_DUPLICATE_PROTO = 6
    A_FRAME_VIOLATION = 7
    A_FRAME_IN_OLD_PROTOCOL = 8
    A_FRAME_OVERRUN = 9
    A_NEW_FRAME_INSIDE_FRAME = 10
    A_EXT_CODE = 11
    A_STACK_GLOBAL_NON_STRING = 12
    A_BUILD_ON_GLOBAL = 13
    A_SETITEM_ON_GLOBAL = 14
    A_TRAILING_JUNK = 15
    A_JUNK_BETWEEN = 16
    A_STOP_WITH_STACK = 17
    A_NEGATIVE_LENGTH = 18
    A_BAD_MEMO_KEY = 19
    A_RESYNC_BUDGET = 20

ANOMALY_NAMES = (
    "stack_underflow", "mark_missing", "bad_memo_get", "memo_type_confusion", "memo_budget",
    "misplaced_proto", "duplicate_proto", "frame_violation", "frame_in_old_protocol",
    "frame_overrun", "new_frame_inside_frame", "ext_code", "stack_global_non_string",
    "build_on_global", "setitem_on_global", "trailing_junk", "junk_between", "stop_with_stack",
    "negative_length", "bad_memo_key", "resync_budget",
)
STATUS_NAMES = ("ok", "truncated", "bad_opcode", "budget")
ENCODING_NAMES = ("utf8", "bytes", "quoted", "raw_unicode")

cdef enum:
    # Anomalies that can repeat thousands of times are recorded at most this often per pickle.
    MAX_SAME_ANOMALY = 16
    N_ANOMALY_CODES = 21


cdef struct Item:
    uint8_t kind
    uint8_t enc
    uint8_t from_memo
    int64_t a  # K_STR: offset; K_GLOBAL: global index; K_CALL: call index
    int64_t b  # K_STR: length


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
    int32_t pickle_index
    uint8_t opcode
    uint8_t discarded
    uint8_t callable_is_call


cdef struct Span:
    int64_t offset
    int64_t length
    uint8_t enc


cdef struct AnomRec:
    int64_t offset
    int64_t detail
    int32_t pickle_index
    uint8_t code


cdef inline uint64_t read_le(const uint8_t* q, int n) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(n - 1, -1, -1):
        v = (v << 8) | q[i]
    return v


cdef inline bint is_ident_byte(uint8_t c) noexcept nogil:
    return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122) \
        or c == 95 or c == 46


cdef class Walker:
    """Walks every pickle in one buffer; `run()` then `result()`."""

    cdef const uint8_t[::1] view
    cdef const uint8_t* p
    cdef int64_t n
    # budgets
    cdef int64_t max_opcodes
    cdef int64_t max_stack
    cdef int64_t max_memo
    cdef int64_t max_globals
    cdef int64_t max_calls
    cdef int64_t max_strings
    cdef int64_t max_string_len
    cdef int64_t max_nested
    cdef int64_t max_resync_ops
    cdef int64_t max_pickles
    # per-pickle state
    cdef Item* stk  # the symbolic stack: a growable C array, written in place
    cdef int64_t sp
    cdef int64_t cap
    # memo: dense keys (the usual 0, 1, 2, ...) live in a vector, sparse ones in a hash map
    cdef vector[Item] memo_dense
    cdef unordered_map[int64_t, Item] memo_sparse
    cdef int64_t memo_size
    cdef uint64_t pcounts[256]
    cdef int64_t cur_ops
    cdef int32_t cur_proto
    cdef int32_t cur_pickle
    cdef int32_t anom_seen[N_ANOMALY_CODES]
    cdef bint budget_hit
    # outputs
    cdef vector[GlobalRec] globals_
    cdef vector[CallRec] calls
    cdef vector[Span] strings
    cdef vector[Span] nested
    cdef vector[AnomRec] anomalies
    cdef vector[int64_t] pickle_offsets
    cdef vector[int32_t] protocols
    cdef uint64_t counts[256]
    cdef public int64_t n_ops
    cdef public int64_t n_strings
    cdef public int64_t long_strings
    cdef public int64_t memo_puts
    cdef public int64_t memo_gets
    cdef public int64_t max_depth
    cdef public int64_t junk_bytes
    cdef public int64_t payload_bytes
    cdef public int64_t resync_ops
    cdef public int status
    cdef public int64_t error_offset
    cdef public str budget

    def __init__(self, const uint8_t[::1] data, int64_t max_opcodes=200_000_000,
                 int64_t max_stack=1_000_000, int64_t max_memo=2_000_000,
                 int64_t max_globals=100_000, int64_t max_calls=1_000_000,
                 int64_t max_strings=4096, int64_t max_string_len=4096,
                 int64_t max_nested=64, int64_t max_resync_opcodes=5_000_000,
                 int64_t max_pickles=100_000):
        self.view = data
        self.n = data.shape[0]
        self.p = &data[0] if self.n > 0 else NULL
        self.max_opcodes = max_opcodes
        self.max_stack = max_stack
        self.max_memo = max_memo
        self.max_globals = max_globals
        self.max_calls = max_calls
        self.max_strings = max_strings
        self.max_string_len = max_string_len
        self.max_nested = max_nested
        self.max_resync_ops = max_resync_opcodes
        self.max_pickles = max_pickles
        memset(self.counts, 0, sizeof(self.counts))
        self.status = R_STOP
        self.error_offset = -1
        self.budget = ""

    def __dealloc__(self):
        free(self.stk)

    # ---- small helpers (all nogil, never fail) -------------------------------------------

    cdef void anomaly(self, uint8_t code, int64_t offset, int64_t detail) noexcept nogil:
        cdef AnomRec rec
        if self.anom_seen[code] >= MAX_SAME_ANOMALY:
            return
        self.anom_seen[code] += 1
        rec.code = code
        rec.offset = offset
        rec.detail = detail
        rec.pickle_index = self.cur_pickle
        self.anomalies.push_back(rec)

    cdef inline Item* grow(self) noexcept nogil:
        """A fresh slot on top of the stack, or NULL (budget) when the stack is full."""
        cdef Item* bigger
        cdef int64_t cap
        if self.sp >= self.cap:
            if self.cap >= self.max_stack:
                self.budget_hit = True
                return NULL
            cap = min(max(self.cap * 2, 64), self.max_stack)
            bigger = <Item*>realloc(self.stk, cap * sizeof(Item))
            if bigger == NULL:
                self.budget_hit = True
                return NULL
            self.stk = bigger
            self.cap = cap
        self.sp += 1
        if self.sp > self.max_depth:
            self.max_depth = self.sp
        return &self.stk[self.sp - 1]

    cdef inline void push(self, uint8_t kind, int64_t a, int64_t b, uint8_t enc) noexcept nogil:
        cdef Item* it = self.grow()
        if it == NULL:
            return
        it.kind = kind
        it.a = a
        it.b = b
        it.enc = enc
        it.from_memo = 0

    cdef inline Item pop(self, int64_t offset) noexcept nogil:
        cdef Item it
        if self.sp == 0:
            self.anomaly(A_STACK_UNDERFLOW, offset, 0)
            it.kind = K_OTHER
            it.a = -1
            it.b = 0
            it.enc = 0
            it.from_memo = 0
            return it
        self.sp -= 1
        return self.stk[self.sp]

    cdef int64_t mark_index(self) noexcept nogil:
        cdef int64_t i = self.sp - 1
        while i >= 0:
            if self.stk[i].kind == K_MARK:
                return i
            i -= 1
        return -1

    cdef void pop_to_mark(self, int64_t offset, bint discards) noexcept nogil:
        """Pop everything above the topmost MARK and the MARK itself."""
        cdef int64_t k = self.mark_index()
        cdef int64_t i
        if k < 0:
            self.anomaly(A_MARK_MISSING, offset, 0)
            k = 0
        if discards:
            for i in range(k, self.sp):
                if self.stk[i].kind == K_CALL and self.stk[i].a >= 0:
                    self.calls[self.stk[i].a].discarded = 1
        self.sp = k

    cdef void add_string(self, int64_t off, int64_t length, uint8_t enc) noexcept nogil:
        cdef Span s
        self.n_strings += 1
        if length > self.max_string_len:
            self.long_strings += 1
            return
        if <int64_t>self.strings.size() < self.max_strings:
            s.offset = off
            s.length = length
            s.enc = enc
            self.strings.push_back(s)

    cdef void maybe_nested(self, int64_t off, int64_t length) noexcept nogil:
        """Record a bytes operand whose first bytes look like the start of a pickle."""
        cdef const uint8_t* q
        cdef int64_t i
        if length < 4 or <int64_t>self.nested.size() >= self.max_nested:
            return
        q = self.p + off
        if (q[0] == 0x80 and q[1] <= 5) or (q[0] == 40 and (q[1] == 99 or q[1] == 105)):
            pass  # PROTO n, or MARK then GLOBAL/INST
        elif q[0] == 99:  # GLOBAL: 'c' + identifier + newline
            i = 1
            while i < length and i < 256 and is_ident_byte(q[i]):
                i += 1
            if i >= length or q[i] != 10 or i == 1:
                return
        else:
            return
        self.add_nested(off, length, 0)

    cdef void add_nested(self, int64_t off, int64_t length, uint8_t why) noexcept nogil:
        """Queue a region for a separate parse (why: 0 bytes operand, 1 frame divergence)."""
        cdef Span s
        if length <= 0 or <int64_t>self.nested.size() >= self.max_nested:
            return
        s.offset = off
        s.length = length
        s.enc = why
        self.nested.push_back(s)

    cdef int64_t add_global(self, int64_t offset, uint8_t opcode, bint resolved,
                            Item* mod, Item* name, int64_t ext_code) noexcept nogil:
        cdef GlobalRec g
        if <int64_t>self.globals_.size() >= self.max_globals:
            self.budget_hit = True
            return -1
        g.offset = offset
        g.opcode = opcode
        g.pickle_index = self.cur_pickle
        g.resolved = resolved
        g.ext_code = ext_code
        g.via_memo = 0
        g.mod_off = -1
        g.mod_len = 0
        g.name_off = -1
        g.name_len = 0
        g.mod_enc = 0
        g.name_enc = 0
        if mod != NULL and mod.kind == K_STR:
            g.mod_off = mod.a
            g.mod_len = mod.b
            g.mod_enc = mod.enc
            g.via_memo |= mod.from_memo
        if name != NULL and name.kind == K_STR:
            g.name_off = name.a
            g.name_len = name.b
            g.name_enc = name.enc
            g.via_memo |= name.from_memo
        self.globals_.push_back(g)
        return <int64_t>self.globals_.size() - 1

    cdef int64_t add_call(self, int64_t offset, uint8_t opcode, Item* fn) noexcept nogil:
        cdef CallRec c
        if <int64_t>self.calls.size() >= self.max_calls:
            self.budget_hit = True
            return -1
        c.offset = offset
        c.opcode = opcode
        c.pickle_index = self.cur_pickle
        c.callable_index = -1
        c.discarded = 0
        c.callable_is_call = 0
        if fn != NULL:
            if fn.kind == K_GLOBAL:
                c.callable_index = fn.a
            elif fn.kind == K_CALL and fn.a >= 0:
                c.callable_is_call = 1
        self.calls.push_back(c)
        return <int64_t>self.calls.size() - 1

    cdef inline Item* memo_slot(self, int64_t key) noexcept nogil:
        """The memo entry for key, or NULL when absent."""
        cdef unordered_map[int64_t, Item].iterator it
        if 0 <= key < <int64_t>self.memo_dense.size():
            if self.memo_dense[key].kind == K_ABSENT:
                return NULL
            return &self.memo_dense[key]
        it = self.memo_sparse.find(key)
        if it == self.memo_sparse.end():
            return NULL
        return &self.memo_sparse[key]

    cdef inline void memo_put(self, int64_t key, int64_t offset) noexcept nogil:
        cdef Item* slot
        cdef Item absent
        if self.sp == 0:
            self.anomaly(A_STACK_UNDERFLOW, offset, 0)
            return
        self.memo_puts += 1
        slot = self.memo_slot(key)
        if slot != NULL:
            slot[0] = self.stk[self.sp - 1]
            return
        if self.memo_size >= self.max_memo:
            self.anomaly(A_MEMO_BUDGET, offset, key)
            return
        self.memo_size += 1
        if key == <int64_t>self.memo_dense.size():  # the usual case: keys 0, 1, 2, ...
            self.memo_dense.push_back(self.stk[self.sp - 1])
        elif 0 <= key < <int64_t>self.memo_dense.size() + 4096:
            if key >= <int64_t>self.memo_dense.size():
                absent.kind = K_ABSENT
                absent.a = -1
                absent.b = 0
                absent.enc = 0
                absent.from_memo = 0
                self.memo_dense.resize(key + 1, absent)
            self.memo_dense[key] = self.stk[self.sp - 1]
        else:
            self.memo_sparse[key] = self.stk[self.sp - 1]

    cdef inline void memo_get(self, int64_t key, int64_t offset) noexcept nogil:
        cdef Item* slot = self.memo_slot(key)
        cdef Item v
        self.memo_gets += 1
        if slot == NULL:
            self.anomaly(A_BAD_MEMO_GET, offset, key)
            self.push(K_OTHER, -1, 0, 0)
            return
        v = slot[0]
        v.from_memo = 1
        slot = self.grow()
        if slot != NULL:
            slot[0] = v

    cdef int64_t decimal_key(self, int64_t off, int64_t length) noexcept nogil:
        """Parse a protocol-0 memo key; -1 when it is not a plain decimal number."""
        cdef int64_t v = 0
        cdef int64_t i
        cdef uint8_t c
        if length > 0 and self.p[off + length - 1] == 13:  # tolerate \r\n
            length -= 1
        if length <= 0 or length > 18:
            return -1
        for i in range(length):
            c = self.p[off + i]
            if c < 48 or c > 57:
                return -1
            v = v * 10 + (c - 48)
        return v

    cdef inline int64_t find_nl(self, int64_t pos) noexcept nogil:
        cdef const void* hit
        if pos >= self.n:
            return -1
        hit = memchr(self.p + pos, 10, <size_t>(self.n - pos))
        if hit == NULL:
            return -1
        return <const uint8_t*>hit - self.p

    # ---- one pickle --------------------------------------------------------------------

    cdef int walk_one(self, int64_t start, int64_t* end_out) noexcept nogil:
        cdef int64_t pos = start
        cdef int64_t op_start, arg_off, arg_len, nl, nl2, key, k, frame_end = -1
        cdef int64_t slen
        cdef int64_t signed_len
        cdef uint64_t ulen
        cdef uint8_t op, kind
        cdef bint proto_seen = False
        cdef Item a, b, c, top
        cdef Item* tp
        cdef int64_t idx
        self.sp = 0
        self.memo_dense.clear()
        self.memo_sparse.clear()
        self.memo_size = 0
        memset(self.pcounts, 0, sizeof(self.pcounts))
        memset(self.anom_seen, 0, sizeof(self.anom_seen))
        self.cur_ops = 0
        self.cur_proto = -1
        while True:
            op_start = pos
            if pos >= self.n:
                end_out[0] = pos
                return R_TRUNCATED
            op = self.p[pos]
            kind = ARG_KIND[op]
            if kind == ARG_INVALID:
                end_out[0] = pos
                return R_BAD_OPCODE
            pos += 1
            arg_off = pos
            arg_len = 0
            # -- argument extent --
            if kind == ARG_NONE:
                pass
            elif kind == ARG_FIXED:
                arg_len = ARG_FIXED_LEN[op]
                if arg_len > self.n - pos:
                    end_out[0] = op_start
                    return R_TRUNCATED
                pos += arg_len
            elif kind == ARG_LINE:
                nl = self.find_nl(pos)
                if nl < 0:
                    end_out[0] = op_start
                    return R_TRUNCATED
                arg_len = nl - pos
                pos = nl + 1
            elif kind == ARG_LINE2:
                nl = self.find_nl(pos)
                nl2 = self.find_nl(nl + 1) if nl >= 0 else -1
                if nl2 < 0:
                    end_out[0] = op_start
                    return R_TRUNCATED
                arg_len = nl2 - pos
                pos = nl2 + 1
            elif kind == ARG_LEN1:
                if pos >= self.n:
                    end_out[0] = op_start
                    return R_TRUNCATED
                arg_len = self.p[pos]
                arg_off = pos + 1
                if arg_len > self.n - arg_off:
                    end_out[0] = op_start
                    return R_TRUNCATED
                pos = arg_off + arg_len
            else:  # 4- or 8-byte length prefix
                slen = 8 if kind == ARG_LEN8U else 4
                if slen > self.n - pos:
                    end_out[0] = op_start
                    return R_TRUNCATED
                ulen = read_le(self.p + pos, <int>slen)
                arg_off = pos + slen
                if kind == ARG_LEN4S:
                    signed_len = <int64_t>(<int32_t>(<uint32_t>ulen))
                    if signed_len < 0:
                        self.anomaly(A_NEGATIVE_LENGTH, op_start, signed_len)
                        end_out[0] = op_start
                        return R_BAD_OPCODE
                if ulen > <uint64_t>(self.n - arg_off):
                    end_out[0] = op_start
                    return R_TRUNCATED
                arg_len = <int64_t>ulen
                pos = arg_off + arg_len
            # -- frames: an opcode must not straddle the end of its frame --
            if frame_end >= 0:
                if op_start >= frame_end:
                    frame_end = -1
                elif pos > frame_end:
                    self.anomaly(A_FRAME_VIOLATION, op_start, frame_end)
                    # a loader that honours frames reads on from the frame end: parse that too
                    self.add_nested(frame_end, self.n - frame_end, 1)
                    frame_end = -1
            self.pcounts[op] += 1
            self.cur_ops += 1
            self.n_ops += 1
            if self.n_ops > self.max_opcodes:
                self.budget_hit = True
            # -- semantics --
            if op == OP_MARK:
                self.push(K_MARK, 0, 0, 0)
            elif op == OP_STOP:
                if self.sp > 1:
                    self.anomaly(A_STOP_WITH_STACK, op_start, self.sp)
                end_out[0] = pos
                return R_BUDGET if self.budget_hit else R_STOP
            elif op == OP_POP:
                a = self.pop(op_start)
                if a.kind == K_CALL and a.a >= 0:
                    self.calls[a.a].discarded = 1
            elif op == OP_POP_MARK:
                self.pop_to_mark(op_start, True)
            elif op == OP_DUP:
                if self.sp == 0:
                    self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
                    self.push(K_OTHER, -1, 0, 0)
                else:
                    top = self.stk[self.sp - 1]
                    self.push(top.kind, top.a, top.b, top.enc)
            elif op == OP_STRING:
                # quoted repr: strip \r, then the quotes
                slen = arg_len
                if slen > 0 and self.p[arg_off + slen - 1] == 13:
                    slen -= 1
                if slen >= 2 and self.p[arg_off] == self.p[arg_off + slen - 1] \
                        and (self.p[arg_off] == 39 or self.p[arg_off] == 34):
                    self.push(K_STR, arg_off + 1, slen - 2, ENC_QUOTED)
                    self.add_string(arg_off + 1, slen - 2, ENC_QUOTED)
                else:
                    self.push(K_OTHER, -1, 0, 0)
            elif op == OP_UNICODE:
                slen = arg_len
                if slen > 0 and self.p[arg_off + slen - 1] == 13:
                    slen -= 1
                self.push(K_STR, arg_off, slen, ENC_RAW_UNICODE)
                self.add_string(arg_off, slen, ENC_RAW_UNICODE)
            elif op == OP_BINSTRING or op == OP_SHORT_BINSTRING:
                self.push(K_STR, arg_off, arg_len, ENC_BYTES)
                self.add_string(arg_off, arg_len, ENC_BYTES)
                self.maybe_nested(arg_off, arg_len)
            elif op == OP_BINUNICODE or op == OP_SHORT_BINUNICODE or op == OP_BINUNICODE8:
                self.push(K_STR, arg_off, arg_len, ENC_UTF8)
                self.add_string(arg_off, arg_len, ENC_UTF8)
            elif op == OP_BINBYTES or op == OP_SHORT_BINBYTES or op == OP_BINBYTES8 \
                    or op == OP_BYTEARRAY8:
                self.payload_bytes += arg_len
                self.maybe_nested(arg_off, arg_len)
                self.push(K_OTHER, -1, 0, 0)
            elif op == OP_READONLY_BUFFER:
                pass
            elif op == OP_TUPLE or op == OP_LIST or op == OP_DICT or op == OP_FROZENSET:
                self.pop_to_mark(op_start, False)
                self.push(K_OTHER, -1, 0, 0)
            elif op == OP_TUPLE1 or op == OP_TUPLE2 or op == OP_TUPLE3:
                for k in range(op - OP_TUPLE1 + 1):
                    self.pop(op_start)
                self.push(K_OTHER, -1, 0, 0)
            elif op == OP_APPEND:
                self.pop(op_start)
                if self.sp == 0:
                    self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
            elif op == OP_APPENDS or op == OP_ADDITEMS:
                self.pop_to_mark(op_start, False)
                if self.sp == 0:
                    self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
            elif op == OP_SETITEM or op == OP_SETITEMS:
                if op == OP_SETITEM:
                    self.pop(op_start)
                    self.pop(op_start)
                else:
                    self.pop_to_mark(op_start, False)
                if self.sp == 0:
                    self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
                elif self.stk[self.sp - 1].kind == K_GLOBAL:
                    self.anomaly(A_SETITEM_ON_GLOBAL, op_start, self.stk[self.sp - 1].a)
            elif op == OP_BUILD:
                self.pop(op_start)  # state
                if self.sp == 0:
                    self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
                    self.add_call(op_start, op, NULL)
                else:
                    tp = &self.stk[self.sp - 1]
                    if tp.kind == K_GLOBAL:
                        self.anomaly(A_BUILD_ON_GLOBAL, op_start, tp.a)
                        self.add_call(op_start, op, tp)
                    elif tp.kind == K_CALL and tp.a >= 0:
                        # BUILD finishes an object: attribute it to the class that made it
                        idx = self.add_call(op_start, op, NULL)
                        if idx >= 0:
                            self.calls[idx].callable_index = self.calls[tp.a].callable_index
                    else:
                        self.add_call(op_start, op, NULL)
            elif op == OP_REDUCE or op == OP_NEWOBJ:
                self.pop(op_start)  # args
                a = self.pop(op_start)  # callable / class
                self.push(K_CALL, self.add_call(op_start, op, &a), 0, 0)
            elif op == OP_NEWOBJ_EX:
                self.pop(op_start)  # kwargs
                self.pop(op_start)  # args
                a = self.pop(op_start)
                self.push(K_CALL, self.add_call(op_start, op, &a), 0, 0)
            elif op == OP_OBJ:
                k = self.mark_index()
                if k < 0 or k + 1 >= <int64_t>self.sp:
                    self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
                    a.kind = K_OTHER
                    a.a = -1
                else:
                    a = self.stk[k + 1]
                self.pop_to_mark(op_start, False)
                self.push(K_CALL, self.add_call(op_start, op, &a), 0, 0)
            elif op == OP_GLOBAL or op == OP_INST:
                nl = self.find_nl(arg_off)
                a.kind = K_STR
                a.a = arg_off
                a.b = nl - arg_off
                a.enc = ENC_UTF8
                a.from_memo = 0
                if a.b > 0 and self.p[nl - 1] == 13:
                    a.b -= 1
                b.kind = K_STR
                b.a = nl + 1
                b.b = pos - 1 - (nl + 1)
                b.enc = ENC_UTF8
                b.from_memo = 0
                if b.b > 0 and self.p[pos - 2] == 13:
                    b.b -= 1
                idx = self.add_global(op_start, op, True, &a, &b, -1)
                if op == OP_GLOBAL:
                    self.push(K_GLOBAL, idx, 0, 0)
                else:
                    self.pop_to_mark(op_start, False)
                    c.kind = K_GLOBAL
                    c.a = idx
                    self.push(K_CALL, self.add_call(op_start, op, &c if idx >= 0 else NULL), 0, 0)
            elif op == OP_STACK_GLOBAL:
                b = self.pop(op_start)  # name
                a = self.pop(op_start)  # module
                if a.kind == K_STR and b.kind == K_STR:
                    idx = self.add_global(op_start, op, True, &a, &b, -1)
                else:
                    self.anomaly(A_STACK_GLOBAL_NON_STRING, op_start, 0)
                    if (a.from_memo and a.kind != K_STR) or (b.from_memo and b.kind != K_STR):
                        self.anomaly(A_MEMO_TYPE_CONFUSION, op_start, 0)
                    idx = self.add_global(op_start, op, False, &a, &b, -1)
                self.push(K_GLOBAL, idx, 0, 0)
            elif op == OP_EXT1 or op == OP_EXT2 or op == OP_EXT4:
                key = <int64_t>read_le(self.p + arg_off, <int>arg_len)
                self.anomaly(A_EXT_CODE, op_start, key)
                self.push(K_GLOBAL, self.add_global(op_start, op, False, NULL, NULL, key), 0, 0)
            elif op == OP_PUT or op == OP_GET:
                key = self.decimal_key(arg_off, arg_len)
                if key < 0:
                    self.anomaly(A_BAD_MEMO_KEY, op_start, 0)
                    if op == OP_GET:
                        self.push(K_OTHER, -1, 0, 0)
                elif op == OP_PUT:
                    self.memo_put(key, op_start)
                else:
                    self.memo_get(key, op_start)
            elif op == OP_BINPUT or op == OP_LONG_BINPUT:
                self.memo_put(<int64_t>read_le(self.p + arg_off, <int>arg_len), op_start)
            elif op == OP_MEMOIZE:
                self.memo_put(self.memo_size, op_start)
            elif op == OP_BINGET or op == OP_LONG_BINGET:
                self.memo_get(<int64_t>read_le(self.p + arg_off, <int>arg_len), op_start)
            elif op == OP_PROTO:
                if proto_seen:
                    self.anomaly(A_DUPLICATE_PROTO, op_start, self.p[arg_off])
                elif self.cur_ops != 1:
                    self.anomaly(A_MISPLACED_PROTO, op_start, self.p[arg_off])
                if not proto_seen:
                    self.cur_proto = self.p[arg_off]
                proto_seen = True
            elif op == OP_FRAME:
                ulen = read_le(self.p + arg_off, 8)
                if frame_end >= 0 and op_start < frame_end:
                    self.anomaly(A_NEW_FRAME_INSIDE_FRAME, op_start, frame_end)
                if 0 <= self.cur_proto < 4:
                    self.anomaly(A_FRAME_IN_OLD_PROTOCOL, op_start, self.cur_proto)
                if ulen > <uint64_t>(self.n - pos):
                    self.anomaly(A_FRAME_OVERRUN, op_start, <int64_t>ulen)
                    frame_end = -1
                else:
                    frame_end = pos + <int64_t>ulen
            elif op == OP_PERSID:
                self.push(K_OTHER, -1, 0, 0)
            elif op == OP_BINPERSID:
                self.pop(op_start)
                self.push(K_OTHER, -1, 0, 0)
            else:
                # every remaining opcode pushes one opaque value (ints, floats, None, bools,
                # empty containers, LONG text ints, NEXT_BUFFER)
                self.push(K_OTHER, -1, 0, 0)
            if self.budget_hit:
                end_out[0] = pos
                return R_BUDGET

    # ---- the whole buffer --------------------------------------------------------------

    cdef int64_t next_candidate(self, int64_t pos) noexcept nogil:
        """Next offset >= pos where a pickle could start, or -1."""
        cdef uint8_t c, d
        cdef int64_t i
        while pos + 1 < self.n:
            c = self.p[pos]
            d = self.p[pos + 1]
            if c == 0x80 and d <= 5:
                return pos
            if c == 40 and (d == 99 or d == 105 or d == 100 or d == 108):  # ( then c i d l
                return pos
            if (c == 125 or c == 93) and (d == 113 or d == 40 or d == 46):  # } ] then q ( .
                return pos
            if c == 99 and is_ident_byte(d):  # GLOBAL 'c' + identifier + newline
                i = pos + 1
                while i < self.n and i - pos < 256 and is_ident_byte(self.p[i]):
                    i += 1
                if i < self.n and self.p[i] == 10:
                    return pos
            pos += 1
        return -1

    cdef void snapshot_counts(self, bint accept) noexcept nogil:
        cdef int i
        if accept:
            for i in range(256):
                self.counts[i] += self.pcounts[i]

    cdef void run_nogil(self) noexcept nogil:
        cdef int64_t pos = 0, last_end = 0, cand, end = 0
        cdef size_t g0, c0, s0, n0, a0
        cdef int64_t ops0, nstr0, long0, pay0, puts0, gets0
        cdef int r
        cdef bint first = True
        cdef bint accept
        cdef AnomRec rec
        while pos < self.n and not self.budget_hit:
            if <int64_t>self.pickle_offsets.size() >= self.max_pickles:
                self.budget_hit = True
                break
            if first:
                cand = pos
            else:
                cand = self.next_candidate(pos)
                if cand < 0:
                    break
            g0 = self.globals_.size()
            c0 = self.calls.size()
            s0 = self.strings.size()
            n0 = self.nested.size()
            a0 = self.anomalies.size()
            ops0 = self.n_ops
            nstr0 = self.n_strings
            long0 = self.long_strings
            pay0 = self.payload_bytes
            puts0 = self.memo_puts
            gets0 = self.memo_gets
            self.cur_pickle = <int32_t>self.pickle_offsets.size()
            r = self.walk_one(cand, &end)
            if first:
                # a broken first pickle still counts when it imported something or ran a while
                accept = (r == R_STOP and self.n_ops - ops0 >= 1) or self.globals_.size() > g0 \
                    or self.n_ops - ops0 >= 8 or r == R_BUDGET \
                    or (self.n_ops - ops0 >= 1 and self.p[cand] == 0x80 and self.p[cand + 1] <= 5)
            else:
                accept = (r == R_STOP and self.n_ops - ops0 >= 3) or self.globals_.size() > g0 \
                    or r == R_BUDGET
            if not accept:
                self.globals_.resize(g0)
                self.calls.resize(c0)
                self.strings.resize(s0)
                self.nested.resize(n0)
                self.anomalies.resize(a0)
                self.resync_ops += self.n_ops - ops0
                self.n_ops = ops0
                self.n_strings = nstr0
                self.long_strings = long0
                self.payload_bytes = pay0
                self.memo_puts = puts0
                self.memo_gets = gets0
                self.budget_hit = False
                first = False
                if self.resync_ops > self.max_resync_ops:
                    rec.code = A_RESYNC_BUDGET
                    rec.offset = cand
                    rec.detail = self.resync_ops
                    rec.pickle_index = self.cur_pickle
                    self.anomalies.push_back(rec)
                    self.budget_hit = True
                    break
                pos = cand + 1
                continue
            first = False
            self.snapshot_counts(True)
            if cand > last_end:
                self.junk_bytes += cand - last_end
                rec.code = A_JUNK_BETWEEN
                rec.offset = last_end
                rec.detail = cand - last_end
                rec.pickle_index = self.cur_pickle
                self.anomalies.push_back(rec)
            self.pickle_offsets.push_back(cand)
            self.protocols.push_back(self.cur_proto)
            if r != R_STOP and self.status == R_STOP:
                self.status = r
                self.error_offset = end
            if r == R_STOP:
                last_end = end
                pos = end
            else:
                # a broken pickle: resume the search right after the failure point
                last_end = end + 1 if end < self.n else self.n
                pos = end + 1
        if last_end < self.n and not self.budget_hit:
            self.junk_bytes += self.n - last_end
            rec.code = A_TRAILING_JUNK
            rec.offset = last_end
            rec.detail = self.n - last_end
            rec.pickle_index = <int32_t>self.pickle_offsets.size() - 1
            self.anomalies.push_back(rec)
        if self.budget_hit:
            self.status = R_BUDGET

    def run(self):
        with nogil:
            self.run_nogil()
        if self.status == R_BUDGET and not self.budget:
            self.budget = self._budget_name()
        return self

    def _budget_name(self):
        if self.n_ops > self.max_opcodes:
            return "max_opcodes"
        if <int64_t>self.sp >= self.max_stack:
            return "max_stack"
        if <int64_t>self.globals_.size() >= self.max_globals:
            return "max_globals"
        if <int64_t>self.calls.size() >= self.max_calls:
            return "max_calls"
        if self.resync_ops > self.max_resync_ops:
            return "max_resync_opcodes"
        if <int64_t>self.pickle_offsets.size() >= self.max_pickles:
            return "max_pickles"
        return "unknown"

    # ---- results as plain Python objects -----------------------------------------------

    def opcode_counts(self):
        return tuple(self.counts[i] for i in range(256))

    def pickle_list(self):
        return [(self.pickle_offsets[i], self.protocols[i])
                for i in range(<int64_t>self.pickle_offsets.size())]

    def global_list(self):
        cdef GlobalRec g
        out = []
        for g in self.globals_:
            out.append((g.offset, g.pickle_index, g.opcode, g.resolved, g.via_memo,
                        g.mod_off, g.mod_len, g.mod_enc, g.name_off, g.name_len, g.name_enc,
                        g.ext_code))
        return out

    def call_list(self):
        cdef CallRec c
        return [(c.offset, c.pickle_index, c.opcode, c.callable_index, c.discarded,
                 c.callable_is_call) for c in self.calls]

    def string_list(self):
        cdef Span s
        return [(s.offset, s.length, s.enc) for s in self.strings]

    def nested_list(self):
        cdef Span s
        return [(s.offset, s.length, s.enc) for s in self.nested]

    def anomaly_list(self):
        cdef AnomRec a
        return [(a.code, a.offset, a.pickle_index, a.detail) for a in self.anomalies]



def arg_layout():
    """(arg_kind, fixed_len) per byte value, as compiled in; tested against fastscan.opcodes."""
    return tuple((ARG_KIND[i], ARG_FIXED_LEN[i]) for i in range(256))


def list_opcodes(const uint8_t[::1] data, int64_t start=0, int64_t max_ops=10_000_000):
    """Opcode bytes and offsets of the single pickle at `start`, up to STOP or the first error.

    Returns (codes: bytes, offsets: list[int], arg_offsets: list[int], arg_lengths: list[int],
    end: int, status: str). Uses the same argument rules as the Walker; for listings and the
    differential test against pickletools.genops.
    """
    cdef int64_t n = data.shape[0]
    cdef int64_t pos = start, op_start, arg_off, arg_len, nl, nl2, count = 0
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
            nl = _find(p, n, pos)
            if kind == ARG_LINE2 and nl >= 0:
                nl = _find(p, n, nl + 1)
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


cdef inline int64_t _find(const uint8_t* p, int64_t n, int64_t pos) noexcept nogil:
    cdef const void* hit
    if pos >= n:
        return -1
    hit = memchr(p + pos, 10, <size_t>(n - pos))
    if hit == NULL:
        return -1
    return <const uint8_t*>hit - p
