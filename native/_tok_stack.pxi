# The Walker's state, and the helpers every opcode uses: anomalies, the symbolic stack,
# records (strings, nested regions, globals, calls) and the memo (included by _tokenizer.pyx).
# The Walker is a chain of internal classes, one per .pxi, because Cython refuses `include` in a
# class body; every method is final, so calls stay direct C calls as in one final class.


@cython.internal
cdef class _WalkerState:
    """State of one walk; the base of Walker."""

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

    def __dealloc__(self):
        free(self.stk)
        free(self.memo_dense)

    # ---- small helpers (all nogil, never fail) -------------------------------------------

    @cython.final
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

    @cython.final
    cdef inline Item* grow(self) noexcept nogil:
        """A fresh slot on top of the stack, or NULL (budget) when the stack is full."""
        cdef int64_t sp = self.sp
        if sp >= self.cap:
            return self.grow_slow()
        self.sp = sp + 1
        if sp + 1 > self.max_depth:
            self.max_depth = sp + 1
        return self.stk + sp

    @cython.final
    cdef Item* grow_slow(self) noexcept nogil:
        if not self.grow_stack():
            return NULL
        self.sp += 1
        if self.sp > self.max_depth:
            self.max_depth = self.sp
        return &self.stk[self.sp - 1]

    @cython.final
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

    @cython.final
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

    @cython.final
    cdef inline void link_mark(self, Item* it) noexcept nogil:
        """Make the just-pushed MARK `it` the topmost one; its `a` keeps the one below, so
        finding the topmost MARK is O(1) instead of a scan down the stack."""
        it.a = self.top_mark
        self.top_mark = it - self.stk

    @cython.final
    cdef inline Item pop(self, int64_t offset) noexcept nogil:
        if self.sp == 0:
            return self.pop_empty(offset)
        self.sp -= 1
        if self.sp == self.top_mark:
            self.top_mark = self.stk[self.sp].a
        return self.stk[self.sp]

    @cython.final
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

    @cython.final
    cdef inline int64_t mark_index(self) noexcept nogil:
        return self.top_mark

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
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

    @cython.final
    cdef inline int64_t find_nl(self, int64_t pos) noexcept nogil:
        return fastscan_find_nl(self.p, pos, self.n)
