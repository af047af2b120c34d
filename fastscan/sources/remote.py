"""Object stores and other fsspec URLs: the objects under a URL as `FileRef`s, and one object
read for the scanner by the ranges `containers.sparse` plans.

Listing: `walk_remote` is the `sources` walker for any `proto://` root other than `file://`;
refs carry the full URL, the size, the last-modified time and the ETag (incremental runs key on
ETag + size for these refs).

Reading: `prepare_remote` fetches what the container readers need into a sparse buffer and hands
it to `Scanner.prepare`, which judges it exactly like a local file; `bytes_read` is what was
transferred. A read that fails, or an object over the whole-read budget, is an error row.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from ..containers import ContainerLimits
from ..containers.sparse import (
    DEFAULT_MAX_WHOLE,
    fetch_for_scan,
    refetch_whole,
    stream_outside_plan,
)
from ..verdict import FileResult
from .ref import FileRef, error_row
from .stores import filesystem_for

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _etag(info: Mapping[str, Any]) -> str:
    for key in ("ETag", "etag", "md5Hash", "checksum"):
        value = info.get(key)
        if value:
            return str(value).strip('"')
    # Hugging Face: an LFS file's sha256 (its content hash), else the git blob id
    lfs = info.get("lfs")
    sha = lfs.get("sha256") if isinstance(lfs, Mapping) else getattr(lfs, "sha256", None)
    return str(sha or info.get("blob_id") or "")


def _mtime(info: Mapping[str, Any]) -> float:
    for key in ("LastModified", "mtime", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


def walk_remote(
    root: str, follow_symlinks: bool, excluded: Callable[[str], bool]
) -> Iterator[tuple[str, FileRef]]:
    """Every object under the URL `root` (or the object itself), sorted by key."""
    fs, base = filesystem_for(root)
    protocol = root.split("://", 1)[0]
    base = base.rstrip("/")
    try:
        found = fs.find(base, detail=True)
        if not found and fs.isfile(base):
            found = {base: fs.info(base)}
    except Exception as exc:  # SDK errors are not OSErrors; the root must be listable
        raise OSError(f"cannot list {root}: {type(exc).__name__}: {exc}") from exc
    if not found:  # object stores have no empty folders: a typo, not a clean tree
        raise FileNotFoundError(f"root does not exist: {root} (no object at or under it)")
    for path in sorted(found):
        info = found[path]
        if info.get("type", "file") != "file":
            continue
        rel = path[len(base) + 1 :] if path.startswith(base + "/") else path.rsplit("/", 1)[-1]
        url = f"{protocol}://{path}"
        yield rel, FileRef(url, int(info.get("size") or 0), _mtime(info), _etag(info), rel=rel)


class Preparer(Protocol):
    """What `prepare_remote` needs of the scanner (`scan.Scanner`)."""

    container_limits: ContainerLimits
    hash_files: bool

    def prepare(self, ref: FileRef, buffer: Any = None) -> tuple[FileResult, Any]: ...


def prepare_remote(
    scanner: Preparer, ref: FileRef, *, max_whole_bytes: int = DEFAULT_MAX_WHOLE
) -> tuple[FileResult, Any]:
    """Every stage but the model for one remote object: (FileResult, analysis or None).

    The ranges are read into a sparse buffer that `scanner.prepare(ref, buffer)` judges exactly
    like a local file; the caller then scores it with the rest of its batch (`Scanner.score`).
    `bytes_read` becomes the bytes actually transferred. A read that fails is an error row.
    """
    try:
        fs, path = filesystem_for(ref.path)
        obj = fetch_for_scan(
            fs, path, ref.size, limits=scanner.container_limits, max_whole_bytes=max_whole_bytes
        )
    except MemoryError:
        raise  # the budget's own row (Scanner.prepare), as for a local file
    except Exception as exc:  # SDK and network errors are not OSErrors: one row, not a crash
        return _unread(ref, f"cannot read {ref.path}: {type(exc).__name__}: {exc}", 0), None
    try:
        if obj.too_large:
            return _unread(ref, obj.too_large, obj.fetched), None
        result, analysis = scanner.prepare(ref, obj.buffer)
        members = [s.member for s, _facts in analysis.streams] if analysis is not None else []
        if stream_outside_plan(obj, members):
            refetch_whole(fs, path, obj, max_whole_bytes)
            if obj.too_large:  # what the partial read found stands; the rest was never read
                result.status, result.error = "error", obj.too_large
            else:
                result, analysis = scanner.prepare(ref, obj.buffer)
        result.bytes_read = obj.fetched
        # A Hub LFS object's ETag is its sha256: the content hash without reading every byte.
        if scanner.hash_files and _SHA256_HEX.fullmatch(ref.etag):
            result.sha256 = ref.etag
        return result, analysis
    finally:
        obj.close()


def _unread(ref: FileRef, error: str, fetched: int) -> FileResult:
    """The row of an object that was not read: an error, never silently clean."""
    row = error_row(ref, error)
    row.bytes_read = fetched
    return row
