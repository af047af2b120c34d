"""Stage 1, where files come from: `discover` yields the `FileRef`s of a root, filtered by globs.

Every regular file is yielded (no extension gate: attackers rename files). Things that cannot be
scanned (broken symlinks, symlink loops, FIFOs, unreadable directories) are yielded too, with
`error` set, so they become suspicious error rows (FS316) instead of vanishing from the report.
A root that does not exist is an error of the run (`FileNotFoundError`), not a row.

The package, one topic per module:
- `ref`: what a file to scan is (`FileRef`, Hugging Face coordinates, the row of an unreadable
  file); shared by discovery, the scanner and the workers;
- `local`: the walk of a local tree (symlink safety, special files);
- `hfcache`: Hugging Face cache blobs shared by revisions, scanned once;
- `stores`: which fsspec file system a URL is read through (extras, storage options);
- `remote`: objects under a URL as refs, and one object read by ranges for the scanner;
- `incremental`: which rows of an earlier run carry over (`--since`, `--resume`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator

from .local import walk_local
from .ref import FileRef, Walker, is_remote

NO_PICKLE_BY_NAME = ("*.safetensors",)  # skipped in hf:// repositories unless asked


def hf_excludes(target: str, exclude: list[str], with_safetensors: bool) -> list[str]:
    """The exclude globs for `target`: safetensors hold no pickle, skip them on the Hub."""
    if target.startswith("hf://") and not with_safetensors:
        return [*exclude, *NO_PICKLE_BY_NAME]
    return exclude


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


def _matches_any(rel: str, patterns: tuple[str, ...]) -> bool:
    base = rel.rsplit("/", 1)[-1]
    for pat in patterns:
        if fnmatch.fnmatchcase(rel, pat):
            return True
        if "/" not in pat and fnmatch.fnmatchcase(base, pat):
            return True
    return False
