# Per-opcode semantics shared by the hot cases and the generic switch (included by
# _tokenizer.pyx).


@cython.internal
cdef class _WalkerOps(_WalkerState):
    """Per-opcode semantics; see _tok_stack.pxi for the chain."""

    @cython.final
    cdef void frame_check(self, int64_t op_start, int64_t pos) noexcept nogil:
        """An opcode must not straddle the end of its frame (frame_end is NO_FRAME when no
        frame is open, so the hot path is a single comparison)."""
        if pos > self.frame_end:
            if op_start < self.frame_end:
                self.anomaly(A_FRAME_VIOLATION, op_start, self.frame_end)
                # a loader that honours frames reads on from the frame end: parse that too
                self.add_nested(self.frame_end, self.n - self.frame_end, 1)
            self.frame_end = NO_FRAME

    @cython.final
    cdef inline void push_value(self) noexcept nogil:
        """A value the walk cannot see into (PERSID, a bad memo key)."""
        self.push(K_OTHER, -1, V_OPAQUE, 0)

    @cython.final
    cdef inline void push_plain(self, uint8_t op) noexcept nogil:
        """The value of an opcode that pushes a constant (numbers, None, bools, empty
        containers, bytes): an opaque item tagged with what it is."""
        if op == OP_EMPTY_TUPLE:
            self.push(K_TUPLE, K_OTHER, 0, 0)  # an empty argument tuple: no arguments
        else:
            self.push(K_OTHER, -1, VALUE_OF[op], 0)

    @cython.final
    cdef inline void push_str(self, int64_t off, int64_t length, uint8_t enc) noexcept nogil:
        self.push(K_STR, off, length, enc)
        self.add_string(off, length, enc)

    @cython.final
    cdef inline void op_pop(self, int64_t op_start) noexcept nogil:
        cdef Item a = self.pop(op_start)
        if a.kind == K_CALL and a.a >= 0:
            self.calls[a.a].discarded = 1

    @cython.final
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

    @cython.final
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

    @cython.final
    cdef inline void push_tuple(self, const Item* first, uint8_t mask) noexcept nogil:
        """Argument tuples remember their first item (setattr(target, ...) needs the target)
        and the kinds of all their items (call shapes)."""
        if (first.kind == K_GLOBAL or first.kind == K_CALL) and first.a >= 0:
            self.push(K_TUPLE, first.kind | (<int64_t>mask << 8), first.a, 0)
        else:
            self.push(K_TUPLE, K_OTHER | (<int64_t>mask << 8), 0, 0)

    @cython.final
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

    @cython.final
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

    @cython.final
    cdef inline void mark_filled(self) noexcept nogil:
        """The item now on top received items (APPEND(S), ADDITEMS, SETITEM(S))."""
        cdef const Item* it
        if self.sp > 0:
            it = &self.stk[self.sp - 1]
            if it.kind == K_CALL and it.a >= 0:
                self.calls[it.a].result_use |= USE_FILLED

    @cython.final
    cdef inline void op_append(self, int64_t op_start) noexcept nogil:
        self.pop(op_start)
        if self.sp == 0:
            self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
        else:
            self.mark_filled()

    @cython.final
    cdef inline void op_appends(self, int64_t op_start) noexcept nogil:
        """APPENDS, ADDITEMS."""
        self.pop_to_mark(op_start, False)
        if self.sp == 0:
            self.anomaly(A_STACK_UNDERFLOW, op_start, 0)
        else:
            self.mark_filled()

    @cython.final
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

    @cython.final
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

    @cython.final
    cdef inline void push_unicode(self, int64_t op_start, int64_t arg_off,
                                  int64_t arg_len) noexcept nogil:
        """UNICODE: raw-unicode-escape text up to the newline (a \\r before it is part of the
        text, as for the loader); only a backslash escape can make the loader raise."""
        self.push_str(arg_off, arg_len, ENC_RAW_UNICODE)
        self.maybe_nested_text(arg_off, arg_len, ENC_RAW_UNICODE)
        if fastscan_has_byte(self.p + arg_off, arg_len, 92):
            self.check_text(OP_UNICODE, op_start, arg_off, arg_len)

    @cython.final
    cdef inline void push_number(self, uint8_t op, int64_t op_start, int64_t arg_off,
                                 int64_t arg_len) noexcept nogil:
        """INT, LONG, FLOAT: an opaque value tagged as a number. Text that is not plainly valid
        is queued for `loader_rejects_number`, which asks CPython's own parsers whether the
        loader raises."""
        if not plain_number(op, self.p + arg_off, arg_len):
            self.check_text(op, op_start, arg_off, arg_len)
        self.push(K_OTHER, -1, V_NUMBER, 0)

    @cython.final
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

    @cython.final
    cdef inline void op_stop(self, int64_t op_start) noexcept nogil:
        if self.sp > 1:
            self.anomaly(A_STOP_WITH_STACK, op_start, self.sp)
