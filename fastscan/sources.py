"""Where files come from: `FileRef`s from a local tree, filters, and the incremental skip.

Every regular file is yielded (no extension gate: attackers rename files). Things that cannot be
scanned (broken symlinks, FIFOs, unreadable directories) are yielded too, with `error` set, so
they become error rows instead of silently vanishing from the report.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .sinks import conform_table, read_parquet


@dataclass(frozen=True, slots=True)
class FileRef:
    """One file to scan. `size`/`mtime` (or `etag` on object stores) identify its version."""

    path: str
    size: int
    mtime: float
    etag: str = ""
    error: str = ""  # set when discovery already knows the file cannot be read


# A walker yields (path relative to the root with "/" separators, FileRef). Local walking is one
# walker; an fsspec walker for s3:// URLs plugs in through `_walker_for` without touching filters.
Walker = Callable[[str, bool, Callable[[str], bool]], Iterator[tuple[str, FileRef]]]


def discover(
    root: str,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    follow_symlinks: bool = False,
) -> Iterator[FileRef]:
    """Yield every file under `root` (or `root` itself if it is a file), in a stable order.

    `include`/`exclude` are glob patterns matched against the path relative to `root` (with "/");
    a pattern without "/" also matches the base name, so `*.pt` means "any .pt anywhere".
    Excluded directories are not descended. Without `follow_symlinks`, symlinked directories are
    not entered; symlinked files are scanned through their target.
    """
    includes = tuple(include)
    excludes = tuple(exclude)

    def excluded(rel: str) -> bool:
        return _matches_any(rel, excludes)

    for rel, ref in _walker_for(root)(root, follow_symlinks, excluded):
        if excludes and excluded(rel):
            continue
        keep_anyway = ref.error.startswith("unreadable directory")  # may hide included files
        if includes and not keep_anyway and not _matches_any(rel, includes):
            continue
        yield ref


def is_remote(path: str) -> bool:
    """A URL read through fsspec (anything but a local path or file://)."""
    return "://" in path and not path.startswith("file://")


def _walker_for(root: str) -> Walker:
    if is_remote(root):
        from .remote import walk_remote

        return walk_remote
    return walk_local


# Hugging Face cache / mirror layout: .../models--ORG--NAME/snapshots/REVISION/<file>
# (blobs/<sha> files belong to a repository but to no single revision).
_HF_REPO_DIR = re.compile(r"(?:^|/)models--([^/]+?)(?:/(snapshots|blobs|refs)/([^/]+))?(?:/|$)")


# hf://[datasets/|spaces/]ORG/NAME[@REV]/path, as HfFileSystem spells repository URLs
_HF_URL = re.compile(r"hf://((?:datasets/|spaces/)?[^/@]+/[^/@]+)(?:@([^/]+))?(?:/|$)")


def hf_coordinates(path: str) -> tuple[str | None, str | None]:
    """(repository id, revision) of an hf:// URL or a file in a Hugging Face cache or mirror,
    else Nones. An hf:// URL without @REV is on the default branch, "main"."""
    url = _HF_URL.match(path)
    if url is not None:
        return url.group(1), unquote(url.group(2) or "main")
    match = _HF_REPO_DIR.search(path.replace("\\", "/"))
    if match is None:
        return None, None
    repo = match.group(1).replace("--", "/")
    revision = match.group(3) if match.group(2) == "snapshots" else None
    return repo, revision


def _matches_any(rel: str, patterns: tuple[str, ...]) -> bool:
    base = rel.rsplit("/", 1)[-1]
    for pat in patterns:
        if fnmatch.fnmatchcase(rel, pat):
            return True
        if "/" not in pat and fnmatch.fnmatchcase(base, pat):
            return True
    return False


def walk_local(
    root: str, follow_symlinks: bool, excluded: Callable[[str], bool]
) -> Iterator[tuple[str, FileRef]]:
    """Depth-first walk with `os.scandir`, entries sorted by name at every level."""
    if root.startswith("file://"):
        root = root[len("file://") :]
    try:
        st = os.stat(root)  # the root itself is always followed: it was named explicitly
    except OSError as exc:
        yield "", FileRef(root, -1, 0.0, error=_describe(exc, "cannot stat"))
        return
    if not stat.S_ISDIR(st.st_mode):
        yield os.path.basename(root), _ref_for(root, follow_symlinks=True)
        return
    seen_dirs: set[tuple[int, int]] = set()
    # Explicit stack instead of recursion (mirrors can be deeper than the recursion limit).
    # Items are (path, rel, is_dir); children are pushed reversed so names pop in order and the
    # walk visits paths in sorted tree order.
    stack: list[tuple[str, str, bool]] = [(root, "", True)]
    while stack:
        path, rel, is_dir = stack.pop()
        if not is_dir:
            yield rel, _ref_for(path, follow_symlinks=True)
            continue
        try:
            dst = os.stat(path)
            entries = _list_dir(path)
        except OSError as exc:
            yield rel, FileRef(path, -1, 0.0, error=_describe(exc, "unreadable directory"))
            continue
        key = (dst.st_dev, dst.st_ino)
        if key in seen_dirs:  # a symlink loop, or the same tree reached twice
            continue
        seen_dirs.add(key)
        children: list[tuple[str, str, bool]] = []
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            if _is_dir(entry, follow_symlinks):
                if not excluded(child_rel):
                    children.append((entry.path, child_rel, True))
            elif entry.is_symlink() and not follow_symlinks and _points_to_dir(entry.path):
                continue  # symlinked directory, not followed
            else:
                children.append((entry.path, child_rel, False))
        stack.extend(reversed(children))


def _list_dir(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def _is_dir(entry: os.DirEntry[str], follow_symlinks: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow_symlinks)
    except OSError:
        return False


def _points_to_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def _ref_for(path: str, follow_symlinks: bool) -> FileRef:
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)
    except FileNotFoundError as exc:
        if os.path.islink(path):
            lst = os.lstat(path)
            return FileRef(path, -1, lst.st_mtime, error=f"broken symlink: {exc.strerror}")
        return FileRef(path, -1, 0.0, error=_describe(exc, "cannot stat"))
    except OSError as exc:  # ELOOP on a symlink cycle, EACCES, ...
        return FileRef(path, -1, 0.0, error=_describe(exc, "cannot stat"))
    if not stat.S_ISREG(st.st_mode):
        # Opening a FIFO would block the worker forever; devices can be endless.
        kind = _file_kind(st.st_mode)
        return FileRef(path, st.st_size, st.st_mtime, error=f"not a regular file: {kind}")
    return FileRef(path, st.st_size, st.st_mtime)


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISDIR, "directory"),
    ):
        if test(mode):
            return name
    return "special file"


def _describe(exc: OSError, what: str) -> str:
    return f"{what}: {type(exc).__name__}: {exc.strerror or exc}"


# --- incremental scanning -------------------------------------------------------------------


def load_previous(parquet_path: str) -> dict[str, dict[str, Any]]:
    """Rows of an earlier fastscan Parquet, keyed by path (empty if the file does not exist)."""
    if not os.path.exists(parquet_path):
        return {}
    table = conform_table(read_parquet(parquet_path))
    return {row["path"]: row for row in table.to_pylist()}


def unchanged(ref: FileRef, row: Mapping[str, Any]) -> bool:
    """True when `row` was produced from this very version of the file."""
    if ref.error or row.get("status") == "error":
        return False  # errors may be transient: always retry them
    if ref.etag and row.get("etag"):
        return bool(ref.etag == row["etag"] and ref.size == row.get("size"))
    return bool(ref.size == row.get("size") and ref.mtime == row.get("mtime"))


def split_incremental(
    refs: Iterable[FileRef],
    previous: Mapping[str, Mapping[str, Any]],
    *,
    require_unchanged: bool = True,
) -> tuple[list[FileRef], list[Mapping[str, Any]]]:
    """Split refs into (to scan, previous rows carried forward).

    With `require_unchanged=False` (resume) any path already present is kept as is.
    """
    to_scan: list[FileRef] = []
    carried: list[Mapping[str, Any]] = []
    for ref in refs:
        row = previous.get(ref.path)
        if row is not None and (not require_unchanged or unchanged(ref, row)):
            carried.append(row)
        else:
            to_scan.append(ref)
    return to_scan, carried
