"""Hugging Face caches: a blob reached through `snapshots/REV/...` links is scanned once and
reported under its snapshot path(s), never again under `blobs/` (issue 12)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from fastscan.bulk import run_bulk
from fastscan.results import conform_table
from fastscan.scan import Scanner
from fastscan.sources import discover
from fastscan.sources.ref import hf_coordinates

EVIL = b"\x80\x02cos\nsystem\n(X\x12\x00\x00\x00echo fastscan-testtR."
BENIGN = pickle.dumps({"w": [1.0, 2.0]}, protocol=4)
REPO = "hub/models--acme--tiny"


def _link(root: Path, rel: str, blob: str) -> None:
    path = root / REPO / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    depth = len(Path(rel).parts) - 1  # snapshots/REV/... -> back to the repo folder
    path.symlink_to(Path(*([".."] * depth), "blobs", blob))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    blobs = root / REPO / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "aaa111").write_bytes(BENIGN)
    (blobs / "bbb222").write_bytes(EVIL)
    (blobs / "ccc333").write_bytes(EVIL)  # no snapshot points here: still scanned, as a blob
    (root / REPO / "refs").mkdir()
    (root / REPO / "refs" / "main").write_text("rev2")
    _link(root, "snapshots/rev1/model.pkl", "aaa111")
    _link(root, "snapshots/rev1/sub/evil.pkl", "bbb222")
    _link(root, "snapshots/rev2/model.pkl", "aaa111")  # the same blob in another revision
    for kind in ("datasets", "spaces"):
        snap = root / "hub" / f"{kind}--acme--thing" / "snapshots" / "r9"
        snap.mkdir(parents=True)
        (snap / "data.pkl").write_bytes(BENIGN)
    return root


SCANNED: list[str] = []


class _Recording(Scanner):
    def prepare(self, ref: Any, buffer: Any = None) -> Any:
        SCANNED.append(ref.path)
        return super().prepare(ref, buffer)


def _factory(**options: Any) -> Scanner:
    return _Recording(**options)


def _rel(path: str, root: Path) -> str:
    return str(Path(path).relative_to(root))


def test_discovery_skips_linked_blobs_only(cache: Path) -> None:
    found = sorted(_rel(r.path, cache) for r in discover(str(cache)))
    assert found == [
        "hub/datasets--acme--thing/snapshots/r9/data.pkl",
        f"{REPO}/blobs/ccc333",
        f"{REPO}/refs/main",
        f"{REPO}/snapshots/rev1/model.pkl",
        f"{REPO}/snapshots/rev1/sub/evil.pkl",
        f"{REPO}/snapshots/rev2/model.pkl",
        "hub/spaces--acme--thing/snapshots/r9/data.pkl",
    ]
    # a blob whose snapshot path is excluded is scanned under blobs/ instead: never lost
    found = {_rel(r.path, cache) for r in discover(str(cache), exclude=["*/snapshots/rev1"])}
    assert f"{REPO}/blobs/bbb222" in found and f"{REPO}/blobs/aaa111" not in found
    # the blobs folder named as the root is scanned whole
    assert len(list(discover(str(cache / REPO / "blobs")))) == 3


@pytest.mark.parametrize("workers", [0, 1])
def test_bulk_scans_a_blob_once_and_reports_every_snapshot_path(
    cache: Path, tmp_path: Path, workers: int
) -> None:
    out = tmp_path / "v.parquet"
    SCANNED.clear()
    factory = _factory if workers == 0 else None  # the recorder only sees in-process scans
    summary = run_bulk(
        str(cache),
        out=str(out),
        workers=workers,
        progress=False,
        scanner_options={"model": None},
        scanner_factory=factory,
    )
    rows = {_rel(r["path"], cache): r for r in conform_table(pq.read_table(out)).to_pylist()}
    assert f"{REPO}/blobs/aaa111" not in rows and f"{REPO}/blobs/bbb222" not in rows
    evil = rows[f"{REPO}/snapshots/rev1/sub/evil.pkl"]
    assert evil["verdict"] == "malicious" and evil["hf_revision"] == "rev1"
    assert rows[f"{REPO}/blobs/ccc333"]["verdict"] == "malicious"
    one, two = rows[f"{REPO}/snapshots/rev1/model.pkl"], rows[f"{REPO}/snapshots/rev2/model.pkl"]
    assert (one["hf_revision"], two["hf_revision"]) == ("rev1", "rev2")
    assert one["hf_repo"] == two["hf_repo"] == "acme/tiny"
    assert one["verdict"] == two["verdict"] == "clean" and one["format"] == two["format"]
    assert rows["hub/datasets--acme--thing/snapshots/r9/data.pkl"]["hf_repo"] == (
        "datasets/acme/thing"
    )
    assert rows["hub/spaces--acme--thing/snapshots/r9/data.pkl"]["hf_repo"] == "spaces/acme/thing"
    assert (summary.rows, summary.aliased, summary.scanned) == (7, 1, 6)
    if workers == 0:
        scanned = sorted(_rel(p, cache) for p in SCANNED)
        assert len(scanned) == 6 and f"{REPO}/snapshots/rev2/model.pkl" not in scanned


def test_hf_coordinates_of_every_repository_kind() -> None:
    assert hf_coordinates("/c/models--org--n/snapshots/r/x") == ("org/n", "r")
    assert hf_coordinates("/c/datasets--org--n/snapshots/r/x") == ("datasets/org/n", "r")
    assert hf_coordinates("/c/spaces--org--n/blobs/ab") == ("spaces/org/n", None)
    assert hf_coordinates("/c/mydatasets--org--n/x") == (None, None)
