"""sources: local discovery (order, globs, symlinks, unreadable things) and the incremental skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fastscan.results import results_to_batch
from fastscan.sources import discover, local
from fastscan.sources.incremental import load_previous, split_incremental, unchanged
from fastscan.sources.ref import FileRef
from fastscan.verdict import FileResult


def names(refs: list[FileRef], root: Path) -> list[str]:
    return [os.path.relpath(r.path, root) for r in refs]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for rel in ("b/z.pt", "b/a.bin", "a/deep/er/model.ckpt", "a/README", "top.pkl", "b/c/x.npy"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rel.encode())
    return root


def test_every_regular_file_in_stable_depth_first_order(tree: Path):
    refs = list(discover(str(tree)))
    assert names(refs, tree) == [
        "a/README",  # no extension gate
        "a/deep/er/model.ckpt",
        "b/a.bin",
        "b/c/x.npy",
        "b/z.pt",
        "top.pkl",
    ]
    ref = refs[0]
    st = os.stat(ref.path)
    assert (ref.size, ref.mtime, ref.etag, ref.error) == (st.st_size, st.st_mtime, "", "")


def test_globs_match_relative_paths_and_base_names(tree: Path):
    assert names(list(discover(str(tree), include=["*.pt", "*.bin"])), tree) == [
        "b/a.bin",
        "b/z.pt",
    ]
    assert names(list(discover(str(tree), include=["b/*"])), tree) == [
        "b/a.bin",
        "b/c/x.npy",
        "b/z.pt",
    ]
    # An excluded directory is not descended.
    assert names(list(discover(str(tree), exclude=["b", "README"])), tree) == [
        "a/deep/er/model.ckpt",
        "top.pkl",
    ]
    assert names(list(discover(str(tree), exclude=["a/deep/*"])), tree)[0] == "a/README"


def test_root_may_be_a_single_file(tree: Path):
    refs = list(discover(str(tree / "top.pkl")))
    assert [r.path for r in refs] == [str(tree / "top.pkl")]


def test_symlinks_loops_and_broken_links(tree: Path):
    (tree / "a" / "loop").symlink_to(tree)
    (tree / "b" / "alias.pt").symlink_to(tree / "top.pkl")
    (tree / "dangling").symlink_to(tree / "gone")
    (tree / "self").symlink_to(tree / "self")

    plain = {os.path.relpath(r.path, tree): r for r in discover(str(tree))}
    assert "a/loop/top.pkl" not in plain  # directory links are not followed by default
    assert plain["b/alias.pt"].size == (tree / "top.pkl").stat().st_size
    assert plain["dangling"].error.startswith("broken symlink")
    assert plain["self"].error.startswith("cannot stat")  # ELOOP

    followed = names(list(discover(str(tree), follow_symlinks=True)), tree)
    assert len(followed) == len(set(followed))  # the loop is entered at most once
    assert not any(n.startswith("a/loop/") for n in followed)  # it leads back to the root
    assert "dangling" in followed and "b/alias.pt" in followed


def test_followed_directory_link_outside_the_tree(tree: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.pt").write_bytes(b"w")
    (tree / "link").symlink_to(outside)
    assert "link/w.pt" not in names(list(discover(str(tree))), tree)
    assert "link/w.pt" in names(list(discover(str(tree), follow_symlinks=True)), tree)


def test_fifo_is_an_error_ref_and_never_opened(tree: Path):
    os.mkfifo(tree / "pipe")
    ref = next(r for r in discover(str(tree)) if r.path.endswith("pipe"))
    assert ref.error == "not a regular file: fifo"


def test_unreadable_directory_becomes_one_error_ref(tree: Path, monkeypatch: pytest.MonkeyPatch):
    real_scandir = os.scandir
    locked = str(tree / "b")

    def scandir(path: str):  # root can read anything, so simulate EACCES
        if str(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(local.os, "scandir", scandir)
    refs = list(discover(str(tree), include=["*.pkl"]))
    errors = [r for r in refs if r.error]
    assert [r.path for r in errors] == [locked]
    assert errors[0].error == "unreadable directory: PermissionError: Permission denied"
    assert names([r for r in refs if not r.error], tree) == ["top.pkl"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads chmod 000 directories")
def test_chmod_000_directory(tree: Path):
    (tree / "b").chmod(0)
    try:
        errors = [r for r in discover(str(tree)) if r.error]
    finally:
        (tree / "b").chmod(0o755)
    assert [r.path for r in errors] == [str(tree / "b")]


def test_missing_root_is_an_error_of_the_run_not_a_row(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="root does not exist"):
        list(discover(str(tmp_path / "nope")))


def test_urls_are_not_walked_locally():
    # a URL goes to the fsspec walker, never to os.scandir: an unknown protocol is its error
    with pytest.raises(ValueError, match="Protocol not known"):
        list(discover("nosuch://bucket/prefix"))


def test_unchanged_compares_size_and_mtime_or_etag():
    ref = FileRef("p", 10, 1.5)
    assert unchanged(ref, {"size": 10, "mtime": 1.5, "status": "complete"})
    assert not unchanged(ref, {"size": 11, "mtime": 1.5, "status": "complete"})
    assert not unchanged(ref, {"size": 10, "mtime": 2.0, "status": "complete"})
    assert not unchanged(ref, {"size": 10, "mtime": 1.5, "status": "error"})
    tagged = FileRef("p", 10, 9.0, etag="abc")
    assert unchanged(tagged, {"size": 10, "mtime": 1.0, "etag": "abc", "status": "complete"})
    assert not unchanged(tagged, {"size": 10, "mtime": 9.0, "etag": "xyz", "status": "complete"})


def test_load_previous_and_split(tmp_path: Path):
    import pyarrow.parquet as pq

    old = [
        FileResult(path="a", size=1, mtime=1.0),
        FileResult(path="b", size=2, mtime=2.0),
        FileResult(path="c", size=3, mtime=3.0, status="error", error="boom"),
    ]
    parquet = tmp_path / "prev.parquet"
    pq.write_table(_table(old), parquet)
    previous, stale = load_previous(str(parquet))
    assert set(previous) == {"a", "b", "c"} and stale == ""
    refs = [FileRef("a", 1, 1.0), FileRef("b", 5, 2.0), FileRef("c", 3, 3.0), FileRef("d", 1, 1.0)]
    to_scan, carried = split_incremental(refs, previous)
    assert [r.path for r in to_scan] == ["b", "c", "d"]
    assert [r["path"] for r in carried] == ["a"]
    to_scan, carried = split_incremental(refs, previous, require_unchanged=False)
    assert [r.path for r in to_scan] == ["d"]
    assert load_previous(str(tmp_path / "missing.parquet")) == ({}, "")


def _table(results: list[FileResult]):
    import pyarrow as pa

    return pa.Table.from_batches([results_to_batch(results)])
