# cython: language_level=3
# distutils: language = c++
"""Native helpers for `fastscan.features`: the loops that dominate feature extraction.

The model was trained on rows from the plain Python/numpy code, so every helper reproduces it
bit for bit, not approximately (tests/features/test_features_native_equals_spec.py checks each):

- `string_stats` returns what tests/specs/string_stats.py (the executable spec) computes:
  lengths, control characters, Shannon entropy per string, and the number of non-overlapping
  matches of each `features.STRING_PATTERNS` regex over "\\n".join(strings), in one call
  instead of eight regex scans. Every pattern is a hand-written matcher that follows the regex
  engine step by step (same alternative order, same greedy backtracking, same Unicode classes
  as `re` for str patterns: \\w = isalnum or '_', \\d = isdecimal, \\s = Py_UNICODE_ISSPACE);
  hypothesis compares the counts with re.findall. The matchers live in _string_patterns.pxi.
  Entropy is summed in the same float64 order as the Python code: up to SMALL_ENTROPY strings
  with libm log2 in first-seen byte order (like collections.Counter); above that with numpy's
  log2 (passed in: its SIMD log2 differs from libm in the last bit) and numpy's pairwise
  summation over the 256 byte counts.
- `opcode_groups`, `global_counts`, `call_counts`: the per-opcode, per-global and per-call
  loops, writing Python ints into the caller's lists.
- `float32_row`: the list of Python numbers -> float32 row, with numpy's cast and nan_to_num.
- `contains_folded`: the rules engine's string pre-filter (any needle in any string, with every
  character folded the way `re.IGNORECASE` and `\\s` see it); it lives in _string_patterns.pxi.
"""

from libc.math cimport isinf, isnan, log2
from libc.stdint cimport uint32_t
from libc.string cimport memset, strlen
from libcpp.vector cimport vector

import numpy as _numpy

# Code points as plain C integers (Cython's own Py_UCS4 type converts to str objects).
ctypedef uint32_t ucs4

cdef extern from "Python.h":
    bint Py_UNICODE_ISALNUM(ucs4 ch) nogil
    bint Py_UNICODE_ISDECIMAL(ucs4 ch) nogil
    bint Py_UNICODE_ISSPACE(ucs4 ch) nogil
    Py_ssize_t PyUnicode_GET_LENGTH(object u)
    double PyFloat_AsDouble(object o) except? -1.0
    ucs4* PyUnicode_AsUCS4(object u, ucs4* buffer, Py_ssize_t buflen, int copy_null) except NULL
    int PyUnicode_KIND(object u)
    const void* PyUnicode_DATA(object u)
    ucs4 PyUnicode_READ(int kind, const void* data, Py_ssize_t index) nogil

# Must match features: _ENTROPY_MIN_LEN, _SMALL_ENTROPY, _HIGH_ENTROPY.
cdef enum:
    ENTROPY_MIN_LEN = 8
    SMALL_ENTROPY = 6
    PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE
cdef double HIGH_ENTROPY = 4.5

# features._ENTROPY_MIN_LEN, _SMALL_ENTROPY, _HIGH_ENTROPY (checked by the tests)
ENTROPY_CONSTANTS = (ENTROPY_MIN_LEN, SMALL_ENTROPY, HIGH_ENTROPY)


include "_string_patterns.pxi"


# -- entropy -------------------------------------------------------------------------------------

cdef inline int utf8_bytes(ucs4 c, unsigned char* out) noexcept nogil:
    """UTF-8 (surrogates encoded like any code point: errors="surrogatepass")."""
    if c < 0x80:
        out[0] = c
        return 1
    if c < 0x800:
        out[0] = 0xC0 | (c >> 6)
        out[1] = 0x80 | (c & 0x3F)
        return 2
    if c < 0x10000:
        out[0] = 0xE0 | (c >> 12)
        out[1] = 0x80 | ((c >> 6) & 0x3F)
        out[2] = 0x80 | (c & 0x3F)
        return 3
    out[0] = 0xF0 | (c >> 18)
    out[1] = 0x80 | ((c >> 12) & 0x3F)
    out[2] = 0x80 | ((c >> 6) & 0x3F)
    out[3] = 0x80 | (c & 0x3F)
    return 4


cdef Py_ssize_t byte_histogram(const ucs4* t, Py_ssize_t n, Py_ssize_t* counts,
                               unsigned char* order, int* n_order) noexcept nogil:
    """Add the UTF-8 bytes of t[:n] to `counts` (all zero on entry: clear them with
    clear_histogram) and list the byte values in first-seen order; returns the byte total."""
    cdef unsigned char enc[4]
    cdef Py_ssize_t i, total = 0
    cdef int k, m
    cdef ucs4 c
    n_order[0] = 0
    for i in range(n):
        c = t[i]
        if c < 0x80:  # ASCII: the byte is the code point
            if counts[c] == 0:
                order[n_order[0]] = <unsigned char>c
                n_order[0] += 1
            counts[c] += 1
            total += 1
            continue
        m = utf8_bytes(c, enc)
        total += m
        for k in range(m):
            if counts[enc[k]] == 0:
                order[n_order[0]] = enc[k]
                n_order[0] += 1
            counts[enc[k]] += 1
    return total


cdef inline void clear_histogram(Py_ssize_t* counts, const unsigned char* order,
                                 int n_order) noexcept nogil:
    cdef int k
    for k in range(n_order):
        counts[order[k]] = 0


cdef double pairwise_sum(const double* a, Py_ssize_t n) noexcept nogil:
    """numpy's pairwise summation (DOUBLE_pairwise_sum), operation for operation."""
    cdef double res
    cdef double r[8]
    cdef Py_ssize_t i, j, half
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    if n <= PAIRWISE_BLOCK:
        for j in range(8):
            r[j] = a[j]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                r[j] += a[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[i]
            i += 1
        return res
    half = n // 2
    half -= half % 8
    return pairwise_sum(a, half) + pairwise_sum(a + half, n - half)


cdef double entropy_counter_order(const ucs4* t, Py_ssize_t n) noexcept nogil:
    """-sum(c/n * log2(c/n)) over bytes in first-seen order, like features._entropy."""
    cdef Py_ssize_t counts[256]
    cdef unsigned char order[256]
    cdef int n_order, k
    cdef Py_ssize_t total
    cdef double acc = 0.0
    cdef double q
    memset(counts, 0, sizeof(counts))
    total = byte_histogram(t, n, counts, order, &n_order)
    for k in range(n_order):
        q = <double>counts[order[k]] / <double>total
        acc += q * log2(q)
    return -acc


# numpy.log2(c / total) for 1 <= c <= total <= LOG_CACHE_TOTAL, filled on demand, kept for the
# process: a string's entropy needs only these values (c: a byte's count, total: its UTF-8
# length), and numpy's log2 of a float64 does not depend on where it sits in the array (checked
# by the tests), so a cached value is the one a fresh numpy call over the string would give.
cdef enum:
    LOG_CACHE_TOTAL = 512
cdef vector[vector[double]] LOG_CACHE = vector[vector[double]](LOG_CACHE_TOTAL + 1)


cdef inline double entropy_terms_sum(const Py_ssize_t* counts, const unsigned char* order,
                                     int n_order, Py_ssize_t total, const double* logs,
                                     double* terms) noexcept nogil:
    """0.0 + numpy's pairwise sum of -p * log2(p) over all 256 bytes (terms[] all zero on entry
    and on return); logs[k] is log2 of byte order[k]'s probability."""
    cdef int k
    cdef double p, out
    for k in range(n_order):
        p = <double>counts[order[k]] / <double>total
        terms[order[k]] = -p * logs[k]
    out = 0.0 + pairwise_sum(terms, 256)
    for k in range(n_order):
        terms[order[k]] = 0.0
    return out


cdef void fill_log_cache(vector[Py_ssize_t]& totals, object log2_array) except *:
    """LOG_CACHE[t] for each total t listed (all distinct, not yet cached), in one numpy call."""
    cdef Py_ssize_t size = 0, i, c, pos = 0
    cdef double[::1] probs_view
    cdef const double[::1] logs
    cdef Py_ssize_t t
    for t in totals:
        size += t
    probs_array = _numpy.empty(size, dtype=_numpy.float64)
    probs_view = probs_array
    for t in totals:
        for c in range(1, t + 1):
            probs_view[pos] = <double>c / <double>t
            pos += 1
    logs = log2_array(probs_array)
    pos = 0
    for t in totals:
        LOG_CACHE[t].resize(t)
        for i in range(t):
            LOG_CACHE[t][i] = logs[pos + i]
        pos += t


cdef void entropies_numpy_order(const ucs4* t, vector[Py_ssize_t]& starts,
                                vector[Py_ssize_t]& lengths, object log2_array,
                                vector[double]& out) except *:
    """Entropies as the numpy path of features._entropies computes them (see module doc).

    With numpy.log2 itself, the logs come from LOG_CACHE (filled first for totals it lacks);
    strings longer than its reach, or any other log2_array, take one log2_array call over
    their probabilities."""
    cdef Py_ssize_t counts[256]
    cdef unsigned char order[256]
    cdef double terms[256]
    cdef double logs_of[256]
    cdef int n_order, k
    cdef Py_ssize_t s, i, total, pos = 0
    cdef Py_ssize_t n_strings = <Py_ssize_t>starts.size()
    cdef bint cached = log2_array is _numpy.log2
    cdef double p
    cdef vector[Py_ssize_t] missing, direct, pending
    cdef vector[char] listed
    cdef vector[double] probs
    cdef vector[unsigned char] symbols
    cdef vector[int] n_symbols
    cdef const double[::1] logs
    cdef double[::1] probs_view
    memset(counts, 0, sizeof(counts))
    memset(terms, 0, sizeof(terms))
    out.resize(n_strings)
    listed.resize(LOG_CACHE_TOTAL + 1)
    for s in range(n_strings):  # computed now when the cache has the logs, else below
        total = byte_histogram(t + starts[s], lengths[s], counts, order, &n_order)
        if not cached or total > LOG_CACHE_TOTAL:
            direct.push_back(s)
        elif not LOG_CACHE[total].empty():
            for k in range(n_order):
                logs_of[k] = LOG_CACHE[total][counts[order[k]] - 1]
            out[s] = entropy_terms_sum(counts, order, n_order, total, logs_of, terms)
        else:
            if not listed[total]:
                listed[total] = 1
                missing.push_back(total)
            pending.push_back(s)
        clear_histogram(counts, order, n_order)
    if not missing.empty():
        fill_log_cache(missing, log2_array)
        for s in pending:
            total = byte_histogram(t + starts[s], lengths[s], counts, order, &n_order)
            for k in range(n_order):
                logs_of[k] = LOG_CACHE[total][counts[order[k]] - 1]
            out[s] = entropy_terms_sum(counts, order, n_order, total, logs_of, terms)
            clear_histogram(counts, order, n_order)
    if direct.empty():
        return
    for s in direct:
        total = byte_histogram(t + starts[s], lengths[s], counts, order, &n_order)
        n_symbols.push_back(n_order)
        for k in range(n_order):
            probs.push_back(<double>counts[order[k]] / <double>total)
            symbols.push_back(order[k])
        clear_histogram(counts, order, n_order)
    probs_array = _numpy.empty(probs.size(), dtype=_numpy.float64)
    probs_view = probs_array
    for i in range(<Py_ssize_t>probs.size()):
        probs_view[i] = probs[i]
    logs = log2_array(probs_array)
    for i in range(<Py_ssize_t>direct.size()):
        s = direct[i]
        for k in range(n_symbols[i]):
            p = probs[pos + k]
            terms[symbols[pos + k]] = -p * logs[pos + k]
        out[s] = 0.0 + pairwise_sum(terms, 256)
        for k in range(n_symbols[i]):
            terms[symbols[pos + k]] = 0.0
        pos += n_symbols[i]


def string_stats(list strings, object log2_array) -> tuple:
    """(len_sum, len_max, nonprintable, n_entropy, entropy_sum, entropy_max, n_high_entropy,
    pattern_counts) of str operands; `log2_array` is numpy.log2 (see the module doc)."""
    cdef Py_ssize_t n_strings = len(strings)
    cdef Py_ssize_t i, length, pos = 0, len_sum = 0, len_max = 0, nonprintable = 0
    cdef Py_ssize_t n = -1 if n_strings else 0
    cdef vector[Py_ssize_t] starts, lengths
    cdef vector[double] entropies
    cdef vector[ucs4] buf
    cdef Py_ssize_t counts[8]
    cdef ucs4 c
    cdef double e, e_sum = 0.0, e_max = 0.0
    cdef Py_ssize_t n_high = 0
    for s in strings:
        if not isinstance(s, str):
            raise TypeError(f"string operands must be str, not {type(s).__name__}")
        n += PyUnicode_GET_LENGTH(s) + 1
    buf.resize(n + 1)
    for s in strings:  # "\n".join(strings), as UCS4
        length = PyUnicode_GET_LENGTH(s)
        PyUnicode_AsUCS4(s, buf.data() + pos, length + 1, 0)
        if length >= ENTROPY_MIN_LEN:
            starts.push_back(pos)
            lengths.push_back(length)
        len_sum += length
        len_max = max(len_max, length)
        pos += length
        if pos < n:
            buf[pos] = 10
            pos += 1
    cdef const ucs4* t = buf.data()
    with nogil:
        for i in range(n):
            c = t[i]
            if (c < 32 and c != 9 and c != 10 and c != 13) or c == 0x7F or c == 0xFFFD:
                nonprintable += 1
        count_all(t, n, counts)
        if <Py_ssize_t>starts.size() <= SMALL_ENTROPY:
            for i in range(<Py_ssize_t>starts.size()):
                entropies.push_back(entropy_counter_order(t + starts[i], lengths[i]))
    if <Py_ssize_t>starts.size() > SMALL_ENTROPY:
        entropies_numpy_order(t, starts, lengths, log2_array, entropies)
    for i in range(<Py_ssize_t>entropies.size()):  # sum() and max() of the Python code
        e = entropies[i]
        e_sum += e
        if i == 0 or e > e_max:
            e_max = e
        n_high += e > HIGH_ENTROPY
    return (
        len_sum, len_max, nonprintable, <Py_ssize_t>entropies.size(), e_sum, e_max, n_high,
        tuple([counts[k] for k in range(8)]),
    )


# -- opcode histogram and the final row ---------------------------------------------------------

def opcode_groups(list opcode_counts, const int[::1] group_of, list row,
                  Py_ssize_t counts_at, Py_ssize_t fractions_at, Py_ssize_t n_groups) -> None:
    """Sum 256-entry opcode count tuples into groups (group_of[byte], -1: no group) and set
    each group's count as row[counts_at + g] and its share of all opcodes as
    row[fractions_at + g] (left alone when there are no opcodes)."""
    cdef long long grouped[256]
    cdef long long total = 0
    cdef Py_ssize_t b, g
    cdef int group
    cdef tuple counts
    if group_of.shape[0] != 256 or not 0 <= n_groups <= 256:
        raise ValueError("group_of must map 256 opcode bytes to at most 256 groups")
    if min(counts_at, fractions_at) < 0 or max(counts_at, fractions_at) + n_groups > len(row):
        raise ValueError("row too short")
    for b in range(256):
        if group_of[b] >= n_groups:
            raise ValueError("group index out of range")
    memset(grouped, 0, sizeof(grouped))
    for item in opcode_counts:
        counts = item if type(item) is tuple else tuple(item)
        if len(counts) != 256:
            raise ValueError("opcode counts must have 256 entries")
        for b in range(256):
            group = group_of[b]
            if group >= 0:
                grouped[group] += <long long>counts[b]
    for g in range(n_groups):
        row[counts_at + g] = <double>grouped[g]
        total += grouped[g]
    if total > 0:  # exact integers as float64: the same quotient numpy's `grouped / total` gives
        for g in range(n_groups):
            row[fractions_at + g] = <double>grouped[g] / <double>total


def float32_row(list row, double finite_max) -> object:
    """The float32 array of a list of Python numbers (each converted to float64 first, as
    numpy's astype chain would); NaN becomes 0 and +-inf (also from float32 overflow)
    +-finite_max, like numpy.nan_to_num."""
    cdef Py_ssize_t i, n = len(row)
    out = _numpy.empty(n, dtype=_numpy.float32)
    cdef float[::1] view = out
    cdef float f
    for i in range(n):
        f = <float>PyFloat_AsDouble(row[i])  # int -> float64 first: correctly rounded
        if isnan(f):
            f = 0.0
        elif isinf(f):
            f = <float>(finite_max if f > 0 else -finite_max)
        view[i] = f
    return out


# -- call sites ----------------------------------------------------------------------------------

def call_counts(object calls, list classes, Py_ssize_t failed_at, dict call_slot,
                list call_ops, list totals) -> None:
    """Count a stream's call sites (facts.CallSite) into call_ops[call_slot[opcode]] and
    totals = [discarded, on_call_result, resolved, to_safe, to_unknown, to_dangerous,
    before_failure, dangerous_before_failure]; `classes` holds the rule class slot (0 safe,
    1 unknown, 2 dangerous) of each global of the stream, failed_at the offset where the parse
    failed (-1: it did not)."""
    cdef Py_ssize_t n_classes = len(classes)
    cdef Py_ssize_t n_ops = len(call_ops)
    cdef Py_ssize_t index, offset, cls_slot
    cdef Py_ssize_t slot
    cdef long long discarded = 0, on_call = 0, resolved = 0, before = 0, dangerous_before = 0
    cdef long long by_class[3]
    if len(totals) != 8:
        raise ValueError("totals must have 8 entries")
    by_class[0] = by_class[1] = by_class[2] = 0
    for call in calls:
        found = call_slot.get(call.opcode)
        if found is not None:
            slot = found
            if 0 <= slot < n_ops:
                call_ops[slot] += 1
        discarded += <bint>call.discarded
        on_call += <bint>call.callable_is_call
        index = call.callable_index
        offset = call.offset if failed_at >= 0 else 0
        if 0 <= index < n_classes:
            resolved += 1
            cls_slot = classes[index]
            if not 0 <= cls_slot <= 2:
                raise ValueError("class slots must be 0, 1 or 2")
            by_class[cls_slot] += 1
            if offset < failed_at:
                dangerous_before += cls_slot == 2
        if offset < failed_at:
            before += 1
    totals[0] += discarded
    totals[1] += on_call
    totals[2] += resolved
    totals[3] += by_class[0]
    totals[4] += by_class[1]
    totals[5] += by_class[2]
    totals[6] += before
    totals[7] += dangerous_before


# -- imported globals ----------------------------------------------------------------------------

def global_counts(object globals_, dict distinct, dict class_slot, object first_sight,
                  list totals, dict slot_cache) -> list:
    """Walk a stream's globals (facts.GlobalRef): add [total, unresolved, via_memo, ext] to
    `totals`, call first_sight(g, qualname, is_ext) -> rule class for each qualname not yet in
    `distinct` (it must add it), and return each global's class slot (class_slot[class], 1 when
    absent) for call_counts. `slot_cache` ({module: {name: slot}}, one per file) skips building
    the qualname of a (module, name) pair seen before: checkpoints repeat a handful of globals
    thousands of times."""
    cdef long long total = 0, unresolved = 0, via_memo = 0, ext = 0
    cdef bint is_ext
    cdef list classes = []
    cdef str opcode
    cdef dict by_name
    if len(totals) != 4:
        raise ValueError("totals must have 4 entries")
    for g in globals_:
        total += 1
        unresolved += not g.resolved
        via_memo += g.via_memo
        opcode = g.opcode
        is_ext = opcode.startswith("EXT")
        ext += is_ext
        module = g.module
        name = g.name
        by_name = slot_cache.get(module)
        if by_name is None:
            by_name = slot_cache[module] = {}
        slot = by_name.get(name)  # a qualname's class never changes once `distinct` has it
        if slot is None:
            qual = f"{module}.{name}"
            cls = distinct.get(qual)
            if cls is None:
                cls = first_sight(g, qual, is_ext)
            slot = class_slot.get(cls)
            if slot is None:
                slot = 1
            by_name[name] = slot
        classes.append(slot)
    totals[0] += total
    totals[1] += unresolved
    totals[2] += via_memo
    totals[3] += ext
    return classes
