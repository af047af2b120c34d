"""What a file to scan is: a `FileRef` (local path or URL, with the version that identifies it),
where it sits in a Hugging Face cache or repository, and its row when it cannot be read.

Shared by discovery (the `sources` walkers), the scanner and the workers, so none of them
imports another to name a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from ..findings import UNREADABLE_FILE, Finding
from ..verdict import SUSPICIOUS, FileResult


@dataclass(frozen=True, slots=True)
class FileRef:
    """One file to scan. `size`/`mtime` (or `etag` on object stores) identify its version."""

    path: str
    size: int
    mtime: float
    etag: str = ""
    error: str = ""  # set when discovery already knows the file cannot be read
    rel: str = ""  # path relative to the scan root, "/"-separated (for user suppressions)


# A walker yields (path relative to the root with "/" separators, FileRef). Local walking is one
# walker; the fsspec walker for URLs (sources.remote.walk_remote) is the other.
Walker = Callable[[str, bool, Callable[[str], bool]], Iterator[tuple[str, FileRef]]]


def is_remote(path: str) -> bool:
    """A URL read through fsspec (anything but a local path or file://)."""
    return "://" in path and not path.startswith("file://")


# Hugging Face cache / mirror layout: .../{models,datasets,spaces}--ORG--NAME/snapshots/REV/<file>
# (blobs/<sha> files belong to a repository but to no single revision).
_HF_REPO_DIR = re.compile(
    r"(?:^|/)(models|datasets|spaces)--([^/]+?)(?:/(snapshots|blobs|refs)/([^/]+))?(?:/|$)"
)


# hf://[datasets/|spaces/]ORG/NAME[@REV]/path, as HfFileSystem spells repository URLs
_HF_URL = re.compile(r"hf://((?:datasets/|spaces/)?[^/@]+/[^/@]+)(?:@([^/]+))?(?:/|$)")


def hf_coordinates(path: str) -> tuple[str | None, str | None]:
    """(repository id, revision) of an hf:// URL or a file in a Hugging Face cache or mirror,
    else Nones. An hf:// URL without @REV is on the default branch, "main".

    Model repositories are "org/name"; datasets and spaces keep their kind, as in Hub URLs:
    "datasets/org/name", "spaces/org/name".
    """
    url = _HF_URL.match(path)
    if url is not None:
        return url.group(1), unquote(url.group(2) or "main")
    match = _HF_REPO_DIR.search(path.replace("\\", "/"))
    if match is None:
        return None, None
    repo = match.group(2).replace("--", "/")
    if match.group(1) != "models":
        repo = f"{match.group(1)}/{repo}"
    revision = match.group(4) if match.group(3) == "snapshots" else None
    return repo, revision


def error_row(
    ref: FileRef, message: str, *, verdict: str = SUSPICIOUS, findings: Sequence[Finding] = ()
) -> FileResult:
    """The row of a file that could not be scanned (status error): never clean by default."""
    hf_repo, hf_revision = hf_coordinates(ref.path)
    return FileResult(
        path=ref.path,
        size=ref.size,
        mtime=ref.mtime,
        etag=ref.etag,
        extension=os.path.splitext(ref.path)[1].lower(),
        status="error",
        verdict=verdict,
        error=message,
        findings=list(findings),
        hf_repo=hf_repo,
        hf_revision=hf_revision,
    )


def unreadable_result(ref: FileRef) -> FileResult:
    """The row of a file discovery could not even open: status error, suspicious (FS316)."""
    return error_row(ref, ref.error, findings=[UNREADABLE_FILE.finding(ref.error)])
