"""A lenient zip reader: accepts at least what PyTorch's miniz loader accepts, and says what it saw.

Python's `zipfile` refuses flag bits 0x1/0x20/0x40, CRC mismatches and local/central name
mismatches; torch.load ignores all of them, so an attacker hides payloads there
(docs/threats.md B1-B4).
This reader never raises on such files: it lists entries from the central directory (walking the
local headers when that is missing or broken), reads members with a size cap, and records every
oddity as a `ContainerAnomaly`.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

from fastscan._zipdir import ODD_DECODE, ODD_DIR, ODD_DUPLICATE, ODD_NOT_PLAIN, central_entries

from ..tokenizer import find
from . import anomalies as A
from .base import Buffer, ContainerAnomaly
from .sniff import ROUTE_FIRST

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_EOCD_SIG = b"PK\x06\x06"

FLAG_ENCRYPTED = 0x1
FLAG_DATA_DESCRIPTOR = 0x8
FLAG_PATCHED = 0x20
FLAG_STRONG_ENCRYPTION = 0x40

METHOD_STORED = 0
METHOD_DEFLATED = 8
METHOD_BZIP2 = 12
METHOD_LZMA = 14
METHOD_AES = 99  # WinZip AES: always encrypted

_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
_EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes
_CHUNK = 1 << 20
_INPUT_STEP = 64 << 10  # compressed bytes per decoder call (bounds the ratio check's lag)


class ZipError(Exception):
    """The buffer holds no zip structure this reader can list at all."""


class MemberTooLarge(Exception):
    """A member's decompressed size passed the cap given to `read_member`."""


class RatioExceeded(Exception):
    """Output grew past `max_ratio` times the input consumed (a decompression bomb)."""


class ZipEntry(NamedTuple):
    """One member as the central directory (or the local-header walk) describes it.

    A NamedTuple: a checkpoint lists one entry per tensor storage, built straight from the
    native listing's tuples.
    """

    name: str  # the central-directory name (local name when no directory)
    local_name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int  # declared uncompressed size
    header_offset: int  # real offset of the local header in the buffer
    data_offset: int
    is_symlink: bool = False
    crc_known: bool = True  # False for data-descriptor members found by the local-header walk
    routable: bool = True  # False: stored, and its probe window starts no format worth reading
    plain: bool = False  # True: no oddity `_entry_anomalies` would report, duplicates aside
    quiet: bool = False  # True: not routable, ASCII name not ending ".pkl" (nothing to read)

    @property
    def encrypted_flag(self) -> bool:
        return bool(self.flags & FLAG_ENCRYPTED) or self.method == METHOD_AES

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") and self.size == 0


@dataclass(slots=True)
class ZipListing:
    entries: list[ZipEntry] = field(default_factory=list)
    anomalies: list[ContainerAnomaly] = field(default_factory=list)
    # From the native listing, so a 400-member checkpoint needs no Python pass per question:
    has_dirs: bool = True  # False: no entry is a directory
    all_plain: bool = False  # True: every entry is `plain` and no name repeats
    quiet_bytes: int = 0  # the probe windows of every `quiet` entry


def _as_name(name: str | bytes, flags: int) -> str:
    return name if isinstance(name, str) else _decode_name(name, flags)


def _decode_name(raw: bytes, flags: int) -> str:
    if flags & 0x800:
        return raw.decode("utf-8", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def zip64_extra(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Apply a zip64 extended-information extra field (id 0x0001) to 0xFFFFFFFF placeholders."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 0x0001:
            vals = [v[0] for v in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
            if size == 0xFFFFFFFF and vals:
                size = vals.pop(0)
            if csize == 0xFFFFFFFF and vals:
                csize = vals.pop(0)
            if offset == 0xFFFFFFFF and vals:
                offset = vals.pop(0)
            break
        pos += 4 + length
    return size, csize, offset


def _find_eocd(view: memoryview) -> int:
    start = max(0, len(view) - (65535 + 22))
    found = bytes(view[start:]).rfind(EOCD_SIG)
    return found + start if found >= 0 else -1


def _central_listing(
    view: memoryview, eocd: int, listing: ZipListing, probe_window: int = 0
) -> bool:
    """Fill `listing` from the central directory; False when it is unusable."""
    if eocd + 22 > len(view):
        return False
    _sig, _d, _dcd, _n_disk, n_total, cd_size, cd_offset, comment_len = _EOCD.unpack_from(
        view, eocd
    )
    if eocd + 22 + comment_len < len(view):
        listing.anomalies.append(
            ContainerAnomaly(
                A.TRAILING_DATA.code, "", f"{len(view) - eocd - 22 - comment_len} bytes"
            )
        )
    if 0xFFFFFFFF in (cd_size, cd_offset) or n_total == 0xFFFF:
        loc = eocd - 20
        if loc >= 0 and bytes(view[loc : loc + 4]) == ZIP64_LOCATOR_SIG:
            (z64_offset,) = struct.unpack_from("<Q", view, loc + 8)
            z64 = z64_offset if bytes(view[z64_offset : z64_offset + 4]) == ZIP64_EOCD_SIG else -1
            if z64 < 0:  # prefix data shifts the record; search just before the locator
                z64 = bytes(view[max(0, loc - 4096) : loc]).rfind(ZIP64_EOCD_SIG)
                z64 = z64 + max(0, loc - 4096) if z64 >= 0 else -1
            if z64 >= 0:
                n_total, cd_size, cd_offset = struct.unpack_from("<QQQ", view, z64 + 32)
                eocd = z64
    # The directory ends where the EOCD starts; a different declared offset means bytes were
    # prepended (B7) and every stored offset is shifted by the same delta.
    real_cd = eocd - cd_size
    if real_cd < 0 or bytes(view[real_cd : real_cd + 4]) != CENTRAL_SIG:
        real_cd = cd_offset
        if bytes(view[real_cd : real_cd + 4]) != CENTRAL_SIG:
            return n_total == 0 and cd_size == 0
    delta = real_cd - cd_offset
    rows, oddities, listing.quiet_bytes, first = central_entries(
        view, real_cd, delta, probe_window, ROUTE_FIRST, ZipEntry
    )
    listing.has_dirs = bool(oddities & ODD_DIR)
    listing.all_plain = not oddities & (ODD_NOT_PLAIN | ODD_DUPLICATE | ODD_DECODE)
    if oddities & ODD_DECODE:
        _add_odd_entries(rows, listing)
        first = min((e.header_offset for e in listing.entries), default=0)
    else:
        listing.entries = rows
    if listing.entries and first > 0:
        listing.anomalies.append(ContainerAnomaly(A.ZIP_PREFIX_DATA.code, "", f"{first} bytes"))
    return bool(listing.entries) or n_total == 0


def _add_odd_entries(rows: list[ZipEntry], listing: ZipListing) -> None:
    for row in rows:
        entry = row
        if not isinstance(entry.name, str) or not isinstance(entry.local_name, str):
            # not UTF-8: the cp437 / replace decodings of `_decode_name`
            name = _as_name(entry.name, entry.flags)
            entry = entry._replace(name=name, local_name=_as_name(entry.local_name, entry.flags))
        if entry.data_offset < 0:
            listing.anomalies.append(ContainerAnomaly(A.ZIP_BAD_LOCAL_HEADER.code, entry.name))
            continue
        listing.entries.append(entry)


def _walk_local_headers(view: memoryview, listing: ZipListing) -> None:
    """No usable central directory: find local headers by signature, as a salvage reader."""
    pos = find(view, LOCAL_SIG)
    if pos > 0:
        listing.anomalies.append(ContainerAnomaly(A.ZIP_PREFIX_DATA.code, "", f"{pos} bytes"))
    while pos >= 0 and pos + 30 <= len(view):
        f = _LOCAL.unpack_from(view, pos)
        flags, method, crc, csize, size = f[2], f[3], f[6], f[7], f[8]
        name_len, extra_len = f[9], f[10]
        name = _decode_name(bytes(view[pos + 30 : pos + 30 + name_len]), flags)
        extra = bytes(view[pos + 30 + name_len : pos + 30 + name_len + extra_len])
        size, csize, _ = zip64_extra(extra, size, csize, 0)
        data_offset = pos + 30 + name_len + extra_len
        skip = csize if csize not in (0, 0xFFFFFFFF) else 0
        nxt = find(view, LOCAL_SIG, data_offset + skip)
        if (flags & FLAG_DATA_DESCRIPTOR) and csize in (0, 0xFFFFFFFF):
            # Size unknown up front: the member runs to the next header or the directory.
            stop = nxt if nxt >= 0 else len(view)
            cd = find(view[:stop], CENTRAL_SIG, data_offset)
            if 0 <= cd < stop:
                stop = cd
            csize = stop - data_offset
            if csize >= 16 and bytes(view[stop - 16 : stop - 12]) == b"PK\x07\x08":
                csize -= 16
        crc_known = not flags & FLAG_DATA_DESCRIPTOR
        listing.entries.append(
            ZipEntry(
                name, name, method, flags, crc, csize, size, pos, data_offset, crc_known=crc_known
            )
        )
        pos = nxt


def list_zip(buf: Buffer, probe_window: int = 0) -> ZipListing:
    """List every member with its anomalies. Raises ZipError only when no structure is found.

    `probe_window` > 0 also marks stored members whose first bytes start nothing a reader
    routes further (`ZipEntry.routable` False; specification: tests/specs/may_route.py).
    """
    view = memoryview(buf)
    listing = ZipListing()
    eocd = _find_eocd(view)
    ok = eocd >= 0 and _central_listing(view, eocd, listing, probe_window)
    if not ok:
        listing = ZipListing(anomalies=listing.anomalies)  # nothing native holds any more
        listing.anomalies = [a for a in listing.anomalies if a.code == A.TRAILING_DATA.code]
        listing.anomalies.append(ContainerAnomaly(A.ZIP_NO_CENTRAL_DIRECTORY.code))
        _walk_local_headers(view, listing)
        if not listing.entries:
            raise ZipError("no zip central directory or local headers found")
    entries = listing.entries
    if listing.all_plain:
        return listing  # nothing to report (the native listing checked every entry)
    seen: set[str] = set()
    for e in entries:
        if e.plain and e.name not in seen:
            seen.add(e.name)
        else:
            _entry_anomalies(e, seen, listing.anomalies)
    return listing


_FLAG_ANOMALIES = FLAG_ENCRYPTED | FLAG_PATCHED | FLAG_STRONG_ENCRYPTION
_KNOWN_METHODS = frozenset((METHOD_STORED, METHOD_DEFLATED, METHOD_BZIP2, METHOD_LZMA, METHOD_AES))


def _entry_anomalies(e: ZipEntry, seen: set[str], out: list[ContainerAnomaly]) -> None:
    name = e.name
    if e.flags & _FLAG_ANOMALIES:
        if e.flags & FLAG_ENCRYPTED:
            out.append(ContainerAnomaly(A.ZIP_FLAG_ENCRYPTED.code, name))
        if e.flags & FLAG_PATCHED:
            out.append(ContainerAnomaly(A.ZIP_FLAG_PATCHED.code, name))
        if e.flags & FLAG_STRONG_ENCRYPTION:
            out.append(ContainerAnomaly(A.ZIP_FLAG_STRONG_ENCRYPTION.code, name))
    if e.local_name != name:
        out.append(
            ContainerAnomaly(A.ZIP_NAME_MISMATCH.code, name, f"local header: {e.local_name}")
        )
    if name in seen:
        out.append(ContainerAnomaly(A.ZIP_DUPLICATE_NAME.code, name))
    seen.add(name)
    if (
        name.startswith(("/", "\\"))
        or (len(name) > 1 and name[1] == ":")
        or (".." in name and ".." in name.replace("\\", "/").split("/"))
    ):
        out.append(ContainerAnomaly(A.ZIP_PATH_TRAVERSAL.code, name))
    if e.is_symlink:
        out.append(ContainerAnomaly(A.ZIP_SYMLINK_MEMBER.code, name))
    if e.method not in _KNOWN_METHODS:
        out.append(ContainerAnomaly(A.ZIP_UNKNOWN_METHOD.code, name, str(e.method)))


def raw_member(buf: Buffer, e: ZipEntry) -> memoryview:
    """The member's stored (possibly compressed) bytes, clipped to the buffer."""
    view = memoryview(buf)
    return view[e.data_offset : min(len(view), e.data_offset + e.compressed_size)]


class _Lzma:
    """Zip's LZMA method: 2-byte version, 2-byte props size, props, then raw LZMA1 data."""

    def __init__(self, head: bytes) -> None:
        (props_size,) = struct.unpack_from("<H", head, 2)
        props = head[4 : 4 + props_size]
        filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # type: ignore[attr-defined]
        self.skip = 4 + props_size
        self._d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self._d.decompress(data, max_length)


def read_member(
    buf: Buffer, e: ZipEntry, limit: int, *, prefix: bool = False, ratio: tuple[int, int] = (0, 0)
) -> tuple[memoryview | bytes, int]:
    """(data, compressed bytes consumed) for at most `limit` output bytes.

    Stored members are zero-copy views. Compressed members inflate incrementally so a bomb
    costs at most `limit` bytes. Unless `prefix` (probe the start only), raises MemberTooLarge
    if more than `limit` bytes would follow; zlib/lzma/OSError/ValueError on corrupt (or really
    encrypted) data.
    """
    raw = raw_member(buf, e)
    if e.method == METHOD_STORED:
        if len(raw) > limit:
            if not prefix:
                raise MemberTooLarge(f"{len(raw)} bytes, more than {limit}")
            return raw[:limit], limit
        return raw, len(raw)
    if e.method == METHOD_DEFLATED:
        dec: zlib._Decompress | bz2.BZ2Decompressor | _Lzma = zlib.decompressobj(-15)
    elif e.method == METHOD_BZIP2:
        dec = bz2.BZ2Decompressor()
    elif e.method == METHOD_LZMA:
        dec = _Lzma(bytes(raw[:64]))
        raw = raw[dec.skip :]
    else:
        raise ValueError(f"unsupported zip compression method {e.method}")
    out, consumed, stop = inflate(raw, dec, limit, ratio=ratio)
    if stop == "ratio":
        raise RatioExceeded(f"{len(out)} bytes from {consumed} compressed")
    if stop == "size" and not prefix:
        raise MemberTooLarge(f"more than {limit} bytes after decompression")
    return out, consumed


def inflate(
    raw: memoryview,
    dec: object,
    limit: int,
    *,
    ratio: tuple[int, int] = (0, 0),
) -> tuple[bytes, int, str]:
    """Run an incremental decompressor over `raw` for at most `limit` output bytes.

    Returns (output, compressed bytes consumed, why it stopped early: "" | "size" | "ratio").
    `ratio=(max_ratio, min_bytes)`: once the output passes min_bytes, stop with "ratio" when it
    is more than max_ratio times the compressed input consumed so far. Works with zlib objects
    (unconsumed_tail) and bz2/lzma/lz4 objects (needs_input). Decoder errors propagate.
    """
    max_ratio, ratio_floor = ratio
    is_zlib = hasattr(dec, "unconsumed_tail")
    out = bytearray()
    consumed = 0
    pending = b""
    while len(out) < limit and not getattr(dec, "eof", False):
        needs_input = getattr(dec, "needs_input", True)
        if (is_zlib and not pending) or (not is_zlib and needs_input):
            if consumed >= len(raw):
                break
            # small input steps: bz2/lzma/lz4 keep unread input inside, uncounted by `pending`
            pending = bytes(raw[consumed : consumed + _INPUT_STEP])
            consumed += len(pending)
        step = min(limit - len(out), 4 * _CHUNK)  # small steps keep the ratio check timely
        chunk = dec.decompress(pending, step)  # type: ignore[attr-defined]
        out += chunk
        pending = dec.unconsumed_tail if is_zlib else b""  # type: ignore[attr-defined]
        # Bytes the decoder really used: a zlib tail still pending has not been inflated yet, and
        # counting it let a 1 GiB bomb in a 1 MiB file pass the ratio check until the very end.
        used = consumed - len(pending)
        if max_ratio and len(out) > ratio_floor and len(out) > max_ratio * max(used, 1):
            return bytes(out), consumed, "ratio"
        if not chunk and not pending and consumed >= len(raw):
            break
    eof = getattr(dec, "eof", False)
    more_left = bool(pending) or consumed < len(raw) or not getattr(dec, "needs_input", True)
    truncated = len(out) >= limit and more_left and not eof
    return bytes(out), consumed, "size" if truncated else ""


def crc_ok(data: Buffer, e: ZipEntry) -> bool:
    return zlib.crc32(data) & 0xFFFFFFFF == e.crc
