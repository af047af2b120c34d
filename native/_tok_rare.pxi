# The rare-opcode path: every opcode, table-driven (variable operands, rare_op's semantics
# and generic_op, which walk_one falls back to); included by _tokenizer.pyx.


@cython.internal
cdef class _WalkerRare(_WalkerOps):
    """The table-driven path; see _tok_stack.pxi for the chain."""

    @cython.final
    cdef ArgSpan var_arg(self, uint8_t kind, int64_t pos, int64_t op_start) noexcept nogil:
        """Extent of a line or length-prefixed argument starting at pos (status R_OK if whole)."""
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
            out.status = R_OK
            return out
        elif kind == ARG_LINE2:
            nl = self.find_nl(pos)
            nl2 = self.find_nl(nl + 1) if nl >= 0 else -1
            if nl2 < 0:
                return out
            out.length = nl2 - pos
            out.end = nl2 + 1
            out.status = R_OK
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
        out.status = R_OK
        return out

    @cython.final
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

    @cython.final
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
            if span.status != R_OK:
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
            res.status = R_OK
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
