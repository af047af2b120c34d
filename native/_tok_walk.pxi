# The walk of the whole buffer: pickle after pickle, resynchronising over junk (included by
# _tokenizer.pyx).


@cython.internal
cdef class _WalkerBuffer(_WalkerHot):
    """run_nogil; see _tok_stack.pxi for the chain."""

    @cython.final
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

    @cython.final
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

    @cython.final
    cdef void snapshot_counts(self, bint accept) noexcept nogil:
        cdef int i
        if accept:
            for i in range(256):
                self.counts[i] += self.pcounts[i]

    @cython.final
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
                accept = (r == R_OK and self.n_ops - ops0 >= 1) or self.globals_.size() > g0 \
                    or self.n_ops - ops0 >= 8 or r == R_BUDGET \
                    or (self.n_ops - ops0 >= 1 and self.p[cand] == 0x80 and self.p[cand + 1] <= 5)
            else:
                # a later pickle found by resynchronisation must end cleanly or import a name a
                # loader could resolve: tensor bytes often contain "(c" or "c...\n" by chance
                accept = (r == R_OK and self.n_ops - ops0 >= 3) \
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
            if r != R_OK and self.status == R_OK:
                self.status = r
                self.error_offset = end
            if r == R_OK:
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
