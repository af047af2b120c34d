"""Hugging Face caches: revisions share blobs through `snapshots/REV/...` symlinks, so each blob
is scanned once (under its first snapshot path) and its row is copied to the other paths."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

import pyarrow as pa

from .ref import FileRef, hf_coordinates, is_remote


def hf_linked_blobs(repo_dir: str, rel: str, excluded: Callable[[str], bool]) -> set[str]:
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


HF_REPO_NAME = re.compile(r"(?:models|datasets|spaces)--.+")


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
