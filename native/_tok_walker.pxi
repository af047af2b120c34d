# The Walker class (included by _tokenizer.pyx).


@cython.final
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
    cdef int64_t max_str_digits  # sys.get_int_max_str_digits(): int() refuses longer numbers
    # per-pickle state
    cdef Item* stk  # the symbolic stack: a growable C array, written in place
    cdef int64_t sp
    cdef int64_t cap
    cdef int64_t top_mark  # index of the topmost K_MARK, -1 when none (see link_mark)
    # memo: dense keys (the usual 0, 1, 2, ...) live in a vector, sparse ones in a hash map
    cdef MemoEntry* memo_dense  # a C array grown with realloc (no copy-on-grow, no exceptions)
    cdef int64_t memo_len
    cdef int64_t memo_cap
    cdef unordered_map[int64_t, Item] memo_sparse
    cdef int64_t memo_size
    cdef uint64_t pcounts[256]
    cdef int32_t cur_proto
    cdef bint proto_seen
    cdef int64_t frame_end  # end of the open FRAME, NO_FRAME when none
    cdef int32_t cur_pickle
    cdef int32_t anom_seen[N_ANOMALY_CODES]
    cdef bint budget_hit
    # outputs
    cdef vector[GlobalRec] globals_
    cdef vector[CallRec] calls
    cdef vector[Span] strings
    cdef vector[Span] nested
    cdef vector[AnomRec] anomalies
    cdef vector[TextRec] texts  # operands only CPython's own parsers can judge (loader_rejects)
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
    cdef public int64_t nested_dropped
    cdef public int status
    cdef public int64_t error_offset
    cdef public str budget

    def __init__(self, const uint8_t[::1] data, int64_t max_opcodes=200_000_000,
                 int64_t max_stack=1_000_000, int64_t max_memo=2_000_000,
                 int64_t max_globals=100_000, int64_t max_calls=1_000_000,
                 int64_t max_strings=4096, int64_t max_string_len=4096,
                 int64_t max_nested=64, int64_t max_resync_opcodes=5_000_000,
                 int64_t max_pickles=100_000, int64_t max_str_digits=4300):
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
        self.max_str_digits = max_str_digits
        memset(self.counts, 0, sizeof(self.counts))
        self.status = R_STOP
        self.error_offset = -1
        self.budget = ""

    def __dealloc__(self):
        free(self.stk)
        free(self.memo_dense)

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
        cdef int64_t sp = self.sp
        if sp >= self.cap:
            return self.grow_slow()
        self.sp = sp + 1
        if sp + 1 > self.max_depth:
            self.max_depth = sp + 1
        return self.stk + sp

    cdef Item* grow_slow(self) noexcept nogil:
        if not self.grow_stack():
            return NULL
        self.sp += 1
        if self.sp > self.max_depth:
            self.max_depth = self.sp
        return &self.stk[self.sp - 1]

    cdef bint grow_stack(self) noexcept nogil:
        """Double the stack array (out of line: it runs a few times per pickle)."""
        cdef Item* bigger
        cdef int64_t cap
        if self.cap >= self.max_stack:
            self.budget_hit = True
            return False
        cap = min(max(self.cap * 2, 64), self.max_stack)
        bigger = <Item*>realloc(self.stk, cap * sizeof(Item))
        if bigger == NULL:
            self.budget_hit = True
            return False
        self.stk = bigger
        self.cap = cap
        return True

    cdef inline void push(self, uint8_t kind, int64_t a, int64_t b, uint8_t enc) noexcept nogil:
        cdef Item* it = self.grow()
        if it == NULL:
            return
        it.kind = kind
        it.a = a
        it.b = b
        it.enc = enc
        it.from_memo = 0
        if kind == K_MARK:
            self.link_mark(it)

    cdef inline void link_mark(self, Item* it) noexcept nogil:
        """Make the just-pushed MARK `it` the topmost one; its `a` keeps the one below, so
        finding the topmost MARK is O(1) instead of a scan down the stack."""
        it.a = self.top_mark
        self.top_mark = it - self.stk

    cdef inline Item pop(self, int64_t offset) noexcept nogil:
        if self.sp == 0:
            return self.pop_empty(offset)
        self.sp -= 1
        if self.sp == self.top_mark:
            self.top_mark = self.stk[self.sp].a
        return self.stk[self.sp]

    cdef Item pop_empty(self, int64_t offset) noexcept nogil:
        """What popping an empty stack yields: an anomaly and an opaque value."""
        cdef Item it
        self.anomaly(A_STACK_UNDERFLOW, offset, 0)
        it.kind = K_OTHER
        it.a = -1
        it.b = 0
        it.enc = 0
        it.from_memo = 0
        return it

    cdef inline int64_t mark_index(self) noexcept nogil:
        return self.top_mark

    cdef void pop_to_mark(self, int64_t offset, bint discards) noexcept nogil:
        """Pop everything above the topmost MARK and the MARK itself."""
        cdef int64_t k = self.top_mark
        cdef int64_t i
        if k < 0:
            self.anomaly(A_MARK_MISSING, offset, 0)
            k = 0
        else:
            self.top_mark = self.stk[k].a
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
        """Record a bytes operand whose first bytes look like the start of a pickle, or that
        imports within its first opcodes (any protocol, no PROTO header needed)."""
        cdef const uint8_t* q
        cdef int64_t i
        if length < 4:
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
            if ARG_KIND[q[0]] != ARG_INVALID and imports_early(q, length) == 1:
                self.add_nested(off, length, NEST_TEXT + ENC_BYTES)
            return
        self.add_nested(off, length, NEST_RAW)

    cdef inline void maybe_nested_text(self, int64_t off, int64_t length,
                                       uint8_t enc) noexcept nogil:
        """Record a string operand whose loader-made bytes may be a pickle: the latin-1 bytes
        of `_codecs.encode(text, "latin1")`, a STRING's escaped bytes (J1, H1). Most strings
        stop at the first test: a name or a sentence holds no newline and no byte >= 0x80."""
        cdef uint8_t c
        if length < 6:
            return
        c = self.p[off]
        if c < 0x80 and c != 92 and ARG_KIND[c] == ARG_INVALID:
            return  # the first byte is no opcode (a backslash or >= 0x80 may decode to one)
        if fastscan_may_carry(self.p + off, length, enc == ENC_QUOTED or enc == ENC_RAW_UNICODE):
            self.nested_text(off, length, enc)

    cdef void nested_text(self, int64_t off, int64_t length, uint8_t enc) noexcept nogil:
        """Transcode a prefix (4 KiB, then up to NEST_DECODE_MAX when the first opcodes run
        past it) and walk it for an early import."""
        cdef const uint8_t* q = self.p + off
        cdef uint8_t* buf
        cdef int64_t m, cap = 4096
        cdef int hit = -1
        while hit == -1:
            cap = min(cap, length, <int64_t>NEST_DECODE_MAX)
            buf = <uint8_t*>malloc(<size_t>cap)
            if buf == NULL:
                return
            m = fastscan_carried_bytes(q, length, enc, buf, cap)
            hit = 1 if m >= 2 and buf[0] == 0x80 and buf[1] <= 5 else imports_early(buf, m)
            free(buf)
            if m < cap or cap >= length or cap >= NEST_DECODE_MAX:
                break  # the transcoding stopped or nothing is left to decode
            cap *= 16
        if hit == 1:
            self.add_nested(off, length, NEST_TEXT + enc)

    cdef void add_nested(self, int64_t off, int64_t length, uint8_t why) noexcept nogil:
        """Queue a region for a separate parse (why: a NEST_* code); past max_nested it is
        counted in nested_dropped, which the Python layer reports (fail closed)."""
        cdef Span s
        if length <= 0:
            return
        if <int64_t>self.nested.size() >= self.max_nested:
            self.nested_dropped += 1
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
        c.callable_call_index = -1
        c.first_arg_index = -1
        c.first_arg_kind = K_OTHER
        c.discarded = 0
        c.callable_is_call = 0
        c.arg_kinds = 0
        c.result_use = 0
        if fn != NULL:
            if fn.kind == K_GLOBAL:
                c.callable_index = fn.a
            elif fn.kind == K_CALL and 0 <= fn.a < <int64_t>self.calls.size():
                c.callable_is_call = 1
                c.callable_call_index = fn.a
                self.calls[fn.a].result_use |= USE_CALLED
            elif fn.kind == K_CALL and fn.a >= 0:
                c.callable_is_call = 1
                c.callable_call_index = fn.a
        self.calls.push_back(c)
        return <int64_t>self.calls.size() - 1

    cdef bint memo_reserve(self, int64_t need) noexcept nogil:
        """Room for `need` dense slots; False when memory is short (treated as the memo budget)."""
        cdef MemoEntry* bigger
        cdef int64_t cap
        if need <= self.memo_cap:
            return True
        cap = max(need, self.memo_cap * 2, 1024)
        bigger = <MemoEntry*>realloc(self.memo_dense, cap * sizeof(MemoEntry))
        if bigger == NULL:
            return False
        self.memo_dense = bigger
        self.memo_cap = cap
        return True

    cdef inline void memo_put(self, int64_t key, int64_t offset) noexcept nogil:
        if self.sp == 0:
            self.anomaly(A_STACK_UNDERFLOW, offset, 0)
            return
        self.memo_puts += 1
        # the usual case: keys 0, 1, 2, ... appended, no sparse key that could shadow the slot
        if key == self.memo_len and key < self.memo_cap and self.memo_size < self.max_memo \
                and self.memo_sparse.empty():
            memo_pack(&self.memo_dense[key], &self.stk[self.sp - 1])
            self.memo_len += 1
            self.memo_size += 1
            return
        self.memo_put_slow(key, offset)

    cdef void memo_put_slow(self, int64_t key, int64_t offset) noexcept nogil:
        cdef Item* top = &self.stk[self.sp - 1]
        cdef MemoEntry absent
        cdef int64_t i
        # an existing entry is overwritten (the dense range shadows the sparse map)
        if 0 <= key < self.memo_len:
            if memo_kind(&self.memo_dense[key]) != K_ABSENT:
                memo_pack(&self.memo_dense[key], top)
                return
        elif self.memo_sparse.count(key):
            self.memo_sparse[key] = top[0]
            return
        if self.memo_size >= self.max_memo:
            self.anomaly(A_MEMO_BUDGET, offset, key)
            return
        if 0 <= key < self.memo_len + 4096:
            if key >= self.memo_len:
                if not self.memo_reserve(key + 1):
                    self.anomaly(A_MEMO_BUDGET, offset, key)
                    return
                absent.a = -1
                absent.packed = <uint64_t>K_ABSENT << MEMO_LEN_BITS
                for i in range(self.memo_len, key):
                    self.memo_dense[i] = absent
                self.memo_len = key + 1
            memo_pack(&self.memo_dense[key], top)
        else:
            self.memo_sparse[key] = top[0]
        self.memo_size += 1

    cdef inline void memo_get(self, int64_t key, int64_t offset) noexcept nogil:
        cdef Item* slot
        if 0 <= key < self.memo_len and memo_kind(&self.memo_dense[key]) != K_ABSENT:
            self.memo_gets += 1
            slot = self.grow()
            if slot != NULL:
                memo_unpack(slot, &self.memo_dense[key])
                if slot.kind == K_MARK:
                    self.link_mark(slot)
            return
        self.memo_get_slow(key, offset)

    cdef void memo_get_slow(self, int64_t key, int64_t offset) noexcept nogil:
        cdef unordered_map[int64_t, Item].iterator it
        cdef Item* slot
        cdef Item v
        self.memo_gets += 1
        if 0 <= key < self.memo_len or self.memo_sparse.empty():
            self.anomaly(A_BAD_MEMO_GET, offset, key)
            self.push(K_OTHER, -1, 0, 0)
            return
        else:
            it = self.memo_sparse.find(key)
            if it == self.memo_sparse.end():
                self.anomaly(A_BAD_MEMO_GET, offset, key)
                self.push(K_OTHER, -1, 0, 0)
                return
            v = self.memo_sparse[key]
            v.from_memo = 1
        slot = self.grow()
        if slot != NULL:
            slot[0] = v
            if v.kind == K_MARK:
                self.link_mark(slot)

    cdef inline int64_t decimal_key(self, int64_t off, int64_t length) noexcept nogil:
        """The memo key of a PUT/GET line, or -1 when the loader raises on it (`exact_key`):
        plain digits inline, anything else out of line."""
        cdef const uint8_t* q = self.p + off
        cdef int64_t v = 0
        cdef int64_t i
        if length <= 0 or length > 18:
            return self.exact_key(off, length)
        for i in range(length):
            if q[i] < 48 or q[i] > 57:
                return self.exact_key(off, length)
            v = v * 10 + (q[i] - 48)
        return v

    cdef int64_t exact_key(self, int64_t off, int64_t length) noexcept nogil:
        """The memo key CPython's unpickler reads from a PUT/GET line, or -1 when it raises.

        _pickle parses the line (with its newline, NUL-terminated) by PyLong_FromString(s, NULL,
        10) then PyLong_AsSsize_t: whitespace around, a sign, single underscores between digits
        and leading zeros are all accepted, an embedded NUL ends the text, more than
        sys.get_int_max_str_digits() digits or a value past 2**63-1 raise. A negative key is
        refused by PUT and found by no GET, so it is -1 too (pickle.py accepts a subset).
        """
        cdef const uint8_t* q = self.p + off
        cdef const void* nul = memchr(q, 0, <size_t>length)
        cdef int64_t i = 0, digits = 0
        cdef uint64_t v = 0
        cdef bint neg = False, overflow = False
        cdef uint8_t c, prev = 0
        if length <= 0:
            return -1  # "pickle data was truncated": the line must hold more than its newline
        if nul != NULL:
            length = <const uint8_t*>nul - q
        while i < length and is_py_space(q[i]):
            i += 1
        if i < length and (q[i] == 43 or q[i] == 45):  # + -
            neg = q[i] == 45
            i += 1
        if i < length and q[i] == 95:  # may not start with '_'
            return -1
        while i < length and ((48 <= q[i] <= 57) or q[i] == 95):
            c = q[i]
            if c == 95:
                if prev == 95:
                    return -1
            else:
                digits += 1
                if v > (<uint64_t>0x7FFFFFFFFFFFFFFF - (c - 48)) // 10:
                    overflow = True
                else:
                    v = v * 10 + (c - 48)
            prev = c
            i += 1
        if prev == 95 or digits == 0:
            return -1
        if self.max_str_digits > 0 and digits > self.max_str_digits:
            return -1
        while i < length and is_py_space(q[i]):
            i += 1
        if i < length or overflow or (neg and v != 0):
            return -1
        return <int64_t>v

    cdef inline int64_t find_nl(self, int64_t pos) noexcept nogil:
        return fastscan_find_nl(self.p, pos, self.n)

    # ---- one pickle --------------------------------------------------------------------

    cdef ArgSpan var_arg(self, uint8_t kind, int64_t pos, int64_t op_start) noexcept nogil:
        """Extent of a line or length-prefixed argument starting at pos (status R_STOP if whole)."""
        cdef ArgSpan out
        cdef int64_t nl, nl2, slen, signed_len
        cdef uint64_t ulen
        out.status = R_TRUNCATED
        out.off = pos
        out.length = 0
        if kind == ARG_LEN1:
            if pos >= self.n:
                return out
            out.length = self.p[pos]
            out.off = pos + 1
            if out.length > self.n - out.off:
                return out
        elif kind == ARG_LINE:
            nl = self.find_nl(pos)
            if nl < 0:
                return out
            out.length = nl - pos
            out.end = nl + 1
            out.status = R_STOP
            return out
        elif kind == ARG_LINE2:
            nl = self.find_nl(pos)
            nl2 = self.find_nl(nl + 1) if nl >= 0 else -1
            if nl2 < 0:
                return out
            out.length = nl2 - pos
            out.end = nl2 + 1
            out.status = R_STOP
            return out
        else:  # 4- or 8-byte length prefix
            slen = 8 if kind == ARG_LEN8U else 4
            if slen > self.n - pos:
                return out
            ulen = read_le(self.p + pos, <int>slen)
            if kind == ARG_LEN4S:
                signed_len = <int64_t>(<int32_t>(<uint32_t>ulen))
                if signed_len < 0:
                    self.anomaly(A_NEGATIVE_LENGTH, op_start, signed_len)
                    out.status = R_BAD_OPCODE
                    return out
            if ulen > <uint64_t>(self.n - (pos + slen)):
                return out
            out.off = pos + slen
            out.length = <int64_t>ulen
        out.end = out.off + out.length
        out.status = R_STOP
        return out

    cdef void rare_op(self, uint8_t op, int64_t op_start, int64_t arg_off, int64_t arg_len,
                      int64_t pos, int64_t ops) noexcept nogil:
        """Semantics of the opcodes that are rare in real pickles (imports, calls, frames,
        protocol-0/1 strings). Out of line so the hot loop stays small enough for gcc to inline
        the stack and memo fast paths into it."""
        cdef int64_t k, key, nl, idx
        cdef uint8_t mask
        cdef uint64_t ulen
        cdef Item a, b, c, top
        cdef Item* tp
        if op == OP_POP_MARK:
            self.pop_to_mark(op_start, True)
        elif op == OP_DUP:
            if self.sp == 0:
                self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
                self.push(K_OTHER, -1, 0, 0)
            else:
                top = self.stk[self.sp - 1]
                self.push(top.kind, top.a, top.b, top.enc)
        elif op == OP_STRING:
            # _pickle strips the newline only (a \r stays), then needs matching outer quotes
            if arg_len >= 2 and self.p[arg_off] == self.p[arg_off + arg_len - 1] \
                    and (self.p[arg_off] == 39 or self.p[arg_off] == 34):
                self.push_str(arg_off + 1, arg_len - 2, ENC_QUOTED)
                self.maybe_nested_text(arg_off + 1, arg_len - 2, ENC_QUOTED)
                if fastscan_has_byte(self.p + arg_off + 1, arg_len - 2, 92):
                    self.check_text(op, op_start, arg_off + 1, arg_len - 2)  # escapes may fail
            else:
                self.anomaly(A_BAD_TEXT_OPERAND, op_start, 0)
                self.push(K_OTHER, -1, 0, 0)
        elif op == OP_BINSTRING or op == OP_SHORT_BINSTRING:
            self.push(K_STR, arg_off, arg_len, ENC_BYTES)
            self.add_string(arg_off, arg_len, ENC_BYTES)
            self.maybe_nested(arg_off, arg_len)
        elif op == OP_READONLY_BUFFER:
            pass
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
                    self.calls[tp.a].result_use |= USE_BUILT
                    idx = self.add_call(op_start, op, NULL)
                    if idx >= 0:
                        self.calls[idx].callable_index = self.calls[tp.a].callable_index
                else:
                    self.add_call(op_start, op, NULL)
        elif op == OP_REDUCE or op == OP_NEWOBJ:
            b = self.pop(op_start)  # args
            a = self.pop(op_start)  # callable / class
            idx = self.add_call(op_start, op, &a)
            self.note_args(idx, &b)
            self.push(K_CALL, idx, 0, 0)
        elif op == OP_NEWOBJ_EX:
            self.pop(op_start)  # kwargs
            b = self.pop(op_start)  # args
            a = self.pop(op_start)
            idx = self.add_call(op_start, op, &a)
            self.note_args(idx, &b)
            self.push(K_CALL, idx, 0, 0)
        elif op == OP_OBJ:
            k = self.mark_index()
            mask = 0
            if k < 0 or k + 1 >= <int64_t>self.sp:
                self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
                a.kind = K_OTHER
                a.a = -1
            else:
                a = self.stk[k + 1]
                mask = self.kinds_of(k + 2, self.sp)
            self.pop_to_mark(op_start, False)
            idx = self.add_call(op_start, op, &a)
            if idx >= 0:
                self.calls[idx].arg_kinds = mask
            self.push(K_CALL, idx, 0, 0)
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
                k = self.mark_index()
                mask = self.kinds_of(k + 1, self.sp) if k >= 0 else 0
                self.pop_to_mark(op_start, False)
                c.kind = K_GLOBAL
                c.a = idx
                k = self.add_call(op_start, op, &c if idx >= 0 else NULL)
                if k >= 0:
                    self.calls[k].arg_kinds = mask
                self.push(K_CALL, k, 0, 0)
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
        elif op == OP_PROTO:
            if self.proto_seen:
                self.anomaly(A_DUPLICATE_PROTO, op_start, self.p[arg_off])
            elif ops != 1:
                self.anomaly(A_MISPLACED_PROTO, op_start, self.p[arg_off])
            if not self.proto_seen:
                self.cur_proto = self.p[arg_off]
            self.proto_seen = True
        elif op == OP_FRAME:
            ulen = read_le(self.p + arg_off, 8)
            if self.frame_end != NO_FRAME and op_start < self.frame_end:
                self.anomaly(A_NEW_FRAME_INSIDE_FRAME, op_start, self.frame_end)
            if 0 <= self.cur_proto < 4:
                self.anomaly(A_FRAME_IN_OLD_PROTOCOL, op_start, self.cur_proto)
            if ulen > <uint64_t>(self.n - pos):
                self.anomaly(A_FRAME_OVERRUN, op_start, <int64_t>ulen)
                self.frame_end = NO_FRAME
            else:
                self.frame_end = pos + <int64_t>ulen
        elif op == OP_PERSID:
            self.push(K_OTHER, -1, 0, 0)
        elif op == OP_BINPERSID:
            self.pop(op_start)
            self.push(K_OTHER, -1, 0, 0)

    # ---- per-opcode semantics shared by the hot cases and the generic switch -----------

    cdef void frame_check(self, int64_t op_start, int64_t pos) noexcept nogil:
        """An opcode must not straddle the end of its frame (frame_end is NO_FRAME when no
        frame is open, so the hot path is a single comparison)."""
        if pos > self.frame_end:
            if op_start < self.frame_end:
                self.anomaly(A_FRAME_VIOLATION, op_start, self.frame_end)
                # a loader that honours frames reads on from the frame end: parse that too
                self.add_nested(self.frame_end, self.n - self.frame_end, 1)
            self.frame_end = NO_FRAME

    cdef inline void push_value(self) noexcept nogil:
        """A value the walk cannot see into (PERSID, a bad memo key)."""
        self.push(K_OTHER, -1, V_OPAQUE, 0)

    cdef inline void push_plain(self, uint8_t op) noexcept nogil:
        """The value of an opcode that pushes a constant (numbers, None, bools, empty
        containers, bytes): an opaque item tagged with what it is."""
        if op == OP_EMPTY_TUPLE:
            self.push(K_TUPLE, K_OTHER, 0, 0)  # an empty argument tuple: no arguments
        else:
            self.push(K_OTHER, -1, VALUE_OF[op], 0)

    cdef inline void push_str(self, int64_t off, int64_t length, uint8_t enc) noexcept nogil:
        self.push(K_STR, off, length, enc)
        self.add_string(off, length, enc)

    cdef inline void op_pop(self, int64_t op_start) noexcept nogil:
        cdef Item a = self.pop(op_start)
        if a.kind == K_CALL and a.a >= 0:
            self.calls[a.a].discarded = 1

    cdef inline void op_from_mark(self, int64_t op_start, uint8_t op) noexcept nogil:
        """TUPLE, LIST, DICT, FROZENSET: the items above the MARK become one value."""
        cdef int64_t k = self.mark_index()
        cdef Item first
        cdef uint8_t mask = 0
        if op != OP_TUPLE:
            self.pop_to_mark(op_start, False)
            self.push(K_OTHER, -1, V_CONTAINER, 0)
            return
        first.kind = K_OTHER
        first.a = -1
        if k >= 0 and k + 1 < self.sp:
            first = self.stk[k + 1]
            mask = self.kinds_of(k + 1, self.sp)
        self.pop_to_mark(op_start, False)
        self.push_tuple(&first, mask)

    cdef inline void op_tuple_n(self, int64_t op_start, int count) noexcept nogil:
        cdef int _k
        cdef Item first
        cdef Item* it
        cdef uint8_t mask = AK_OPAQUE
        cdef int64_t base = self.sp - count
        if base >= 0 and self.top_mark < base:
            # the usual case (a tensor's size and stride): no MARK among the items, so the
            # tuple replaces them in place, without a pop or a push per item
            it = &self.stk[base]
            mask = self.kinds_of(base, self.sp)
            self.sp = base + 1
            if (it.kind == K_GLOBAL or it.kind == K_CALL) and it.a >= 0:
                it.b = it.a
                it.a = it.kind | (<int64_t>mask << 8)
            else:
                it.a = K_OTHER | (<int64_t>mask << 8)
                it.b = 0
            it.kind = K_TUPLE
            it.enc = 0
            it.from_memo = 0
            return
        first.kind = K_OTHER
        first.a = -1
        if base >= 0:
            first = self.stk[base]
            mask = self.kinds_of(base, self.sp)
        for _k in range(count):
            self.pop(op_start)
        self.push_tuple(&first, mask)

    cdef inline void push_tuple(self, const Item* first, uint8_t mask) noexcept nogil:
        """Argument tuples remember their first item (setattr(target, ...) needs the target)
        and the kinds of all their items (call shapes)."""
        if (first.kind == K_GLOBAL or first.kind == K_CALL) and first.a >= 0:
            self.push(K_TUPLE, first.kind | (<int64_t>mask << 8), first.a, 0)
        else:
            self.push(K_TUPLE, K_OTHER | (<int64_t>mask << 8), 0, 0)

    cdef inline uint8_t kinds_of(self, int64_t lo, int64_t hi) noexcept nogil:
        """AK_* mask of the stack items lo..hi-1 (two table lookups per item: tuples are
        built for every tensor)."""
        cdef uint8_t mask = 0
        cdef int64_t i
        cdef const Item* it
        for i in range(lo, hi):
            it = &self.stk[i]
            if it.kind == K_OTHER:
                mask |= VALUE_BIT[it.b & 7]
            else:
                mask |= KIND_BIT[it.kind & 7]
        return mask

    cdef inline void note_args(self, int64_t call, const Item* args) noexcept nogil:
        """REDUCE/NEWOBJ/NEWOBJ_EX: the first argument and the kinds of all of them."""
        if call < 0:
            return
        if args.kind == K_TUPLE:
            self.calls[call].first_arg_kind = <uint8_t>(args.a & 0xFF)
            self.calls[call].first_arg_index = args.b
            self.calls[call].arg_kinds = <uint8_t>((args.a >> 8) & 0xFF)
            if (args.a & 0xFF) == K_CALL and 0 <= args.b < <int64_t>self.calls.size():
                self.calls[args.b].result_use |= USE_ARGUMENT
        else:
            self.calls[call].arg_kinds = AK_OPAQUE

    cdef inline void mark_filled(self) noexcept nogil:
        """The item now on top received items (APPEND(S), ADDITEMS, SETITEM(S))."""
        cdef const Item* it
        if self.sp > 0:
            it = &self.stk[self.sp - 1]
            if it.kind == K_CALL and it.a >= 0:
                self.calls[it.a].result_use |= USE_FILLED

    cdef inline void op_append(self, int64_t op_start) noexcept nogil:
        self.pop(op_start)
        if self.sp == 0:
            self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
        else:
            self.mark_filled()

    cdef inline void op_appends(self, int64_t op_start) noexcept nogil:
        """APPENDS, ADDITEMS."""
        self.pop_to_mark(op_start, False)
        if self.sp == 0:
            self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
        else:
            self.mark_filled()

    cdef inline void op_setitem(self, uint8_t op, int64_t op_start) noexcept nogil:
        """SETITEM, SETITEMS: flags a store into an imported object."""
        if op == OP_SETITEM:
            self.pop(op_start)
            self.pop(op_start)
        else:
            self.pop_to_mark(op_start, False)
        if self.sp == 0:
            self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
        elif self.stk[self.sp - 1].kind == K_GLOBAL:
            self.anomaly(A_SETITEM_ON_GLOBAL, op_start, self.stk[self.sp - 1].a)
        else:
            self.mark_filled()

    cdef inline void text_memo(self, uint8_t op, int64_t op_start, int64_t arg_off,
                               int64_t arg_len) noexcept nogil:
        """PUT, GET: protocol-0 memo opcodes with a decimal key."""
        cdef int64_t key = self.decimal_key(arg_off, arg_len)
        if key < 0:
            self.anomaly(A_BAD_MEMO_KEY, op_start, 0)
            if op == OP_GET:
                self.push_value()
        elif op == OP_PUT:
            self.memo_put(key, op_start)
        else:
            self.memo_get(key, op_start)

    cdef inline void push_unicode(self, int64_t op_start, int64_t arg_off,
                                  int64_t arg_len) noexcept nogil:
        """UNICODE: raw-unicode-escape text up to the newline (a \\r before it is part of the
        text, as for the loader); only a backslash escape can make the loader raise."""
        self.push_str(arg_off, arg_len, ENC_RAW_UNICODE)
        self.maybe_nested_text(arg_off, arg_len, ENC_RAW_UNICODE)
        if fastscan_has_byte(self.p + arg_off, arg_len, 92):
            self.check_text(OP_UNICODE, op_start, arg_off, arg_len)

    cdef inline void push_number(self, uint8_t op, int64_t op_start, int64_t arg_off,
                                 int64_t arg_len) noexcept nogil:
        """INT, LONG, FLOAT: an opaque value tagged as a number. Text that is not plainly valid
        is queued for `loader_rejects_number`, which asks CPython's own parsers whether the
        loader raises."""
        if not plain_number(op, self.p + arg_off, arg_len):
            self.check_text(op, op_start, arg_off, arg_len)
        self.push(K_OTHER, -1, V_NUMBER, 0)

    cdef void check_text(self, uint8_t op, int64_t op_start, int64_t off,
                         int64_t length) noexcept nogil:
        """Queue an operand for the exact check after the walk (bounded per buffer)."""
        cdef TextRec t
        if <int64_t>self.texts.size() >= MAX_TEXT_CHECKS:
            return
        t.op = op
        t.op_start = op_start
        t.off = off
        t.length = length
        t.pickle_index = self.cur_pickle
        self.texts.push_back(t)

    cdef inline void op_stop(self, int64_t op_start) noexcept nogil:
        if self.sp > 1:
            self.anomaly(A_STOP_WITH_STACK, op_start, self.sp)

    # ---- one pickle --------------------------------------------------------------------

    cdef OpResult generic_op(self, uint8_t op, int64_t op_start, int64_t ops) noexcept nogil:
        """Any opcode, table-driven: argument extent, frame, count, semantics. Out of line: the
        loop in walk_one handles the frequent opcodes itself and calls this for the rest."""
        cdef int64_t pos = op_start + 1
        cdef int64_t arg_off, arg_len, nl
        cdef uint8_t kind
        cdef ArgSpan span
        cdef OpResult res
        res.status = G_NEXT
        res.pos = op_start
        kind = ARG_KIND[op]
        arg_off = pos
        if kind <= ARG_FIXED:  # ARG_FIXED_LEN is 0 for ARG_NONE
            arg_len = ARG_FIXED_LEN[op]
            if arg_len > self.n - pos:
                res.status = R_TRUNCATED
                return res
            pos += arg_len
        elif kind == ARG_LINE:  # protocol 0: ints, floats, memo keys, text strings
            nl = fastscan_find_nl(self.p, pos, self.n)
            if nl < 0:
                res.status = R_TRUNCATED
                return res
            arg_len = nl - pos
            pos = nl + 1
        elif kind == ARG_LEN1:  # short strings and bytes
            if pos >= self.n or self.p[pos] > self.n - pos - 1:
                res.status = R_TRUNCATED
                return res
            arg_len = self.p[pos]
            arg_off = pos + 1
            pos = arg_off + arg_len
        elif kind == ARG_INVALID:
            res.status = R_BAD_OPCODE
            return res
        else:
            span = self.var_arg(kind, pos, op_start)
            if span.status != R_STOP:
                res.status = span.status
                return res
            arg_off = span.off
            arg_len = span.length
            pos = span.end
        self.frame_check(op_start, pos)
        self.pcounts[op] += 1
        if op == OP_BINUNICODE or op == OP_SHORT_BINUNICODE or op == OP_BINUNICODE8:
            self.push_str(arg_off, arg_len, ENC_UTF8)
            self.maybe_nested_text(arg_off, arg_len, ENC_UTF8)
        elif op == OP_UNICODE:
            self.push_unicode(op_start, arg_off, arg_len)
        elif op == OP_INT or op == OP_LONG or op == OP_FLOAT:
            self.push_number(op, op_start, arg_off, arg_len)
        elif op == OP_BINBYTES or op == OP_SHORT_BINBYTES or op == OP_BINBYTES8 \
                or op == OP_BYTEARRAY8:
            self.payload_bytes += arg_len
            self.maybe_nested(arg_off, arg_len)
            self.push(K_OTHER, -1, V_BYTES, 0)
        elif op == OP_PUT or op == OP_GET:
            self.text_memo(op, op_start, arg_off, arg_len)
        elif op == OP_BINPUT:
            self.memo_put(self.p[arg_off], op_start)
        elif op == OP_LONG_BINPUT:
            self.memo_put(<int64_t>read_le(self.p + arg_off, 4), op_start)
        elif op == OP_MEMOIZE:
            self.memo_put(self.memo_size, op_start)
        elif op == OP_BINGET:
            self.memo_get(self.p[arg_off], op_start)
        elif op == OP_LONG_BINGET:
            self.memo_get(<int64_t>read_le(self.p + arg_off, 4), op_start)
        elif op == OP_MARK:
            self.push(K_MARK, 0, 0, 0)
        elif op == OP_STOP:
            self.op_stop(op_start)
            res.status = R_STOP
        elif op == OP_POP:
            self.op_pop(op_start)
        elif op == OP_TUPLE or op == OP_LIST or op == OP_DICT or op == OP_FROZENSET:
            self.op_from_mark(op_start, op)
        elif op == OP_TUPLE1 or op == OP_TUPLE2 or op == OP_TUPLE3:
            self.op_tuple_n(op_start, op - OP_TUPLE1 + 1)
        elif op == OP_APPEND:
            self.op_append(op_start)
        elif op == OP_APPENDS or op == OP_ADDITEMS:
            self.op_appends(op_start)
        elif op == OP_SETITEM or op == OP_SETITEMS:
            self.op_setitem(op, op_start)
        elif op == OP_POP_MARK or op == OP_DUP or op == OP_STRING or op == OP_BINSTRING \
                or op == OP_SHORT_BINSTRING or op == OP_READONLY_BUFFER \
                or op == OP_BUILD or op == OP_REDUCE or op == OP_NEWOBJ \
                or op == OP_NEWOBJ_EX or op == OP_OBJ or op == OP_GLOBAL or op == OP_INST \
                or op == OP_STACK_GLOBAL or op == OP_EXT1 or op == OP_EXT2 \
                or op == OP_EXT4 or op == OP_PROTO or op == OP_FRAME or op == OP_PERSID \
                or op == OP_BINPERSID:
            self.rare_op(op, op_start, arg_off, arg_len, pos, ops)
        else:
            # every remaining opcode pushes one constant (ints, floats, None, bools,
            # empty containers, NEXT_BUFFER), tagged with its kind
            self.push_plain(op)
        res.pos = pos
        return res

    cdef int walk_one(self, int64_t start, int64_t* end_out) noexcept nogil:
        """Walk the pickle at `start` to its STOP (R_STOP) or first failure; end_out gets the
        offset after the STOP, or of the opcode that failed.

        Written for speed, since it runs once per opcode. The frequent opcodes each have a case
        that knows its argument size as a constant, so finding the next opcode waits on a
        predicted jump instead of a table lookup (the size tables were the critical path); one
        comparison with `lim` catches both a cut argument and the end of a frame; the fast paths
        of the memo are written out, as gcc stops inlining helpers into a function this large.
        Every other opcode goes through `generic_op`, which is table-driven and complete.
        """
        cdef int64_t pos = start
        cdef int64_t op_start, arg_off, arg_len, nl
        cdef uint8_t op
        cdef int r = R_STOP
        cdef int64_t end = start
        cdef int64_t ops = 0  # opcodes of this pickle (a local, so it stays in a register)
        cdef int64_t ops_left = self.max_opcodes - self.n_ops
        cdef bint arg_failed = False
        cdef int64_t key
        cdef Item* tp
        cdef int64_t lim = self.n  # min(buffer end, end of the open frame): one comparison
        cdef OpResult res
        self.sp = 0
        self.top_mark = -1
        self.frame_end = NO_FRAME
        self.proto_seen = False
        self.memo_len = 0
        if not self.memo_sparse.empty():
            self.memo_sparse.clear()
        self.memo_size = 0
        memset(self.pcounts, 0, sizeof(self.pcounts))
        memset(self.anom_seen, 0, sizeof(self.anom_seen))
        self.cur_proto = -1
        while True:
            op_start = pos
            if pos >= self.n:
                end = pos
                r = R_TRUNCATED
                break
            op = self.p[pos]
            pos += 1
            # counted up front; undone below when the argument turns out to be cut or invalid
            ops += 1
            if ops > ops_left:
                self.budget_hit = True
            # -- hot opcodes: each case knows its argument size as a constant (HOT_LAYOUT,
            # checked against the opcode table at import), so the next opcode's offset does not
            # wait on a table lookup; only the predicted indirect jump depends on the byte --
            if op == OP_MEMOIZE:
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                # memo_put's fast path written out (gcc stops inlining into a function this
                # large): the next dense key, and no sparse key that could shadow it
                if self.sp > 0 and self.memo_size == self.memo_len \
                        and self.memo_len < self.memo_cap and self.memo_size < self.max_memo \
                        and self.memo_sparse.empty():
                    memo_pack(&self.memo_dense[self.memo_len], &self.stk[self.sp - 1])
                    self.memo_len += 1
                    self.memo_size += 1
                    self.memo_puts += 1
                else:
                    self.memo_put(self.memo_size, op_start)
            elif op == OP_MARK:
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.push(K_MARK, 0, 0, 0)
            elif op == OP_NONE or op == OP_NEWTRUE or op == OP_NEWFALSE or op == OP_EMPTY_LIST \
                    or op == OP_EMPTY_DICT or op == OP_EMPTY_TUPLE or op == OP_EMPTY_SET:
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.push_plain(op)
            elif op == OP_APPENDS or op == OP_ADDITEMS:
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.op_appends(op_start)
            elif op == OP_SETITEMS or op == OP_SETITEM:
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.op_setitem(op, op_start)
            elif op == OP_APPEND:
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.op_append(op_start)
            elif op == OP_TUPLE1 or op == OP_TUPLE2 or op == OP_TUPLE3:
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.op_tuple_n(op_start, op - OP_TUPLE1 + 1)
            elif op == OP_TUPLE or op == OP_LIST or op == OP_DICT or op == OP_FROZENSET:
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.op_from_mark(op_start, op)
            elif op == OP_POP:
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.op_pop(op_start)
            elif op == OP_BINGET:
                pos += 1
                if pos > lim:
                    if pos > self.n:
                        arg_failed = True
                        end = op_start
                        r = R_TRUNCATED
                        break
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                key = self.p[pos - 1]
                # memo_get's fast path written out: a dense slot, and room on the stack
                if key < self.memo_len and memo_kind(&self.memo_dense[key]) != K_ABSENT \
                        and self.sp < self.cap:
                    tp = self.stk + self.sp
                    self.sp += 1
                    if self.sp > self.max_depth:
                        self.max_depth = self.sp
                    memo_unpack(tp, &self.memo_dense[key])
                    if tp.kind == K_MARK:
                        self.link_mark(tp)
                    self.memo_gets += 1
                else:
                    self.memo_get(key, op_start)
            elif op == OP_BINPUT:
                pos += 1
                if pos > lim:
                    if pos > self.n:
                        arg_failed = True
                        end = op_start
                        r = R_TRUNCATED
                        break
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.memo_put(self.p[pos - 1], op_start)
            elif op == OP_BININT1:
                pos += 1
                if pos > lim:
                    if pos > self.n:
                        arg_failed = True
                        end = op_start
                        r = R_TRUNCATED
                        break
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.push(K_OTHER, -1, V_NUMBER, 0)
            elif op == OP_BININT2:
                pos += 2
                if pos > lim:
                    if pos > self.n:
                        arg_failed = True
                        end = op_start
                        r = R_TRUNCATED
                        break
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.push(K_OTHER, -1, V_NUMBER, 0)
            elif op == OP_BININT:
                pos += 4
                if pos > lim:
                    if pos > self.n:
                        arg_failed = True
                        end = op_start
                        r = R_TRUNCATED
                        break
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.push(K_OTHER, -1, V_NUMBER, 0)
            elif op == OP_BINFLOAT:
                pos += 8
                if pos > lim:
                    if pos > self.n:
                        arg_failed = True
                        end = op_start
                        r = R_TRUNCATED
                        break
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.push(K_OTHER, -1, V_NUMBER, 0)
            elif op == OP_STOP:
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                self.op_stop(op_start)
                end = pos
                r = R_BUDGET if self.budget_hit else R_STOP
                break
            elif op == OP_SHORT_BINUNICODE or op == OP_SHORT_BINBYTES:
                if pos >= self.n or self.p[pos] > self.n - pos - 1:
                    arg_failed = True
                    end = op_start
                    r = R_TRUNCATED
                    break
                arg_off = pos + 1
                arg_len = self.p[pos]
                pos = arg_off + arg_len
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                if op == OP_SHORT_BINUNICODE:
                    self.push_str(arg_off, arg_len, ENC_UTF8)
                    self.maybe_nested_text(arg_off, arg_len, ENC_UTF8)
                else:
                    self.payload_bytes += arg_len
                    self.maybe_nested(arg_off, arg_len)
                    self.push(K_OTHER, -1, V_BYTES, 0)
            elif op == OP_INT or op == OP_FLOAT or op == OP_LONG or op == OP_GET or op == OP_PUT \
                    or op == OP_UNICODE:
                # protocol 0: a newline-terminated argument
                nl = fastscan_find_nl(self.p, pos, self.n)
                if nl < 0:
                    arg_failed = True
                    end = op_start
                    r = R_TRUNCATED
                    break
                arg_off = pos
                arg_len = nl - pos
                pos = nl + 1
                if pos > lim:
                    self.frame_check(op_start, pos)
                    lim = min(self.n, self.frame_end)
                self.pcounts[op] += 1
                if op == OP_GET or op == OP_PUT:
                    self.text_memo(op, op_start, arg_off, arg_len)
                elif op == OP_UNICODE:
                    self.push_unicode(op_start, arg_off, arg_len)
                else:
                    self.push_number(op, op_start, arg_off, arg_len)
            else:
                res = self.generic_op(op, op_start, ops)
                pos = res.pos
                lim = min(self.n, self.frame_end)  # a FRAME may have opened one
                if res.status != G_NEXT:
                    if res.status == R_STOP:
                        end = pos
                        r = R_BUDGET if self.budget_hit else R_STOP
                    else:
                        arg_failed = True
                        end = op_start
                        r = res.status
                    break
            if self.budget_hit:
                end = pos
                r = R_BUDGET
                break
        if arg_failed:
            # the cut or invalid opcode does not count (and cannot have exhausted the budget:
            # the flag is clear at the start of every opcode)
            ops -= 1
            self.budget_hit = False
        self.n_ops += ops
        end_out[0] = end
        return r

    # ---- the whole buffer --------------------------------------------------------------

    cdef bint importable_global_since(self, size_t g0) noexcept nogil:
        """Whether a global recorded from index g0 on names a module and attribute by identifier."""
        cdef size_t i
        cdef GlobalRec* g
        for i in range(g0, self.globals_.size()):
            g = &self.globals_[i]
            if g.mod_off >= 0 and g.name_off >= 0 \
                    and is_ident_span(self.p + g.mod_off, g.mod_len) \
                    and is_ident_span(self.p + g.name_off, g.name_len):
                return True
        return False

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
        cdef size_t g0, c0, s0, n0, a0, t0
        cdef int64_t ops0, nstr0, long0, pay0, puts0, gets0, drop0
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
            t0 = self.texts.size()
            ops0 = self.n_ops
            nstr0 = self.n_strings
            long0 = self.long_strings
            pay0 = self.payload_bytes
            puts0 = self.memo_puts
            gets0 = self.memo_gets
            drop0 = self.nested_dropped
            self.cur_pickle = <int32_t>self.pickle_offsets.size()
            r = self.walk_one(cand, &end)
            if first:
                # a broken first pickle still counts when it imported something or ran a while
                accept = (r == R_STOP and self.n_ops - ops0 >= 1) or self.globals_.size() > g0 \
                    or self.n_ops - ops0 >= 8 or r == R_BUDGET \
                    or (self.n_ops - ops0 >= 1 and self.p[cand] == 0x80 and self.p[cand + 1] <= 5)
            else:
                # a later pickle found by resynchronisation must end cleanly or import a name a
                # loader could resolve: tensor bytes often contain "(c" or "c...\n" by chance
                accept = (r == R_STOP and self.n_ops - ops0 >= 3) \
                    or self.importable_global_since(g0) or r == R_BUDGET
            if not accept:
                self.globals_.resize(g0)
                self.calls.resize(c0)
                self.strings.resize(s0)
                self.nested.resize(n0)
                self.anomalies.resize(a0)
                self.texts.resize(t0)
                self.resync_ops += self.n_ops - ops0
                self.n_ops = ops0
                self.n_strings = nstr0
                self.long_strings = long0
                self.payload_bytes = pay0
                self.memo_puts = puts0
                self.memo_gets = gets0
                self.nested_dropped = drop0
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

    def call_list(self, tuple names, type cls):
        """`cls` (facts.CallSite) records, opcode as its name from `names`."""
        cdef CallRec c
        check_record_type(cls)
        out = []
        for c in self.calls:
            r = new_record(cls, 11)
            set_field(r, 0, names[c.opcode])
            set_field(r, 1, c.offset)
            set_field(r, 2, c.pickle_index)
            set_field(r, 3, c.callable_index)
            set_field(r, 4, c.discarded != 0)
            set_field(r, 5, c.callable_is_call != 0)
            set_field(r, 6, c.callable_call_index)
            set_field(r, 7, c.first_arg_index if c.first_arg_kind == K_GLOBAL else -1)
            set_field(r, 8, c.first_arg_index if c.first_arg_kind == K_CALL else -1)
            set_field(r, 9, c.arg_kinds)
            set_field(r, 10, c.result_use)
            out.append(r)
        return out

    def string_list(self):
        cdef Span s
        return [(s.offset, s.length, s.enc) for s in self.strings]

    cdef object fast_text(self, int64_t off, int64_t length, uint8_t enc):
        """The decoded text, or None when the fallback must decide (rare encodings, errors)."""
        cdef PyObject* raw = NULL
        if enc == ENC_UTF8 or enc == ENC_BYTES:
            raw = PyUnicode_DecodeUTF8(<const char*>self.p + off, length, NULL)
        elif enc == ENC_RAW_UNICODE:
            raw = PyUnicode_DecodeRawUnicodeEscape(<const char*>self.p + off, length, NULL)
        else:
            return None
        if raw == NULL:
            PyErr_Clear()
            return None
        text = <object>raw
        Py_DECREF(text)  # <object> took a reference of its own
        return text

    def text(self, int64_t off, int64_t length, int enc, fallback):
        """(text, decoded_cleanly) for a span; fallback(raw: bytes, enc) decides the hard cases."""
        text = self.fast_text(off, length, <uint8_t>enc)
        if text is not None:
            return text, True
        return fallback(bytes(self.view[off:off + length]), enc)

    def string_texts(self, fallback):
        """The kept strings decoded in one pass, without a bytes copy each (see `text`)."""
        cdef Span s
        cdef Py_ssize_t i
        out = [None] * <Py_ssize_t>self.strings.size()
        for i in range(<Py_ssize_t>self.strings.size()):
            s = self.strings[i]
            text = self.fast_text(s.offset, s.length, s.enc)
            if text is None:
                text = fallback(bytes(self.view[s.offset:s.offset + s.length]), s.enc)[0]
            out[i] = text
        return tuple(out)

    def encoded_candidates(self):
        """Indices of kept strings that may hold a base64 or hex pickle: a superset, checked
        exactly in Python. Such text has >= 12 characters and its first non-space character is
        'g' (base64 of PROTO) or '8' (hex); decoding never makes text longer than its bytes."""
        cdef Span s
        cdef Py_ssize_t i
        cdef int64_t j
        cdef const uint8_t* q
        out = []
        for i in range(<Py_ssize_t>self.strings.size()):
            s = self.strings[i]
            if s.length < 12:
                continue
            if s.enc == ENC_UTF8 or s.enc == ENC_BYTES:
                q = self.p + s.offset
                j = 0
                while j < s.length and is_ascii_space(q[j]):
                    j += 1
                # a non-ASCII byte may decode to Unicode whitespace: keep it for the exact check
                if j == s.length or (q[j] < 0x80 and q[j] != 103 and q[j] != 56):
                    continue
            out.append(i)
        return out

    def text_checks(self):
        """(op_start, pickle_index, opcode, offset, length) of the operands queued for an exact
        check (see `loader_rejects_number`; strings are checked by the Python layer)."""
        cdef TextRec t
        return [(t.op_start, t.pickle_index, t.op, t.off, t.length) for t in self.texts]

    def nested_list(self):
        cdef Span s
        return [(s.offset, s.length, s.enc) for s in self.nested]

    def anomaly_list(self):
        cdef AnomRec a
        return [(a.code, a.offset, a.pickle_index, a.detail) for a in self.anomalies]
