"""What of a remote object the container readers need, read by ranges into a sparse buffer.

Read policy (what `fetch_for_scan` reads of one object; `bytes_read` reports the total):
- objects up to `WHOLE_READ_BYTES` (1 MiB) are read whole in one request;
- larger ones: first the head (64 KiB) and the tail (128 KiB: EOCD, zip64 records, and usually
  the central directory), one range request each; then by format:
  - zip (torch zip, TorchScript, npz, plain zip): the central directory (if it was not in the
    tail), then for every member its local header plus a `probe_bytes` prefix; members that may
    hold a pickle (the same test the zip reader applies: a `*.pkl` name, a pickle-, archive- or
    object-npy-looking prefix) are then read whole. Tensor storages are never read past their
    probe prefix;
  - npy with a plain dtype: the header, plus any bytes after the array (a hidden pickle);
  - formats that cannot hold a pickle (safetensors, ONNX, images, text…): nothing more;
  - everything else (raw pickles, legacy torch, joblib, tar, 7z, compressed files): whole, up to
    `max_whole_bytes` (default 1 GiB); a bigger object becomes a fail-closed error row.
The ranges fill a sparse buffer the size of the object (a shared map of an unlinked, sparse
temp file: holes cost neither memory nor disk) that is handed to the unchanged container readers.
A shared file mapping is outside the worker's `--memory-mb` budget (RLIMIT_DATA counts private
writable maps: an anonymous buffer of a 20 GiB object would count in full), so objects of any
size get their ranged reads; what is fetched lands in the temp directory's page cache (RAM where
TMPDIR is a tmpfs). As a safety net, if a pickle stream was found in a member that was not
read whole, the object is re-read whole and rescanned (`stream_outside_plan`).

The file systems, listing and the scanner's side of a remote read are in `sources/remote.py`.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Any

from . import npy as npy_reader
from ._context import ContainerLimits
from .formats import NESTED_FORMATS, NO_PICKLE_FORMATS, PICKLE_FORMATS
from .sniff import is_tar, sniff
from .zipread import zip64_extra

WHOLE_READ_BYTES = 1 << 20
HEAD_BYTES = 64 << 10  # the pickle probe looks at up to 64 KiB
TAIL_BYTES = 128 << 10  # EOCD search window (64 KiB + 22) plus room for the central directory
LOCAL_HEADER_SLACK = 256  # local extra fields (torch pads data to 64-byte alignment)
COMPRESSED_WHOLE_BYTES = 1 << 20  # compressed members this small are read whole at once
DEFAULT_MAX_WHOLE = 1 << 30

_EOCD = struct.Struct("<4sHHHHIIH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")


@dataclass
class SparseObject:
    """An object's bytes at their real offsets; only the fetched ranges are filled."""

    size: int
    buffer: Any  # the sparse shared map, or bytes (read whole)
    fetched: int = 0  # bytes transferred
    requests: int = 0
    whole: bool = False
    full_members: set[str] = field(default_factory=set)  # zip members read whole
    zip_members: set[str] = field(default_factory=set)  # every zip member seen
    too_large: str = ""  # set when policy says "whole" but the object passes the budget
    top_level_read: bool = False  # every byte a top-level stream can come from was read

    def close(self) -> None:
        if isinstance(self.buffer, mmap.mmap):
            with contextlib.suppress(BufferError):
                self.buffer.close()


class _Reader:
    """Range reads of one object, batched through `cat_ranges`, merged when they touch."""

    def __init__(self, fs: Any, path: str, size: int) -> None:
        self.fs = fs
        self.path = path
        self.size = size
        self.fetched = 0
        self.requests = 0

    def ranges(self, spans: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
        spans = sorted((max(0, s), min(self.size, e)) for s, e in spans if e > s)
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        if not merged:
            return []
        if getattr(self.fs, "protocol", None) in (("hf",), "hf"):
            blobs = _hf_ranges(self.fs, self.path, merged)
        else:
            blobs = self.fs.cat_ranges(
                [self.path] * len(merged), [m[0] for m in merged], [m[1] for m in merged]
            )
        out = []
        for (start, _end), blob in zip(merged, blobs, strict=True):
            if isinstance(blob, BaseException):
                raise blob
            self.requests += 1
            self.fetched += len(blob)
            out.append((start, bytes(blob)))
        return out

    def whole(self) -> bytes:
        data = bytes(self.fs.cat_file(self.path))
        self.requests += 1
        self.fetched += len(data)
        return data


def _hf_ranges(fs: Any, path: str, spans: list[list[int]]) -> list[bytes]:
    """Exact range requests on HfFileSystem: its `cat_ranges` goes through a read-ahead cache
    that fetches whole 5 MiB blocks (a whole small checkpoint per probe); no cache reads just
    the span."""
    with fs.open(path, "rb", cache_type="none") as fh:
        out = []
        for start, end in spans:
            fh.seek(start)
            out.append(fh.read(end - start))
        return out


def _sparse_map(size: int) -> mmap.mmap:
    """Zero-filled buffer of `size` bytes where only written pages cost anything (see the
    module docstring for why a sparse file and not an anonymous map)."""
    with tempfile.TemporaryFile(prefix="fastscan-ranges-") as fh:  # the map keeps its own fd
        fh.truncate(size)
        return mmap.mmap(fh.fileno(), size, flags=mmap.MAP_SHARED)


def _fill(buf: Any, parts: list[tuple[int, bytes]]) -> None:
    for start, blob in parts:
        buf[start : start + len(blob)] = blob


def fetch_for_scan(
    fs: Any,
    path: str,
    size: int,
    *,
    limits: ContainerLimits | None = None,
    max_whole_bytes: int = DEFAULT_MAX_WHOLE,
) -> SparseObject:
    """Read what the container readers will look at (see the module docstring)."""
    limits = limits or ContainerLimits()
    reader = _Reader(fs, path, size)
    if size <= WHOLE_READ_BYTES:
        data = reader.whole()
        return SparseObject(len(data), data, reader.fetched, reader.requests, whole=True)
    try:
        buf = _sparse_map(size)
    except (OSError, OverflowError) as exc:  # e.g. a TMPDIR that cannot hold the size
        message = f"cannot map {size} bytes for ranged reads ({exc}): check TMPDIR"
        return SparseObject(size, b"", too_large=message)
    obj = SparseObject(size, buf)
    _fill(buf, reader.ranges([(0, HEAD_BYTES), (size - TAIL_BYTES, size)]))
    with memoryview(buf) as view:  # released before the map may be closed
        fmt = sniff(view)
        polyglot = fmt == "zip" and is_tar(view)
    if fmt == "zip" and not polyglot:
        if not _plan_zip(reader, obj, limits):
            _read_whole(reader, obj, max_whole_bytes)
    elif fmt == "npy":
        _plan_npy(reader, obj, max_whole_bytes)
    elif fmt not in NO_PICKLE_FORMATS:
        _read_whole(reader, obj, max_whole_bytes)
    obj.fetched, obj.requests = reader.fetched, reader.requests
    return obj


def refetch_whole(fs: Any, path: str, obj: SparseObject, max_whole_bytes: int) -> None:
    reader = _Reader(fs, path, obj.size)
    _read_whole(reader, obj, max_whole_bytes)
    obj.fetched += reader.fetched
    obj.requests += reader.requests


def _read_whole(reader: _Reader, obj: SparseObject, max_whole_bytes: int) -> None:
    if obj.size > max_whole_bytes:
        obj.too_large = (
            f"object of {obj.size} bytes needs a whole read, more than the remote read budget "
            f"of {max_whole_bytes} bytes: copy it locally to scan it"
        )
        return
    # Head and tail are already in the buffer; ranged reads keep each request bounded.
    step = 64 << 20
    stop = max(HEAD_BYTES, obj.size - TAIL_BYTES)
    for start in range(HEAD_BYTES, stop, step):
        _fill(obj.buffer, reader.ranges([(start, min(stop, start + step))]))
    obj.whole = True


def _plan_npy(reader: _Reader, obj: SparseObject, max_whole_bytes: int) -> None:
    head = memoryview(obj.buffer)[:HEAD_BYTES]
    try:
        header, data_start = npy_reader.parse_header(head)
        itemsize, has_object = npy_reader.descr_info(header["descr"])
        shape = header.get("shape", ())
        count = 1
        for dim in shape:
            count *= int(dim)
    except (npy_reader.NpyError, KeyError, TypeError, ValueError):
        has_object, count, itemsize, data_start = True, 0, 0, 0
    finally:
        head.release()
    if has_object:
        _read_whole(reader, obj, max_whole_bytes)
        return
    expected = data_start + count * itemsize
    if expected < obj.size:  # bytes after the array may hide a pickle: read them
        _fill(obj.buffer, reader.ranges([(expected, obj.size)]))
    obj.top_level_read = True


@dataclass
class _Member:
    name: str
    method: int
    flags: int
    csize: int
    header: int  # local header offset in the object


def _central_directory(reader: _Reader, obj: SparseObject) -> tuple[int, int, int] | None:
    """(cd start, cd end, delta for local offsets) after making sure the CD is in the buffer."""
    size = obj.size
    tail_start = max(0, size - (65535 + 22))
    eocd = bytes(obj.buffer[tail_start:size]).rfind(b"PK\x05\x06")
    if eocd < 0:
        return None
    eocd += tail_start
    _sig, _d, _dcd, _n, n_total, cd_size, cd_offset, _c = _EOCD.unpack_from(obj.buffer, eocd)
    end = eocd
    if 0xFFFFFFFF in (cd_size, cd_offset) or n_total == 0xFFFF:
        loc = eocd - 20
        if loc < 0 or bytes(obj.buffer[loc : loc + 4]) != b"PK\x06\x07":
            return None
        (z64,) = struct.unpack_from("<Q", obj.buffer, loc + 8)
        if z64 + 56 > size:
            return None
        _fill(obj.buffer, reader.ranges([(z64, z64 + 56)]))
        if bytes(obj.buffer[z64 : z64 + 4]) != b"PK\x06\x06":
            return None  # shifted zip64 record: let the whole-read path deal with it
        _n_total, cd_size, cd_offset = struct.unpack_from("<QQQ", obj.buffer, z64 + 32)
        end = z64
    # Same choice as the zip reader: the CD ends where the EOCD (or zip64 EOCD) starts; when
    # no CD header is there (e.g. a zip64 record sits between), trust the stored offset.
    for start in (end - cd_size, cd_offset):
        if start < 0 or start + cd_size > size:
            continue
        _fill(obj.buffer, reader.ranges([(start, min(start + cd_size, size - TAIL_BYTES))]))
        if bytes(obj.buffer[start : start + 4]) == b"PK\x01\x02":
            return start, start + cd_size, start - cd_offset
    return None


def _members(obj: SparseObject, cd_start: int, cd_end: int, delta: int) -> list[_Member]:
    out = []
    pos = cd_start
    buf = obj.buffer
    while pos + 46 <= cd_end and bytes(buf[pos : pos + 4]) == b"PK\x01\x02":
        f = _CENTRAL.unpack_from(buf, pos)
        flags, method, csize, size = f[3], f[4], f[8], f[9]
        name_len, extra_len, comment_len, local_off = f[10], f[11], f[12], f[16]
        name = bytes(buf[pos + 46 : pos + 46 + name_len]).decode("utf-8", "replace")
        extra = bytes(buf[pos + 46 + name_len : pos + 46 + name_len + extra_len])
        _size, csize, local_off = zip64_extra(extra, size, csize, local_off)
        out.append(_Member(name, method, flags, csize, local_off + delta))
        if delta:  # the reader falls back to the stored offset: have that one too
            out.append(_Member(name, method, flags, csize, local_off))
        pos += 46 + name_len + extra_len + comment_len
    return out


def _prefix_span(m: _Member, limits: ContainerLimits) -> int:
    """Bytes of stored data to read for the probe (compressed members: a bit more)."""
    if m.method == 0:
        return min(m.csize, limits.probe_bytes)
    if m.csize <= COMPRESSED_WHOLE_BYTES:
        return m.csize
    return min(m.csize, 2 * limits.probe_bytes + 1024)


def _plan_zip(reader: _Reader, obj: SparseObject, limits: ContainerLimits) -> bool:
    """Fill CD, local headers, probes and pickle members; False when the layout is not plain."""
    found = _central_directory(reader, obj)
    if found is None:
        return False
    members = _members(obj, *found)
    spans = [
        (
            m.header,
            m.header + 30 + len(m.name.encode()) + LOCAL_HEADER_SLACK + _prefix_span(m, limits),
        )
        for m in members
        if 0 <= m.header < obj.size
    ]
    _fill(obj.buffer, reader.ranges(spans))
    wanted: list[tuple[int, int]] = []
    located: list[tuple[_Member, int]] = []
    for m in members:
        if not 0 <= m.header <= obj.size - 30:
            continue
        fields = _LOCAL.unpack_from(obj.buffer, m.header)
        if fields[0] != b"PK\x03\x04":
            continue
        data_at = m.header + 30 + fields[9] + fields[10]
        need = data_at + _prefix_span(m, limits)
        have = m.header + 30 + len(m.name.encode()) + LOCAL_HEADER_SLACK + _prefix_span(m, limits)
        if need > have:  # a long local extra field pushed the probe out of the first read
            wanted.append((have, need))
        located.append((m, data_at))
    _fill(obj.buffer, reader.ranges(wanted))
    full: list[tuple[int, int]] = []
    for m, data_at in located:
        obj.zip_members.add(m.name)
        if _may_hold_pickle(obj, m, data_at, limits):
            end = data_at + min(m.csize, limits.max_member_bytes)
            full.append((data_at, end))
            obj.full_members.add(m.name)
    _fill(obj.buffer, reader.ranges(full))
    return True


def _may_hold_pickle(obj: SparseObject, m: _Member, data_at: int, limits: ContainerLimits) -> bool:
    """The zip reader's "read this member whole?" test, applied to the probe prefix."""
    if m.name.lower().endswith(".pkl"):
        return True
    span = _prefix_span(m, limits)
    raw = bytes(obj.buffer[data_at : data_at + span])
    if m.method == 0:
        prefix = raw
    elif m.method == 8:
        import zlib

        try:
            prefix = zlib.decompressobj(-15).decompress(raw, limits.probe_bytes)
        except zlib.error:
            return True  # cannot tell from the prefix: read it whole
    else:
        return True  # bzip2/lzma/unknown: read whole rather than guess
    fmt = sniff(prefix)
    if fmt in PICKLE_FORMATS or fmt in NESTED_FORMATS:
        return True
    if fmt == "npy":
        try:
            header, _ = npy_reader.parse_header(prefix)
            return bool(npy_reader.descr_info(header["descr"])[1])
        except (npy_reader.NpyError, KeyError):
            return True
    return False


def stream_outside_plan(obj: SparseObject, stream_members: list[str]) -> bool:
    """True when a pickle stream came from bytes the plan did not read (re-read whole)."""
    if obj.whole:
        return False
    for member in stream_members:
        if not member:
            if obj.top_level_read:
                continue
            return True  # a top-level stream of a partly read object
        ok = any(member == n or member.startswith(n + "/") for n in obj.full_members)
        if not ok:
            return True
    return False
