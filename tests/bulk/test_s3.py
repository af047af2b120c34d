"""Remote sources: listing and ranged reads against a local S3 server (moto on 127.0.0.1).

Rows from S3 must equal rows from the same files on disk, except the columns that describe
where and how the bytes were read: `path` (compared relative to the root), `mtime` (object
LastModified vs file mtime), `etag` (only objects have one) and `bytes_read` (ranged reads).
"""

from __future__ import annotations

import io
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastscan.bulk import run_bulk
from fastscan.results import comparable
from fastscan.sources import discover
from fastscan.sources.ref import FileRef, hf_coordinates
from fastscan.sources.stores import MissingExtra, filesystem_for
from tests.mirror import HF_SNAPSHOT, build_mirror, hostile_pickle, torch_zip_bytes

SOURCE_COLUMNS = ("mtime", "etag", "bytes_read")


def relative_rows(table: pa.Table, root: str) -> pa.Table:
    """`comparable` rows with paths relative to `root` and the source columns dropped."""
    table = comparable(table).drop_columns(list(SOURCE_COLUMNS))
    prefix = root.rstrip("/") + "/"
    paths = [p[len(prefix) :] if p.startswith(prefix) else p for p in table["path"].to_pylist()]
    table = table.set_column(0, "path", pa.array(paths, pa.string()))
    return table.sort_by([("path", "ascending")])


def s3_client(endpoint: str) -> Any:
    boto3 = pytest.importorskip("boto3")
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def upload_tree(endpoint: str, root: Path) -> str:
    """Upload every file under `root` to a fresh bucket; return the s3:// URL of its root."""
    bucket = f"mirror-{uuid.uuid4().hex[:10]}"
    client = s3_client(endpoint)
    client.create_bucket(Bucket=bucket)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        client.put_object(
            Bucket=bucket, Key=path.relative_to(root).as_posix(), Body=path.read_bytes()
        )
    return f"s3://{bucket}"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("mirror")
    return root, build_mirror(root)


@pytest.fixture(scope="module")
def s3_mirror(s3_endpoint: str, mirror: tuple[Path, dict[str, str]]) -> str:
    return upload_tree(s3_endpoint, mirror[0])


def test_hf_coordinates_from_cache_and_mirror_paths():
    assert hf_coordinates("/c/hub/models--org--name/snapshots/abc/sub/model.bin") == (
        "org/name",
        "abc",
    )
    assert hf_coordinates("s3://b/models--gpt2/snapshots/r1/x.pt") == ("gpt2", "r1")
    assert hf_coordinates("/c/models--org--name/blobs/0af3") == ("org/name", None)
    assert hf_coordinates("/data/models/org/name/model.bin") == (None, None)


def test_listing_gives_urls_sizes_and_etags(s3_mirror: str, mirror: tuple[Path, dict[str, str]]):
    refs = list(discover(s3_mirror))
    root, expected = mirror
    assert sorted(r.path for r in refs) == sorted(f"{s3_mirror}/{rel}" for rel in expected)
    for ref in refs:
        rel = ref.path[len(s3_mirror) + 1 :]
        assert ref.size == (root / rel).stat().st_size
        assert len(ref.etag) == 32 and ref.mtime > 0
    only_pkl = list(discover(s3_mirror, include=["*.pkl"]))
    assert only_pkl and all(r.path.endswith(".pkl") for r in only_pkl)


def test_missing_prefix_is_an_error_of_the_run(s3_mirror: str) -> None:
    with pytest.raises(FileNotFoundError, match="root does not exist"):
        list(discover(f"{s3_mirror}/no/such/prefix"))
    # rel, for suppressions, is the key below the root
    assert {r.rel for r in discover(s3_mirror)} >= {"uploads/user1/payload.pkl"}


def test_s3_scan_matches_local_scan(
    tmp_path: Path, s3_mirror: str, mirror: tuple[Path, dict[str, str]]
):
    root, expected = mirror
    local_out, remote_out = tmp_path / "local.parquet", tmp_path / "s3.parquet"
    options = {"model": None}
    for source, out, workers in ((str(root), local_out, 0), (s3_mirror, remote_out, 2)):
        summary = run_bulk(
            source, out=str(out), workers=workers, progress=False, scanner_options=options
        )
        assert summary.rows == len(expected)
        assert summary.errors == 0, pq.read_table(out).column("error").to_pylist()
    local = pq.read_table(local_out)
    remote = pq.read_table(remote_out)
    assert relative_rows(local, str(root)).equals(relative_rows(remote, s3_mirror))
    got = {r["path"][len(s3_mirror) + 1 :]: r for r in remote.to_pylist()}
    for rel, verdict in expected.items():
        assert got[rel]["verdict"] == verdict, (rel, got[rel]["reasons"])
        assert got[rel]["etag"], rel
    model = got[f"{HF_SNAPSHOT}/pytorch_model.bin"]
    assert (model["hf_repo"], model["hf_revision"]) == ("acme/tiny-bert", "0123abcd")
    assert got["uploads/user1/payload.pkl"]["hf_repo"] is None


def test_since_keys_on_etag_and_size(tmp_path: Path, s3_endpoint: str):
    src = tmp_path / "src"
    build_mirror(src)
    url = upload_tree(s3_endpoint, src)
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    options = {"model": None}
    run_bulk(url, out=str(first), workers=0, progress=False, scanner_options=options)
    key = "uploads/user2/notes.txt"
    s3_client(s3_endpoint).put_object(Bucket=url[5:], Key=key, Body=b"changed text, same kind\n")
    summary = run_bulk(
        url, out=str(second), workers=0, progress=False, scanner_options=options, since=str(first)
    )
    assert summary.scanned == 1 and summary.skipped == summary.discovered - 1
    rows = {r["path"]: r for r in pq.read_table(second).to_pylist()}
    before = {r["path"]: r for r in pq.read_table(first).to_pylist()}
    assert rows[f"{url}/{key}"]["etag"] != before[f"{url}/{key}"]["etag"]
    assert len(rows) == len(before)


class _CountingReads:
    """Counts the bytes s3fs hands back, below fastscan's own bookkeeping."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import s3fs

        self.bytes = 0
        self.calls = 0
        original = s3fs.S3FileSystem._cat_file

        async def counting(fs: Any, path: str, *args: Any, **kwargs: Any) -> bytes:
            data = await original(fs, path, *args, **kwargs)
            self.bytes += len(data)
            self.calls += 1
            return data

        monkeypatch.setattr(s3fs.S3FileSystem, "_cat_file", counting)


@pytest.mark.parametrize("hostile", [False, True], ids=["benign", "hostile"])
def test_large_torch_zip_is_scanned_from_a_small_fraction(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, hostile: bool
):
    from fastscan.scan import Scanner

    data = torch_zip_bytes(8 << 20, hostile=hostile)  # 32 MiB of tensor data
    bucket = f"big-{uuid.uuid4().hex[:8]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    client.upload_fileobj(io.BytesIO(data), bucket, "model.pt")
    (ref,) = list(discover(f"s3://{bucket}/model.pt"))
    scanner = Scanner(model=None)
    counter = _CountingReads(monkeypatch)
    (result,), _ = scanner.scan_refs([ref])  # ranged reads, then the batch scoring
    local = scanner.scan_bytes(data, "model.pt")
    assert result.format == local.format == "torch_zip"
    assert (result.verdict, result.status) == (local.verdict, local.status)
    assert result.verdict == ("malicious" if hostile else "clean")
    assert result.rule_ids == local.rule_ids and result.globals == local.globals
    assert counter.bytes == result.bytes_read
    assert counter.bytes < len(data) * 0.02, (counter.bytes, len(data))


def test_refs_without_extras_get_a_clear_message(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)
    with pytest.raises(MissingExtra, match=r"pip install 'fastscan\[s3\]'"):
        filesystem_for("s3://bucket/key")


def test_oversized_object_needing_a_whole_read_fails_closed(s3_endpoint: str):
    from fastscan.scan import Scanner
    from fastscan.sources.remote import prepare_remote

    bucket = f"raw-{uuid.uuid4().hex[:8]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    body = b"\x80\x04" + b"N0" * (1 << 20)  # a 2 MiB raw pickle: the policy reads those whole
    client.put_object(Bucket=bucket, Key="big.pkl", Body=body)
    ref = FileRef(f"s3://{bucket}/big.pkl", len(body), 0.0)
    result, analysis = prepare_remote(Scanner(model=None), ref, max_whole_bytes=1 << 20)
    assert analysis is None  # nothing to score: never silently clean
    assert (result.status, result.verdict) == ("error", "suspicious")
    assert "budget" in result.error
    assert result.bytes_read < len(body) // 4


# --- the range-read plan gives the same answer as a whole read (fsspec memory://, no server) ---


def _zip(members: list[tuple[str, bytes, int]], prefix: bytes = b"", comment: bytes = b"") -> bytes:
    import zipfile

    buf = io.BytesIO()
    buf.write(prefix)
    with zipfile.ZipFile(buf, "a" if prefix else "w") as zf:
        for name, data, method in members:
            zf.writestr(name, data, compress_type=method)
        zf.comment = comment
    return buf.getvalue()


def _tricky_files() -> dict[str, bytes]:
    import pickle
    import zipfile

    import numpy as np

    stored, deflated = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
    tensor = bytes(range(256)) * (8 << 10)  # 2 MiB of "tensor" bytes
    evil = hostile_pickle()
    benign = pickle.dumps({"a": list(range(50))}, protocol=2)
    inner = _zip([("inner/data.pkl", evil, stored)])
    arr = io.BytesIO()
    np.save(arr, np.zeros(1 << 19, dtype=np.float32))
    return {
        "pickle-in-unnamed-member": _zip(
            [
                ("a/data.pkl", benign, stored),
                ("a/data/0", tensor, stored),
                ("a/data/1", evil, stored),
            ]
        ),
        "deflated-member": _zip([("a/data/0", tensor, stored), ("a/extra.bin", evil, deflated)]),
        "nested-zip": _zip([("a/data/0", tensor, stored), ("a/nested.zip", inner, stored)]),
        "prefix-data": _zip(
            [("a/data.pkl", evil, stored), ("a/data/0", tensor, stored)], b"J" * 100
        ),
        "trailing-comment": _zip(
            [("a/data/0", tensor, stored), ("a/data.pkl", evil, stored)], comment=b"c" * 300
        ),
        "benign-many-members": _zip(
            [("a/data.pkl", benign, stored)]
            + [(f"a/data/{i}", tensor[:40_000], stored) for i in range(60)]
        ),
        "npy-with-trailing-pickle": arr.getvalue() + evil,
        "raw-pickle-large": b"\x80\x04B"
        + (2 << 20).to_bytes(4, "little")
        + tensor[: 2 << 20]
        + evil[2:],
    }


@pytest.mark.parametrize("name", sorted(_tricky_files()))
def test_range_plan_matches_whole_read(name: str):
    import fsspec

    from fastscan.scan import Scanner

    data = _tricky_files()[name]
    assert len(data) > 1 << 20  # past the whole-read threshold: the range plan is used
    url = f"memory://fastscan-plan/{name}"
    fs = fsspec.filesystem("memory")
    fs.pipe_file(url[len("memory://") :], data)
    try:
        scanner = Scanner(model=None)
        (result,), _ = scanner.scan_refs([FileRef(url, len(data), 0.0)])
        local = scanner.scan_bytes(data, name)
    finally:
        fs.rm(url[len("memory://") :])
    for column in (
        "format",
        "status",
        "verdict",
        "rule_ids",
        "globals",
        "members_scanned",
        "pickles",
    ):
        assert getattr(result, column) == getattr(local, column), (
            column,
            result.reasons,
            local.reasons,
        )
    if name != "raw-pickle-large":  # raw pickles are read whole; the rest skip tensor bytes
        assert result.bytes_read < len(data) // 4
    else:
        assert result.bytes_read == len(data)
