# The Walker's Python surface: construction, run, and results as plain Python objects
# (included by _tokenizer.pyx).


@cython.final
cdef class Walker(_WalkerBuffer):
    """Walks every pickle in one buffer; `run()` then `result()`."""

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
        self.status = R_OK
        self.error_offset = -1
        self.budget = ""

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
