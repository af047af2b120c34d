"""Where files come from: `FileRef`s from a local tree, filters, and the incremental skip.

Every regular file is yielded (no extension gate: attackers rename files). Things that cannot be
scanned (broken symlinks, symlink loops, FIFOs, unreadable directories) are yielded too, with
`error` set, so they become suspicious error rows (FS316) instead of vanishing from the report.
A root that does not exist is an error of the run (`FileNotFoundError`), not a row.
In a Hugging Face cache a blob that a `snapshots/REV/...` link points to is scanned under the
snapshot path only.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from .fileref import FileRef, Walker, hf_coordinates, is_remote
from .results import conform_table, read_parquet, read_provenance


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


def _walker_for(root: str) -> Walker:
    if is_remote(root):
        from .remote import walk_remote

        return walk_remote
    return walk_local


def _hf_linked_blobs(repo_dir: str, rel: str, excluded: Callable[[str], bool]) -> set[str]:
    """Names in `repo_dir/blobs` that a symlink under `repo_dir/snapshots` points to (and that
    the walk will therefore scan under the snapshot path). Excluded links do not count, so a blob
    is never dropped without its snapshot path being scanned."""
    blobs = os.path.normpath(os.path.join(repo_dir, "blobs"))
    blobs_real = ""
    linked: set[str] = set()
    snapshots = os.path.join(repo_dir, "snapshots")

    def rel_of(path: str) -> str:
        return f"{rel}/{os.path.relpath(path, repo_dir)}".replace(os.sep, "/").lstrip("/")

    if excluded(rel_of(snapshots)):
        return linked
    for dirpath, dirnames, filenames in os.walk(snapshots):
        dirnames[:] = [d for d in dirnames if not excluded(rel_of(os.path.join(dirpath, d)))]
        for name in filenames:
            link = os.path.join(dirpath, name)
            try:
                text = os.readlink(link)  # caches link relatively: ../../blobs/<hash>
            except OSError:
                continue  # a regular file (a mirror): nothing shared
            target = os.path.normpath(os.path.join(dirpath, text))
            if os.path.dirname(target) != blobs:
                blobs_real = blobs_real or os.path.realpath(blobs)
                target = os.path.realpath(link)  # absolute or chained links: resolve fully
                if os.path.dirname(target) != blobs_real:
                    continue
            if not excluded(rel_of(link)):
                linked.add(os.path.basename(target))
    return linked


_HF_REPO_NAME = re.compile(r"(?:models|datasets|spaces)--.+")


def split_hf_aliases(refs: list[FileRef]) -> tuple[list[FileRef], dict[str, list[FileRef]]]:
    """(refs to scan, path scanned -> other snapshot refs of the same blob).

    Revisions of a Hugging Face cache share blobs through `snapshots/REV/...` symlinks: each
    blob is scanned once, under its first snapshot path, and `alias_rows` copies that row to
    the others. Local refs only; anything else (hard links included) is scanned as it is.
    """
    first: dict[str, FileRef] = {}
    aliases: dict[str, list[FileRef]] = {}
    to_scan: list[FileRef] = []
    for ref in refs:
        if ref.error or is_remote(ref.path) or hf_coordinates(ref.path)[1] is None:
            to_scan.append(ref)
            continue
        try:  # one readlink, not realpath's walk: caches link snapshots/REV/f -> ../../blobs/x
            target = os.path.normpath(
                os.path.join(os.path.dirname(ref.path), os.readlink(ref.path))
            )
        except OSError:  # not a symlink (a mirror), or gone
            to_scan.append(ref)
            continue
        if os.path.basename(os.path.dirname(target)) != "blobs":
            to_scan.append(ref)
            continue
        primary = first.setdefault(target, ref)
        if primary is ref:
            to_scan.append(ref)
        else:
            aliases.setdefault(primary.path, []).append(ref)
    return to_scan, aliases


def alias_rows(results: pa.Table, aliases: Mapping[str, list[FileRef]]) -> pa.Table | None:
    """Rows for the alias paths of the scanned paths in `results` (see `split_hf_aliases`)."""
    take: list[int] = []
    refs: list[FileRef] = []
    for i, path in enumerate(results.column("path").to_pylist()):
        for ref in aliases.get(path, ()):
            take.append(i)
            refs.append(ref)
    if not take:
        return None
    table = results.take(take)
    columns = {
        "path": pa.array([r.path for r in refs], pa.string()),
        "mtime": pa.array([r.mtime for r in refs], pa.float64()),
        "hf_revision": pa.array([hf_coordinates(r.path)[1] for r in refs], pa.string()),
    }
    for name, column in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _matches_any(rel: str, patterns: tuple[str, ...]) -> bool:
    base = rel.rsplit("/", 1)[-1]
    for pat in patterns:
        if fnmatch.fnmatchcase(rel, pat):
            return True
        if "/" not in pat and fnmatch.fnmatchcase(base, pat):
            return True
    return False


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
            and _HF_REPO_NAME.fullmatch(os.path.basename(parent))
        ):
            linked = _hf_linked_blobs(parent, rel.rsplit("/", 1)[0] if "/" in rel else "", excluded)
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


# --- incremental scanning -------------------------------------------------------------------


# Parquet metadata keys that say how a row was computed. Rows carry over (--since, --resume)
# only from a file that agrees with this run on every one; otherwise every file is rescanned.
PROVENANCE_KEYS = (
    "fastscan_version",
    "opcode_table",
    "rules_hash",
    "model_hash",
    "config_hash",
    "index_hash",
)


def stale_reason(previous: Mapping[str, str], current: Mapping[str, str]) -> str:
    """ "" when rows computed under `previous` metadata are valid now, else what differs."""
    differ = [k for k in PROVENANCE_KEYS if previous.get(k) != current.get(k)]
    if not differ:
        return ""
    return "computed under another " + ", ".join(differ)


def load_previous(
    parquet_path: str, current: Mapping[str, str] | None = None
) -> tuple[dict[str, dict[str, Any]], str]:
    """(rows of an earlier fastscan Parquet keyed by path, stale reason).

    No rows when the file does not exist, or (with `current`, this run's metadata) when the
    file was computed under other rules, model, config, index or fastscan version: the
    reason says which, and every file is scanned again.
    """
    if not os.path.exists(parquet_path):
        return {}, ""
    if current is not None:
        reason = stale_reason(read_provenance(parquet_path), current)
        if reason:
            return {}, f"{parquet_path} {reason}"
    table = conform_table(read_parquet(parquet_path))
    return {row["path"]: row for row in table.to_pylist()}, ""


def unchanged(ref: FileRef, row: Mapping[str, Any]) -> bool:
    """True when `row` was produced from this very version of the file."""
    if ref.error or row.get("status") == "error":
        return False  # errors may be transient: always retry them
    if ref.etag and row.get("etag"):
        return bool(ref.etag == row["etag"] and ref.size == row.get("size"))
    return bool(ref.size == row.get("size") and ref.mtime == row.get("mtime"))


def reuse_rows(
    refs: Iterable[FileRef],
    parquet_path: str,
    current: Mapping[str, str],
    *,
    require_unchanged: bool = True,
) -> tuple[list[FileRef], list[Mapping[str, Any]], str]:
    """(refs to scan, rows carried forward, stale reason): `split_incremental` against the rows
    of `parquet_path` that are still valid under this run's metadata `current`."""
    previous, stale = load_previous(parquet_path, current)
    to_scan, carried = split_incremental(refs, previous, require_unchanged=require_unchanged)
    return to_scan, carried, stale


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
