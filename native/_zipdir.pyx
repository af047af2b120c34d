# cython: language_level=3
"""Zip central-directory walk for fastscan.containers.zipread (one C loop per archive).

A checkpoint holds one zip member per tensor storage, so a hub mirror has hundreds of members per
file; parsing their headers in Python was the largest per-file cost. This module only decodes
fixed-layout header fields and answers "could this stored member's first bytes be anything the
scanner reads further?"; names, anomalies and every decision stay in Python.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp


include "_records.pxi"


cdef extern from "Python.h":
    PyObject* PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    void PyErr_Clear()

cdef uint32_t SIG_CENTRAL = 0x02014B50
cdef uint32_t SIG_LOCAL = 0x04034B50
cdef uint32_t MAX32 = 0xFFFFFFFF


cdef inline uint16_t u16(const uint8_t* p) noexcept nogil:
    return p[0] | (<uint16_t>p[1] << 8)


cdef inline uint32_t u32(const uint8_t* p) noexcept nogil:
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline uint64_t u64(const uint8_t* p) noexcept nogil:
    return u32(p) | (<uint64_t>u32(p + 4) << 32)


cdef inline bint _is_space(uint8_t c) noexcept nogil:
    return c == 32 or 9 <= c <= 13


cdef bint _maybe_v7_tar(const uint8_t* p) noexcept nogil:
    """Could `sniff.is_tar` accept this old-style (no magic) header? Conservative: True whenever
    the checksum field could parse as octal, leaving the exact test to Python."""
    cdef int start = 148, end = 148, i
    if p[0] == 0:
        return False
    while end < 156 and p[end] != 0:
        end += 1
    while start < end and _is_space(p[start]):
        start += 1
    while end > start and _is_space(p[end - 1]):
        end -= 1
    if start == end:
        return False
    for i in range(start, end):
        if not (48 <= p[i] <= 55 or p[i] in b"+-_oO"):
            return False
    return True


cdef bint _may_route(const uint8_t* p, int64_t n, const uint8_t[:] first) noexcept nogil:
    """Mirror of tests/specs/may_route.py over one window (kept equal by a property test)."""
    if n <= 0:
        return True
    if first[p[0]]:
        return True
    if n >= 512:
        if memcmp(p + 257, b"ustar", 5) == 0 or _maybe_v7_tar(p):
            return True
    # an end-of-central-directory signature anywhere in the window (a zip with data before
    # it); memchr skips to each "P" instead of testing every byte of a 64 KiB window
    cdef const uint8_t* q = p
    cdef const uint8_t* last = p + n - 3
    while q < last:
        q = <const uint8_t*>memchr(q, 0x50, last - q)
        if q == NULL:
            return False
        if q[1] == 0x4B and q[2] == 5 and q[3] == 6:
            return True
        q += 1
    return False


cdef object _utf8_or_bytes(const uint8_t* p, int64_t n):
    """The name as str when it is valid UTF-8 (what every decoding in zipread then gives), else
    the raw bytes for Python's cp437/replace fallback."""
    cdef PyObject* text = PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
    if text == NULL:
        PyErr_Clear()
        return bytes(p[:n])
    return <object>text


cdef bint _plain_name(const uint8_t* p, int64_t n) noexcept nogil:
    """No path-traversal marker zipread would have to look at (leading slash, drive, "..")."""
    cdef int64_t i
    if n > 0 and (p[0] == 47 or p[0] == 92):
        return False
    if n > 1 and p[1] == 58:
        return False
    for i in range(n - 1):
        if p[i] == 46 and p[i + 1] == 46:
            return False
    return True


cdef int64_t _local_data(const uint8_t* p, int64_t n, int64_t off) noexcept nogil:
    """Offset of the member data after the local header at `off`, or -1."""
    if off < 0 or off + 30 > n or u32(p + off) != SIG_LOCAL:
        return -1
    return off + 30 + u16(p + off + 26) + u16(p + off + 28)


# `central_entries` summary bits: what the Python side must still look at entry by entry
ODD_DECODE = 1  # a name is not UTF-8, or a local header is missing
ODD_DIR = 2  # a directory entry
ODD_NOT_PLAIN = 4  # an entry `zipread._entry_anomalies` reports on
ODD_DUPLICATE = 8  # two entries share a central-directory name


cdef bint _quiet_name(const uint8_t* p, int64_t n) noexcept nogil:
    """ASCII and not ending in ".pkl" (any case): what `read_zip` tests on the decoded str."""
    cdef int64_t i
    for i in range(n):
        if p[i] >= 0x80:
            return False
    return not (n >= 4 and p[n - 4] == 46 and (p[n - 3] | 32) == 112
                and (p[n - 2] | 32) == 107 and (p[n - 1] | 32) == 108)


def central_entries(const uint8_t[::1] buf, int64_t real_cd, int64_t delta,
                    int64_t window, const uint8_t[:] route_first, type cls):
    """Every central-directory record from `real_cd` while the signature holds.

    Returns (rows, oddities, quiet_bytes, first_header). One `cls` (zipread.ZipEntry) row per
    record: (name, local name, method, flags, crc, compressed size,
    size, local header offset, data offset (-1: no local header), is_symlink, crc_known,
    routable, plain, quiet), zip64 placeholders resolved. Names are str when valid UTF-8, else
    raw bytes for Python to decode. `routable` is False only for a stored, unencrypted member
    whose first `window` bytes tests/specs/may_route.py would reject. `plain`: no flag,
    name, method or symlink oddity that `zipread._entry_anomalies` reports (duplicates aside).
    `quiet`: not routable and an ASCII name not ending in ".pkl", so `read_zip` only counts its
    window.
    `oddities` ORs the ODD_* bits, `quiet_bytes` sums the quiet members' windows, and
    `first_header` is the lowest local header offset found (-1: none).
    """
    cdef int64_t n = buf.shape[0]
    cdef const uint8_t* p = &buf[0] if n > 0 else NULL
    cdef int64_t pos = real_cd, header, data, x, xend, end, name_end
    cdef uint64_t size, csize, local_off
    cdef uint16_t flags, method, name_len, extra_len, comment_len, tag, tlen, lname_len
    cdef uint32_t crc, mode
    cdef bint routable, same_name, symlink, plain, quiet
    cdef int oddities = 0
    cdef int64_t quiet_bytes = 0, first_header = -1
    check_record_type(cls)
    cdef set names = set()
    out = []
    while pos + 46 <= n and u32(p + pos) == SIG_CENTRAL:
        flags = u16(p + pos + 8)
        method = u16(p + pos + 10)
        crc = u32(p + pos + 16)
        csize = u32(p + pos + 20)
        size = u32(p + pos + 24)
        name_len = u16(p + pos + 28)
        extra_len = u16(p + pos + 30)
        comment_len = u16(p + pos + 32)
        mode = u32(p + pos + 38) >> 16 if (p[pos + 5] == 3) else 0
        local_off = u32(p + pos + 42)
        if size == MAX32 or csize == MAX32 or local_off == MAX32:
            x = pos + 46 + name_len
            xend = min(x + extra_len, n)
            while x + 4 <= xend:
                tag = u16(p + x)
                tlen = u16(p + x + 2)
                if tag == 1:
                    end = min(x + 4 + tlen, xend)
                    x += 4
                    if size == MAX32 and x + 8 <= end:
                        size = u64(p + x)
                        x += 8
                    if csize == MAX32 and x + 8 <= end:
                        csize = u64(p + x)
                        x += 8
                    if local_off == MAX32 and x + 8 <= end:
                        local_off = u64(p + x)
                    break
                x += 4 + tlen
        name_end = min(pos + 46 + name_len, n)
        name = _utf8_or_bytes(p + pos + 46, name_end - pos - 46)
        header = <int64_t>local_off + delta
        data = _local_data(p, n, header)
        if data < 0 and delta != 0:
            header = <int64_t>local_off
            data = _local_data(p, n, header)
        local_name = name
        routable = True
        same_name = True
        if data >= 0:
            lname_len = u16(p + header + 26)
            same_name = (lname_len == name_end - pos - 46 and header + 30 + lname_len <= n
                         and memcmp(p + header + 30, p + pos + 46, lname_len) == 0)
            if not same_name:
                local_name = _utf8_or_bytes(p + header + 30,
                                            min(header + 30 + lname_len, n) - header - 30)
            if method == 0 and not (flags & 1) and data < n:
                end = min(n, data + <int64_t>min(csize, <uint64_t>window))
                routable = _may_route(p + data, end - data, route_first)
        symlink = mode != 0 and (mode & 0o170000) == 0o120000
        plain = (same_name and not symlink and (flags & 0x61) == 0
                 and (method == 0 or method == 8 or method == 12 or method == 14 or method == 99)
                 and _plain_name(p + pos + 46, name_end - pos - 46))
        quiet = (not routable and data >= 0 and not (size == 0 and name_end > pos + 46
                                                     and p[name_end - 1] == 47)
                 and _quiet_name(p + pos + 46, name_end - pos - 46))
        if quiet:
            quiet_bytes += min(n - data, <int64_t>min(csize, <uint64_t>window))
        if data < 0 or type(name) is not str or type(local_name) is not str:
            oddities |= ODD_DECODE
        elif first_header < 0 or header < first_header:
            first_header = header
        if size == 0 and name_end > pos + 46 and p[name_end - 1] == 47:
            oddities |= ODD_DIR
        if not plain:
            oddities |= ODD_NOT_PLAIN
        if name in names:
            oddities |= ODD_DUPLICATE
        names.add(name)
        r = new_record(cls, 14)
        set_field(r, 0, name)
        set_field(r, 1, local_name)
        set_field(r, 2, method)
        set_field(r, 3, flags)
        set_field(r, 4, crc)
        set_field(r, 5, csize)
        set_field(r, 6, size)
        set_field(r, 7, header)
        set_field(r, 8, data)
        set_field(r, 9, symlink)
        set_field(r, 10, True)
        set_field(r, 11, routable)
        set_field(r, 12, plain)
        set_field(r, 13, quiet)
        out.append(r)
        pos += 46 + name_len + extra_len + comment_len
    return out, oddities, quiet_bytes, first_header
