"""The walk of a local tree: `FileRef`s in sorted tree order, symlinks not followed unless
asked, special files and unreadable directories as refs with `error` set (see `sources`).
In a Hugging Face cache a blob that a `snapshots/REV/...` link points to is scanned under the
snapshot path only (`hfcache`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator

from .hfcache import HF_REPO_NAME, hf_linked_blobs
from .ref import FileRef


def check_root(root: str) -> None:
    """Raise FileNotFoundError (an OSError) with one clear line when a local root is missing."""
    path = root[len("file://") :] if root.startswith("file://") else root
    try:
        os.stat(path)  # the root itself is always followed: it was named explicitly
    except OSError as exc:
        raise FileNotFoundError(
            f"root does not exist or cannot be read: {root} ({exc.strerror or exc})"
        ) from None


def local_ref(path: str) -> FileRef:
    """The FileRef of one named file (the `scan` command), `rel` to the current directory."""
    rel = os.path.relpath(os.path.abspath(path))
    rel = "" if rel.startswith("..") else rel.replace(os.sep, "/")
    return _ref_for(path, follow_symlinks=True, rel=rel)


def walk_local(
    root: str, follow_symlinks: bool, excluded: Callable[[str], bool]
) -> Iterator[tuple[str, FileRef]]:
    """Depth-first walk with `os.scandir`, entries sorted by name at every level."""
    if root.startswith("file://"):
        root = root[len("file://") :]
    check_root(root)
    st = os.stat(root)
    if not stat.S_ISDIR(st.st_mode):
        name = os.path.basename(root)
        yield name, _ref_for(root, follow_symlinks=True, rel=name)
        return
    seen_dirs: set[tuple[int, int]] = set()
    # Explicit stack instead of recursion (mirrors can be deeper than the recursion limit).
    # Items are (path, rel, is_dir); children are pushed reversed so names pop in order and the
    # walk visits paths in sorted tree order.
    stack: list[tuple[str, str, bool]] = [(root, "", True)]
    while stack:
        path, rel, is_dir = stack.pop()
        if not is_dir:
            yield rel, _ref_for(path, follow_symlinks=True, rel=rel)
            continue
        try:
            dst = os.stat(path)
            entries = _list_dir(path)
        except OSError as exc:
            yield rel, FileRef(path, -1, 0.0, error=_describe(exc, "unreadable directory"), rel=rel)
            continue
        key = (dst.st_dev, dst.st_ino)
        if key in seen_dirs:  # a symlink loop, or the same tree reached twice
            continue
        seen_dirs.add(key)
        linked: set[str] = set()
        parent = os.path.dirname(path.rstrip("/\\"))
        if (
            rel
            and os.path.basename(path.rstrip("/\\")) == "blobs"
            and HF_REPO_NAME.fullmatch(os.path.basename(parent))
        ):
            linked = hf_linked_blobs(parent, rel.rsplit("/", 1)[0] if "/" in rel else "", excluded)
        children: list[tuple[str, str, bool]] = []
        for entry in entries:
            if entry.name in linked:
                continue  # scanned (and reported) under its snapshots/REV/... path
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


def _ref_for(path: str, follow_symlinks: bool, rel: str = "") -> FileRef:
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)
    except FileNotFoundError as exc:
        if os.path.islink(path):
            lst = os.lstat(path)
            error = f"broken symlink: {exc.strerror}"
            return FileRef(path, -1, lst.st_mtime, error=error, rel=rel)
        return FileRef(path, -1, 0.0, error=_describe(exc, "cannot stat"), rel=rel)
    except OSError as exc:  # ELOOP on a symlink cycle, EACCES, ...
        return FileRef(path, -1, 0.0, error=_describe(exc, "cannot stat"), rel=rel)
    if not stat.S_ISREG(st.st_mode):
        # Opening a FIFO would block the worker forever; devices can be endless.
        kind = _file_kind(st.st_mode)
        error = f"not a regular file: {kind}"
        return FileRef(path, st.st_size, st.st_mtime, error=error, rel=rel)
    return FileRef(path, st.st_size, st.st_mtime, rel=rel)


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
