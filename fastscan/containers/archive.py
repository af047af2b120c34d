"""Generic archives and single-file compression: zip, tar, 7z, gzip/bz2/xz/lzma/lz4/zlib.

Every member goes through `scan_member`: a small prefix is read and sniffed, and the whole member
is read only when it may hold a pickle (a pickle-looking prefix, a `*.pkl` name, an object-dtype
.npy) or is itself an archive (recursion, bounded by `max_depth`). Tensor and array data is never
read beyond its probe. Decompression is incremental and capped by the ContainerLimits budgets.
"""

from __future__ import annotations

import bz2
import io
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from typing import Any

from . import anomalies as A
from . import formats as F
from . import npy, torch_legacy, torch_zip, zipread
from ._context import BudgetHit, ScanState, join_member
from ._probe import may_be_cut_pickle, parses_as_pickle
from .base import ENCRYPTED, Buffer
from .formats import NESTED_FORMATS, PICKLE_FORMATS
from .raw import read_raw
from .sniff import sniff

# recurse(state, buf, member, depth, top) -> format found
Recurse = Callable[[ScanState, Buffer, str, int, bool], str]

_ROUTED_FORMATS = PICKLE_FORMATS | NESTED_FORMATS | {F.NPY, F.EMPTY}  # own readers, not raw
_DECODE_ERRORS = (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError, RuntimeError)


def _decompressor(fmt: str) -> Any:
    if fmt == F.GZIP:
        return zlib.decompressobj(31)
    if fmt in (F.ZLIB, F.JOBLIB_ZFILE):
        return zlib.decompressobj()
    if fmt == F.BZ2:
        return bz2.BZ2Decompressor()
    if fmt == F.XZ:
        return lzma.LZMADecompressor(lzma.FORMAT_XZ)
    if fmt == F.LZMA:
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE)
    import lz4.frame

    return lz4.frame.LZ4FrameDecompressor()


def read_compressed(
    state: ScanState, buf: Buffer, member: str, *, depth: int, fmt: str, recurse: Recurse, top: bool
) -> str:
    """Decompress one single-file layer (capped) and scan what comes out."""
    view = memoryview(buf)
    if fmt == F.JOBLIB_ZFILE:  # "ZF" + 19-char hex length (+ optional space) + zlib data
        start = 21 + (1 if bytes(view[21:22]) == b" " else 0)
        view = view[start:]
    if depth + 1 > state.limits.max_depth:
        state.hit_budget(
            A.BUDGET_DEPTH, member, f"{fmt} layer beyond depth {state.limits.max_depth}"
        )
        return fmt
    limit = state.decompress_limit()
    try:
        out, consumed, stop = zipread.inflate(view, _decompressor(fmt), limit, ratio=state.ratio())
    except _DECODE_ERRORS as exc:
        if fmt in (F.ZLIB, F.LZMA):
            return F.UNKNOWN  # weak magic: it was not compressed after all
        state.anomaly(A.DECOMPRESS_ERROR, member, f"{fmt}: {exc}")
        state.partial(f"{fmt} stream of {member or 'file'} is corrupt: {exc}")
        return fmt
    state.count_decompressed(len(out))
    if stop == "ratio":
        state.hit_budget(
            A.BUDGET_COMPRESSION_RATIO, member, f"{fmt}: {len(out)} bytes from {consumed}"
        )
    elif stop == "size":
        state.hit_budget(state.too_large_budget(), member, f"{fmt}: more than {limit} bytes")
    elif consumed < len(view):
        state.anomaly(A.TRAILING_DATA, member, f"{len(view) - consumed} bytes after {fmt} data")
    if top:
        state.container.wrappers.append(fmt)
    if not out:
        return F.EMPTY if top else fmt
    return recurse(state, out, member, depth + 1, top)


def scan_member(
    state: ScanState,
    path: str,
    prefix: Buffer,
    get_full: Callable[[], Buffer],
    *,
    depth: int,
    recurse: Recurse,
    pickle_kind: str = F.KIND_PICKLE,
) -> str:
    """Route one archive member by its prefix; read it whole only if it may hold a pickle."""
    fmt = sniff(prefix)
    named_pickle = path.lower().endswith(".pkl")
    try:
        if fmt == F.UNKNOWN and _cut_by_window(state, prefix):
            # The window ended inside a huge first operand (docs/threats.md G5): decide on the whole
            # member, read once and handed on, so the payload after the padding is scanned.
            full = get_full()
            if parses_as_pickle(full):
                read_raw(state, full, path, pickle_kind)
                return F.RAW_PICKLE
            get_full = _constant(full)
        if fmt == F.RAW_PICKLE or (named_pickle and fmt not in _ROUTED_FORMATS):
            read_raw(state, get_full(), path, pickle_kind)
            return F.RAW_PICKLE if fmt != F.UNKNOWN else fmt
        if fmt == F.TORCH_LEGACY:
            recurse(state, get_full(), path, depth, False)
        elif fmt in NESTED_FORMATS:
            if depth + 1 > state.limits.max_depth:
                state.hit_budget(A.BUDGET_DEPTH, path, f"archive nested deeper than {depth}")
                return fmt
            recurse(state, get_full(), path, depth + 1, False)
        elif fmt == F.NPY:
            try:
                header, _ = npy.parse_header(prefix)
                _, has_object = npy.descr_info(header["descr"])
            except (npy.NpyError, KeyError):
                has_object = True  # cannot tell from the prefix: read it whole
            if has_object:
                npy.read_npy(state, get_full(), path)
    except zipread.MemberTooLarge as exc:
        state.hit_budget(state.too_large_budget(), path, str(exc))
    except zipread.RatioExceeded as exc:
        state.hit_budget(A.BUDGET_COMPRESSION_RATIO, path, str(exc))
    except _DECODE_ERRORS as exc:
        state.anomaly(A.MEMBER_UNREADABLE, path, str(exc))
        state.partial(f"member {path} could not be read: {exc}")
    return fmt


def _cut_by_window(state: ScanState, prefix: Buffer) -> bool:
    return len(prefix) >= state.limits.probe_bytes and may_be_cut_pickle(prefix)


def _constant(data: Buffer) -> Callable[[], Buffer]:
    """A get_full for members already in memory (tar slices, 7z output)."""
    return lambda: data


# -- zip --------------------------------------------------------------------------------------


def read_zip(state: ScanState, buf: Buffer, member: str, depth: int, recurse: Recurse) -> str:
    try:
        listing = zipread.list_zip(buf, state.limits.probe_bytes)
    except zipread.ZipError as exc:
        state.anomaly(A.ZIP_UNREADABLE, member, str(exc))
        state.partial(f"zip structure of {member or 'file'} unreadable: {exc}")
        return F.ZIP
    for a in listing.anomalies:
        state.anomaly(A.BY_CODE[a.code], join_member(member, a.member), a.detail)
    entries = [e for e in listing.entries if not e.is_dir] if listing.has_dirs else listing.entries
    fmt = torch_zip.classify([e.name for e in entries])
    if fmt in (F.TORCH_ZIP, F.TORCHSCRIPT):
        torch_zip.note_records(state, buf, entries, member)
    flagged_ok = 0
    locked: list[str] = []
    try:
        window, size = state.limits.probe_bytes, len(buf)
        counted = _count_members(state, entries)
        # `quiet` members (one per tensor storage) start no format `scan_member` reads further
        # (the listing checked): only their probe windows count, summed natively
        if len(counted) == len(entries):
            state.container.bytes_read += listing.quiet_bytes
        else:
            state.container.bytes_read += sum(_window(e, size, window) for e in counted if e.quiet)
        for e in counted:
            if e.quiet:
                continue
            if not e.routable and e.name[-4:].lower() != ".pkl":
                state.container.bytes_read += _window(e, size, window)
                continue
            if e.is_symlink:
                continue
            path = join_member(member, e.name)
            kind = torch_zip.stream_kind(fmt, e.name)
            found = _zip_member(state, buf, e, path, depth=depth, recurse=recurse, kind=kind)
            if e.encrypted_flag:
                if found == "locked":
                    locked.append(path)
                else:
                    flagged_ok += 1
        if len(counted) < len(entries):  # the first member past `max_members`
            state.count_member(join_member(member, entries[len(counted)].name))  # raises
    except BudgetHit:
        pass
    if locked and not flagged_ok:
        _report_locked(state, locked, len(entries))
    return fmt


def _count_members(state: ScanState, entries: list[zipread.ZipEntry]) -> list[zipread.ZipEntry]:
    """Count the members against `max_members` in one step; the ones within it."""
    room = max(0, state.limits.max_members - state.container.members_total)
    state.container.members_total += min(room, len(entries))
    return entries[:room]


def _window(e: zipread.ZipEntry, size: int, window: int) -> int:
    return min(size - e.data_offset, e.compressed_size, window)


def _zip_member(
    state: ScanState,
    buf: Buffer,
    e: zipread.ZipEntry,
    path: str,
    *,
    depth: int,
    recurse: Recurse,
    kind: str,
) -> str:
    """Scan one zip member; 'locked' when it has the encryption flag and cannot be read."""
    try:
        prefix, _ = zipread.read_member(buf, e, state.limits.probe_bytes, prefix=True)
    except (*_DECODE_ERRORS, zipread.RatioExceeded) as exc:
        if e.encrypted_flag:
            return "locked"
        state.anomaly(A.MEMBER_UNREADABLE, path, str(exc))
        state.partial(f"member {path} could not be read: {exc}")
        return "error"
    state.container.bytes_read += len(prefix)
    if e.encrypted_flag and sniff(prefix) == F.UNKNOWN and not _cut_by_window(state, prefix):
        return "locked"  # really encrypted: reading it whole would only hand noise onward

    def get_full() -> Buffer:
        limit = state.limits.max_member_bytes
        if e.method != zipread.METHOD_STORED:
            limit = state.decompress_limit()
        data, _ = zipread.read_member(buf, e, limit, ratio=state.ratio())
        if e.method != zipread.METHOD_STORED:
            state.count_decompressed(len(data))
        if e.crc_known and not zipread.crc_ok(data, e):
            state.anomaly(A.ZIP_CRC_MISMATCH, path)
        return data

    return scan_member(
        state, path, prefix, get_full, depth=depth, recurse=recurse, pickle_kind=kind
    )


def _report_locked(state: ScanState, locked: list[str], n_entries: int) -> None:
    for path in locked:
        state.anomaly(A.ZIP_ENCRYPTED_MEMBER, path)
    if not state.container.streams and len(locked) == n_entries:
        state.container.status = ENCRYPTED
        state.container.message = "password-protected archive: members are encrypted"
    else:
        state.partial(f"{len(locked)} encrypted member(s) could not be read")


# -- tar --------------------------------------------------------------------------------------


class _ViewFile(io.RawIOBase):
    """Seekable read-only file over a buffer (tarfile, py7zr) without copying it."""

    def __init__(self, data: Buffer) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        chunk = self._view[self._pos : self._pos + len(b)]
        n = len(chunk)
        b[:n] = chunk
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, len(self._view))[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def _unsafe_name(name: str) -> bool:
    norm = posixpath.normpath(name.replace("\\", "/"))
    return name.startswith(("/", "\\")) or norm == ".." or norm.startswith("../")


def read_tar(state: ScanState, buf: Buffer, member: str, depth: int, recurse: Recurse) -> str:
    view = memoryview(buf)
    files: dict[str, tarfile.TarInfo] = {}
    try:
        with tarfile.open(fileobj=_ViewFile(view), mode="r:") as tf:
            for info in tf:
                path = join_member(member, info.name)
                state.count_member(path)
                if _unsafe_name(info.name):
                    state.anomaly(A.TAR_PATH_TRAVERSAL, path)
                if info.issym() or info.islnk():
                    state.anomaly(A.TAR_LINK_MEMBER, path, info.linkname)
                elif info.isfile():
                    if info.name in files:
                        state.anomaly(A.TAR_DUPLICATE_NAME, path)
                    files[info.name] = info
    except BudgetHit:
        pass
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        state.anomaly(A.TAR_UNREADABLE, member, str(exc))
        state.partial(f"tar structure of {member or 'file'} is damaged: {exc}")

    def body(info: tarfile.TarInfo) -> memoryview:
        return view[info.offset_data : info.offset_data + info.size]

    if torch_legacy.is_legacy_tar(set(files)):
        bodies = {k: body(files[k]) for k in ("pickle", "storages", "tensors")}
        torch_legacy.read_legacy_tar(state, bodies, member)
        return F.TORCH_LEGACY
    for name, info in files.items():
        data = body(info)
        state.container.bytes_read += min(len(data), state.limits.probe_bytes)
        prefix = data[: state.limits.probe_bytes]
        path = join_member(member, name)
        scan_member(state, path, prefix, _constant(data), depth=depth, recurse=recurse)
    return F.TAR


# -- 7z ---------------------------------------------------------------------------------------


def read_7z(state: ScanState, buf: Buffer, member: str, depth: int, recurse: Recurse) -> str:
    try:
        import py7zr
        from py7zr.io import Py7zBytesIO, WriterFactory
    except ImportError:  # pragma: no cover - py7zr is a runtime dependency
        state.container.status = "unsupported"
        state.container.message = "7z archive: py7zr is not installed"
        return F.SEVENZ

    limit = state.decompress_limit()

    class _CappedFactory(WriterFactory):
        def __init__(self) -> None:
            self.products: dict[str, Py7zBytesIO] = {}

        def create(self, filename: str) -> Py7zBytesIO:
            self.products[filename] = Py7zBytesIO(filename, limit)
            return self.products[filename]

    try:
        with py7zr.SevenZipFile(_ViewFile(buf), mode="r") as archive:  # type: ignore[arg-type]
            if archive.needs_password():
                if not state.container.streams:
                    state.container.status = ENCRYPTED
                    state.container.message = "password-protected 7z archive"
                state.anomaly(A.SEVENZ_ENCRYPTED, member)
                return F.SEVENZ
            infos = [i for i in archive.list() if not i.is_directory]
            declared = sum(int(i.uncompressed or 0) for i in infos)
            if declared > limit:
                state.hit_budget(state.too_large_budget(), member, f"7z declares {declared} bytes")
                return F.SEVENZ
            factory = _CappedFactory()
            archive.extractall(factory=factory)
    except Exception as exc:  # py7zr raises many types on hostile input
        state.anomaly(A.SEVENZ_UNREADABLE, member, f"{type(exc).__name__}: {exc}")
        state.partial(f"7z archive {member or 'file'} could not be read: {exc}")
        return F.SEVENZ
    try:
        for name, product in factory.products.items():
            path = join_member(member, name)
            state.count_member(path)
            product.seek(0)
            data = product.read()
            state.count_decompressed(len(data))
            prefix = data[: state.limits.probe_bytes]
            scan_member(state, path, prefix, _constant(data), depth=depth, recurse=recurse)
    except BudgetHit:
        pass
    return F.SEVENZ
