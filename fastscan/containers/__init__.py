"""Stage 2: find every pickle stream inside a file, whatever container it hides in.

`open_container(source)` sniffs the content (never the extension), walks archives and compression
layers within the ContainerLimits budgets, and returns a `Container` listing `PickleStream`s and
anomalies. Use it as a context manager: large files are memory-mapped and the streams are views
into the map, released on exit. It never raises on a bad file: problems become a status
(`partial`, `unsupported`, `encrypted`, `error`) with a message.

Member names are paths relative to the file: a pickle in a tar inside a zip is
`inner.tar/data.pkl` (the zip's member `inner.tar`, then the tar's member `data.pkl`).
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
from typing import Union

from . import anomalies as A
from . import archive, npy, torch_legacy
from . import formats as F
from ._context import BudgetHit, ContainerLimits, ScanState
from .base import (
    COMPLETE,
    ENCRYPTED,
    ERROR,
    PARTIAL,
    UNSUPPORTED,
    Buffer,
    Container,
    ContainerAnomaly,
    PickleStream,
)
from .formats import COMPRESSED_FORMATS, NO_PICKLE_FORMATS
from .raw import read_raw
from .sniff import has_zip_eocd, is_tar, sniff

__all__ = [
    "Container",
    "ContainerAnomaly",
    "ContainerLimits",
    "PickleStream",
    "open_container",
    "sniff",
]

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, mmap.mmap]


def _scan(state: ScanState, buf: Buffer, member: str, depth: int, top: bool) -> str:
    """Sniff `buf` and hand it to its reader; return the (refined) format name."""
    fmt = sniff(buf)
    found = fmt
    if fmt == F.RAW_PICKLE:
        found = read_raw(state, buf, member)
    elif fmt == F.TORCH_LEGACY:
        torch_legacy.read_legacy(state, buf, member)
    elif fmt == F.NPY:
        npy.read_npy(state, buf, member)
    elif fmt in (F.ZIP, F.TAR):
        polyglot = (fmt == F.TAR and has_zip_eocd(buf)) or (fmt == F.ZIP and is_tar(buf))
        if polyglot:
            # Loaders disagree on which reading wins (docs/threats.md A16): scan both.
            state.anomaly(A.POLYGLOT_TAR_ZIP, member)
        if fmt == F.TAR or polyglot:
            found = archive.read_tar(state, buf, member, depth, _scan)
        if fmt == F.ZIP or polyglot:
            zip_fmt = archive.read_zip(state, buf, member, depth, _scan)
            found = zip_fmt if fmt == F.ZIP else found
    elif fmt == F.SEVENZ:
        found = archive.read_7z(state, buf, member, depth, _scan)
    elif fmt in COMPRESSED_FORMATS:
        found = archive.read_compressed(
            state, buf, member, depth=depth, fmt=fmt, recurse=_scan, top=top
        )
        if found == F.UNKNOWN and top:
            _unsupported(state, found)
    elif top:
        _unsupported(state, fmt)
    if top:
        state.container.format = found
    return found


def _unsupported(state: ScanState, fmt: str) -> None:
    state.container.status = UNSUPPORTED
    what = NO_PICKLE_FORMATS.get(fmt, f"{fmt}: not a pickle container")
    layers = "+".join(state.container.wrappers)
    state.container.message = f"{what} (inside {layers})" if layers else what


def _fail(container: Container, message: str, *, unopened: bool = False) -> Container:
    container.status = ERROR
    container.message = message
    container.format = container.format or F.UNKNOWN
    if unopened:  # not a byte read: FS316 (suspicious whatever the policy), not FS309
        container.notes["unopened"] = "true"
    return container


def _open_path(path: str, container: Container, limits: ContainerLimits) -> Buffer | None:
    """Open a path for reading (mmap when large); None after recording why it cannot be read."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            kind = "symlink loop" if exc.errno == errno.ELOOP else "broken symlink"
            _fail(container, f"{kind}: {path}", unopened=True)
        elif exc.errno == errno.ELOOP:
            _fail(container, f"symlink loop: {path}", unopened=True)
        else:
            _fail(container, f"cannot stat {path}: {exc.strerror or exc}", unopened=True)
        return None
    if stat.S_ISDIR(st.st_mode):
        _fail(container, f"is a directory: {path}", unopened=True)
        return None
    if not stat.S_ISREG(st.st_mode):
        _fail(
            container, f"not a regular file: {path}", unopened=True
        )  # FIFOs/devices would block or stream
        return None
    try:
        fh = open(path, "rb")  # noqa: SIM115 - kept open with its map, closed by Container.close
    except PermissionError:
        _fail(container, f"permission denied: {path}", unopened=True)
        return None
    except OSError as exc:
        _fail(container, f"cannot open {path}: {exc.strerror or exc}", unopened=True)
        return None
    try:
        if st.st_size < limits.mmap_threshold:
            data: Buffer = fh.read()
            fh.close()
            return data
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        fh.close()
        _fail(container, f"cannot read {path}: {exc}")
        return None
    container._resources.extend([fh, mm])
    view = memoryview(mm)
    container._resources.append(view)
    return view


def open_container(
    source: Source, *, name: str = "", limits: ContainerLimits | None = None
) -> Container:
    """Find every pickle stream in `source` (a path or a bytes-like object); never raises."""
    limits = limits or ContainerLimits()
    if isinstance(source, (bytes, bytearray, memoryview, mmap.mmap)):
        label = name
        buf: Buffer | None = memoryview(source) if isinstance(source, mmap.mmap) else source
        container = Container(format="", extension=os.path.splitext(label)[1].lower())
        if isinstance(buf, memoryview) and isinstance(source, mmap.mmap):
            container._resources.append(buf)
    else:
        path = os.fspath(source)
        label = name or path
        container = Container(format="", extension=os.path.splitext(label)[1].lower())
        buf = _open_path(path, container, limits)
        if buf is None:
            return container
    state = ScanState(container, limits)
    assert buf is not None
    try:
        _scan(state, buf, "", 0, True)
    except BudgetHit:
        pass
    except RecursionError:
        state.hit_budget(A.BUDGET_DEPTH, "", "recursion limit")
    except MemoryError:  # the worker's memory budget (RLIMIT_DATA): keep what was found
        state.hit_budget(A.BUDGET_MEMORY, "", "ran out of memory while reading")
    except Exception as exc:  # a reader bug must not kill a batch: keep what was found
        state.anomaly(A.READER_ERROR, "", f"{type(exc).__name__}: {exc}")
        if container.streams:
            state.partial(f"reader failed after finding streams: {type(exc).__name__}: {exc}")
        else:
            _fail(container, f"reader failed: {type(exc).__name__}: {exc}")
    if not container.format:  # a budget or reader error cut the top-level scan short
        container.format = F.UNKNOWN
    if container.format == F.EMPTY:
        container.status = UNSUPPORTED
        container.message = NO_PICKLE_FORMATS[F.EMPTY]
    if container.status == COMPLETE and container.budget:
        container.status = PARTIAL
    if container.status == ENCRYPTED and container.streams:
        # A nested encrypted archive next to readable pickles: the file was only partly read.
        container.status = PARTIAL
    return container
