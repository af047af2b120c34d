"""One scan composition: a remote object (ranged reads into a sparse buffer) and a local file with
the same bytes go through `Scanner.prepare` and the same batch `score`, so their findings,
scores and feature rows are identical; the row's identity is the ref's, filled once."""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from fastscan import worker
from fastscan.scan import Scanner
from fastscan.sources.ref import FileRef
from fastscan.verdict import FileResult
from tests.mirror import build_mirror, torch_zip_bytes

fsspec = pytest.importorskip("fsspec")

# what must not depend on where the bytes came from (bytes_read does: it counts the transfer)
JUDGED = (
    "format", "extension", "status", "verdict", "rule_ids", "reasons", "globals",
    "members_scanned", "pickles", "error",
)  # fmt: skip


def _same_score(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(local FileRef, memory:// FileRef) over the same bytes: the test mirror plus two torch
    zips past the whole-read threshold, so the range plan (not a whole read) is exercised."""
    root = tmp_path_factory.mktemp("composition")
    build_mirror(root)
    (root / "big").mkdir()
    (root / "big" / "benign.pt").write_bytes(torch_zip_bytes(1 << 19))
    (root / "big" / "hostile.pt").write_bytes(torch_zip_bytes(1 << 19, hostile=True))
    fs = fsspec.filesystem("memory")
    bucket = f"composition-{uuid.uuid4().hex[:8]}"
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        fs.pipe_file(f"{bucket}/{rel}", data)
        st = path.stat()
        local = FileRef(str(path), st.st_size, st.st_mtime, rel=rel)
        remote = FileRef(f"memory://{bucket}/{rel}", len(data), 12.5, etag=f"e-{rel}", rel=rel)
        out.append((local, remote))
    assert any(p[0].size > 1 << 20 for p in out)  # the range plan is used for these
    yield out
    fs.rm(bucket, recursive=True)


def _assert_same(local: FileResult, remote: FileResult) -> None:
    for column in JUDGED:
        assert getattr(local, column) == getattr(remote, column), (column, local.path)
    assert local.findings == remote.findings
    assert _same_score(local.score, remote.score), (local.path, local.score, remote.score)
    assert _same_score(local.anomaly_score, remote.anomaly_score)


def test_remote_and_local_bytes_get_identical_findings_scores_and_features(pairs: Any) -> None:
    scanner = Scanner()  # the shipped model: scores and model findings are compared too
    local_refs = [loc for loc, _ in pairs]
    remote_refs = [rem for _, rem in pairs]
    local, local_features = scanner.scan_refs(local_refs, with_features=True)
    remote, remote_features = scanner.scan_refs(remote_refs, with_features=True)
    assert local_features is not None and remote_features is not None
    for a, b in zip(local, remote, strict=True):
        _assert_same(a, b)
    assert any(r.verdict == "malicious" for r in remote)
    assert any(not math.isnan(r.score) for r in remote)  # the model judged remote files too
    # one feature row per file, equal but for the path column
    assert local_features.drop_columns(["path"]).equals(remote_features.drop_columns(["path"]))
    assert remote_features.column("path").to_pylist() == [r.path for r in remote_refs]
    # the row's identity is the ref's (no caller overwrites it afterwards)
    for ref, row in zip(remote_refs, remote, strict=True):
        assert (row.path, row.size, row.mtime, row.etag) == (ref.path, ref.size, 12.5, ref.etag)
    for ref, row in zip(local_refs, local, strict=True):
        assert (row.path, row.size, row.mtime, row.etag) == (ref.path, ref.size, ref.mtime, "")


def test_worker_scores_local_and_remote_files_of_one_chunk_together(pairs: Any) -> None:
    scanner = Scanner()
    refs = [ref for pair in pairs for ref in pair]  # interleaved: one chunk, one model call
    rows_ipc, features_ipc = worker.scan_batch(scanner, 0, refs, True)
    rows = worker.from_ipc(rows_ipc).to_pylist()
    assert features_ipc is not None
    features = worker.from_ipc(features_ipc)
    assert features.column("path").to_pylist() == [r.path for r in refs]
    for local, remote in zip(rows[0::2], rows[1::2], strict=True):
        for column in (*JUDGED, "findings", "hf_repo", "hf_revision"):
            assert local[column] == remote[column], (column, local["path"])
        assert local["score"] == remote["score"] or (
            math.isnan(local["score"]) and math.isnan(remote["score"])
        )
        assert remote["mtime"] == 12.5 and remote["etag"].startswith("e-")
    half = features.num_rows // 2
    assert half == len(pairs)
    local_rows = features.take(list(range(0, features.num_rows, 2))).drop_columns(["path"])
    remote_rows = features.take(list(range(1, features.num_rows, 2))).drop_columns(["path"])
    assert local_rows.equals(remote_rows)


def test_an_object_that_cannot_be_read_is_an_error_row_with_the_refs_identity() -> None:
    ref = FileRef(f"memory://missing-{uuid.uuid4().hex[:8]}/x.pkl", 10, 3.0, etag="abc")
    (row,), _ = Scanner(model=None).scan_refs([ref])
    assert (row.status, row.verdict) == ("error", "suspicious")
    assert row.error.startswith(f"cannot read {ref.path}: ")
    assert (row.path, row.size, row.mtime, row.etag) == (ref.path, 10, 3.0, "abc")


def test_a_timeout_is_not_swallowed_as_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-file alarm must reach the worker, not the scanner's `except Exception`."""
    scanner = Scanner(model=None)

    def stall(*args: object, **kwargs: object) -> None:
        raise worker._FileTimeout

    monkeypatch.setattr(scanner, "analyse", stall)
    monkeypatch.setattr(worker, "_timeout", 7.0)
    ref = FileRef(os.fspath(Path(__file__)), 1, 2.0)
    rows = worker.from_ipc(worker.scan_batch(scanner, 0, [ref], False)[0]).to_pylist()
    assert rows[0]["error"] == worker.TIMEOUT_ERROR.format(7.0)
    assert (rows[0]["status"], rows[0]["verdict"]) == ("error", "suspicious")
    assert (rows[0]["size"], rows[0]["mtime"]) == (1, 2.0)
