"""The Dask engine on a real scheduler + two worker processes on 127.0.0.1.

Local (in-process), multiprocess, Dask and Dask-over-S3 scans of one mirror must give the same
rows, compared with `fastscan.results.comparable` after making paths relative and dropping the
columns that describe the source rather than the verdict: `mtime`, `etag`, `bytes_read`.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from test_s3 import relative_rows, upload_tree

from fastscan.bulk import run_bulk
from fastscan.results import comparable, read_parquet, read_provenance
from fastscan.scale.dask_backend import connect
from fastscan.sources.incremental import PROVENANCE_KEYS
from fastscan.sources.stores import MissingExtra
from tests.mirror import build_mirror, hostile_pickle

pytest.importorskip("distributed")

OPTIONS = {"model": None}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("dask-mirror")
    return root, build_mirror(root)


def test_dask_dataset_matches_local_multiprocess_and_s3(
    tmp_path: Path,
    dask_scheduler: str,
    s3_endpoint: str,
    mirror: tuple[Path, dict[str, str]],
):
    root, expected = mirror
    tables = {}
    for workers in (0, 2):
        out = tmp_path / f"local{workers}.parquet"
        run_bulk(str(root), out=str(out), workers=workers, progress=False, scanner_options=OPTIONS)
        tables[f"local{workers}"] = relative_rows(pq.read_table(out), str(root))

    dataset = tmp_path / "dataset"
    summary = run_bulk(
        str(root),
        engine="dask",
        out=str(dataset),
        scheduler=dask_scheduler,
        chunk_size=4,
        progress=False,
        scanner_options=OPTIONS,
    )
    assert summary.rows == len(expected) and summary.exit_code == 1
    parts = sorted(p.name for p in dataset.iterdir())
    assert "_metadata" in parts and "_common_metadata" in parts
    n_chunks = -(-len(expected) // 4)
    assert [p for p in parts if p.startswith("part-")] == [
        f"part-{i:06d}.parquet" for i in range(1, n_chunks + 1)
    ]
    assert pq.read_metadata(dataset / "_metadata").num_rows == len(expected)
    meta = pq.read_schema(dataset / "_common_metadata").metadata
    assert meta[b"fastscan.engine"] == b"dask"
    tables["dask"] = relative_rows(pq.read_table(dataset), str(root))

    url = upload_tree(s3_endpoint, root)
    single = tmp_path / "s3.parquet"
    summary = run_bulk(
        url,
        engine="dask",
        out=str(single),
        scheduler=dask_scheduler,
        chunk_size=3,
        progress=False,
        scanner_options=OPTIONS,
    )
    assert summary.rows == len(expected)
    s3_table = pq.read_table(single)
    assert s3_table["path"].to_pylist() == sorted(s3_table["path"].to_pylist())
    assert all(s3_table["etag"].to_pylist())
    tables["dask_s3"] = relative_rows(s3_table, url)

    reference = tables["local0"]
    verdicts = dict(
        zip(reference["path"].to_pylist(), reference["verdict"].to_pylist(), strict=True)
    )
    assert verdicts == expected
    for name, table in tables.items():
        assert table.equals(reference), name


def test_dask_writes_what_the_local_pool_writes(
    tmp_path: Path, dask_scheduler: str, mirror: tuple[Path, dict[str, str]]
):
    """One plan, one output: same rows (absolute paths, mtimes and bytes read included), same
    features, same metadata keys; only the engine and its limits differ in the metadata."""
    root, expected = mirror
    common: dict[str, Any] = {"chunk_size": 3, "progress": False, "scanner_options": OPTIONS}
    local = tmp_path / "local.parquet"
    summaries = {
        "local": run_bulk(
            str(root), out=str(local), workers=2, features_out=str(tmp_path / "local.f"), **common
        )
    }
    outs = {"dask file": tmp_path / "dask.parquet", "dask dataset": tmp_path / "dask-dataset"}
    for name, out in outs.items():
        summaries[name] = run_bulk(
            str(root),
            out=str(out),
            engine="dask",
            scheduler=dask_scheduler,
            features_out=str(tmp_path / f"{out.name}.f"),
            **common,
        )
    reference = comparable(pq.read_table(local))
    expected_paths = reference["path"].to_pylist()
    assert len(expected_paths) == len(expected)
    meta = read_provenance(str(local))
    assert (meta["engine"], meta["complete"], meta["timeout"]) == ("local", "true", "120")
    features = pq.read_table(tmp_path / "local.f")
    assert features.num_rows > 0 and set(features["path"].to_pylist()) <= set(expected_paths)
    for name, out in outs.items():
        table = comparable(read_parquet(str(out))).sort_by([("path", "ascending")])
        assert table.equals(reference), name
        got = read_provenance(str(out))
        assert got.keys() == meta.keys(), name
        assert (got["engine"], got["complete"], got["timeout"]) == ("dask", "true", "0"), name
        assert {k: got[k] for k in PROVENANCE_KEYS} == {k: meta[k] for k in PROVENANCE_KEYS}
        assert pq.read_table(tmp_path / f"{out.name}.f").equals(features), name
    for name, summary in summaries.items():
        assert (summary.rows, summary.scanned, summary.exit_code) == (len(expected),) * 2 + (1,)
        assert summary.outcomes == summaries["local"].outcomes, name
        assert summary.bytes == summaries["local"].bytes, name


def test_cli_engine_dask_writes_dataset_and_exit_code(
    tmp_path: Path,
    dask_scheduler: str,
    mirror: tuple[Path, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
):
    from fastscan.cli import main

    root, expected = mirror
    out = tmp_path / "cli-dataset"
    code = main(
        [
            "bulk",
            str(root),
            "--out",
            str(out),
            "--engine",
            "dask",
            "--scheduler",
            dask_scheduler,
            "--model",
            "none",
            "--no-progress",
        ]
    )
    assert code == 1  # the mirror holds malicious files
    assert pq.read_table(out).num_rows == len(expected)
    # --since over a dataset: nothing changed, every row is carried forward.
    again = tmp_path / "again.parquet"
    code = main(
        [
            "bulk",
            str(root),
            "--out",
            str(again),
            "--engine",
            "dask",
            "--scheduler",
            dask_scheduler,
            "--model",
            "none",
            "--no-progress",
            "--since",
            str(out),
        ]
    )
    assert code == 1
    assert pq.read_table(again).num_rows == len(expected)
    assert f"skipped (unchanged)  {len(expected)}" in capsys.readouterr().err
    # the dataset folder reads back in `report`, with the run's exit code
    assert main(["report", f"{out}/"]) == 1
    # another config: the dataset's rows were computed differently, every file is rescanned
    base = ["bulk", str(root), "--engine", "dask", "--scheduler", dask_scheduler, "--model", "none"]
    strict = [*base, "--no-progress", "--strict-unknown", "--since", str(out)]
    assert main([*strict, "--out", str(tmp_path / "strict.parquet")]) == 1
    err = capsys.readouterr().err
    assert "skipped (unchanged)  0" in err and "config_hash" in err


def test_missing_distributed_gives_install_hint(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with (
        pytest.raises(MissingExtra, match=r"pip install 'fastscan\[dask\]'"),
        connect("tcp://127.0.0.1:1"),
    ):
        pass


def test_killed_worker_loses_no_rows(tmp_path: Path, dask_scheduler: str):
    root = tmp_path / "many"
    root.mkdir()
    n_files = 40
    for i in range(n_files):
        data = hostile_pickle() if i % 10 == 0 else pickle.dumps({"i": i}, protocol=4)
        (root / f"f{i:03d}.pkl").write_bytes(data)
    killed: list[int] = []

    def kill_one_busy_worker(client: Any, rows: int) -> None:
        if killed:
            return
        processing = client.processing()
        pids = client.run(os.getpid)
        busy = [addr for addr, keys in processing.items() if keys] or list(pids)
        pid = pids[busy[0]]
        os.kill(pid, signal.SIGKILL)  # the worker process, not its nanny: it comes back
        killed.append(pid)

    out = tmp_path / "killed.parquet"
    summary = run_bulk(
        str(root),
        engine="dask",
        out=str(out),
        scheduler=dask_scheduler,
        chunk_size=1,
        progress=False,
        scanner_options=OPTIONS,
        on_partition=kill_one_busy_worker,
    )
    assert killed
    table = pq.read_table(out)
    assert table.num_rows == n_files == summary.rows
    assert sorted(table["path"].to_pylist()) == sorted(str(p) for p in root.iterdir())
    assert table["verdict"].to_pylist().count("malicious") == 4
    assert set(table["status"].to_pylist()) == {"complete"}

    from distributed import Client

    with Client(dask_scheduler, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
        assert killed[0] not in client.run(os.getpid).values()  # the nanny started a new one


def test_a_signal_stops_dask_and_leaves_an_incomplete_output(tmp_path: Path, dask_scheduler: str):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(30):
        (root / f"f{i:03d}.pkl").write_bytes(pickle.dumps({"i": i}, protocol=4))

    def interrupt(client: Any, rows: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # like Ctrl-C: bulk's Stop turns it into a flag

    out = tmp_path / "stopped.parquet"
    summary = run_bulk(
        str(root),
        out=str(out),
        engine="dask",
        scheduler=dask_scheduler,
        chunk_size=1,
        progress=False,
        scanner_options=OPTIONS,
        on_partition=interrupt,
    )
    assert summary.interrupted == "SIGINT" and summary.exit_code == 130
    table = pq.read_table(out)
    assert 0 < table.num_rows == summary.rows < 30
    assert read_provenance(str(out))["complete"] == "false"


@pytest.mark.parametrize("name", ["stopped.parquet", "stopped-dataset"])
def test_resume_completes_an_interrupted_dask_run(
    tmp_path: Path, dask_scheduler: str, name: str
) -> None:
    # a single file and a dataset folder: the rows that came back are kept, the rest scanned
    root = tmp_path / "many"
    root.mkdir()
    for i in range(30):
        (root / f"f{i:03d}.pkl").write_bytes(pickle.dumps({"i": i}, protocol=4))
    out = tmp_path / name
    common = {"engine": "dask", "scheduler": dask_scheduler, "progress": False}

    def interrupt(client: Any, rows: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    first = run_bulk(
        str(root), out=str(out), chunk_size=1, scanner_options=OPTIONS, on_partition=interrupt,
        **common,
    )  # fmt: skip
    assert first.interrupted == "SIGINT" and 0 < first.rows < 30
    done = comparable(read_parquet(str(out))).sort_by("path")
    summary = run_bulk(str(root), out=str(out), resume=True, scanner_options=OPTIONS, **common)
    assert summary.resumed == done.num_rows and summary.rows == 30 and summary.exit_code == 0
    rows = comparable(read_parquet(str(out))).sort_by("path")
    assert rows.column("path").to_pylist() == sorted(str(p) for p in root.iterdir())
    assert read_provenance(str(out))["complete"] == "true"
    # the rows that came back before the signal are carried as they were
    again = rows.filter(pc.is_in(rows.column("path"), value_set=done.column("path")))
    assert again.equals(done)


def _listeners(pids: list[int]) -> list[tuple[int, str]]:
    import psutil

    out = []
    for pid in pids:
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                out.append((pid, conn.laddr.ip))
    return out


def test_cluster_listens_on_loopback_only(dask_scheduler: str):
    import psutil
    from distributed import Client

    with Client(dask_scheduler, timeout="30s") as client:
        workers = list(client.run(os.getpid).values())
        scheduler = client.run_on_scheduler(os.getpid)
    nannies = [psutil.Process(pid).ppid() for pid in workers]
    listeners = _listeners([scheduler, *workers, *nannies])
    assert len({pid for pid, _ in listeners}) >= 3
    assert {ip for _, ip in listeners} == {"127.0.0.1"}, listeners


@pytest.mark.slow
def test_local_cluster_without_scheduler(tmp_path: Path, mirror: tuple[Path, dict[str, str]]):
    root, expected = mirror
    out = tmp_path / "local-cluster.parquet"
    summary = run_bulk(
        str(root),
        engine="dask",
        out=str(out),
        workers=2,
        progress=False,
        scanner_options=OPTIONS,
    )
    assert summary.rows == len(expected)
    reference = tmp_path / "ref.parquet"
    run_bulk(str(root), out=str(reference), workers=0, progress=False, scanner_options=OPTIONS)
    assert relative_rows(pq.read_table(out), str(root)).equals(
        relative_rows(pq.read_table(reference), str(root))
    )


@pytest.mark.slow
def test_local_cluster_listens_on_loopback_only():
    import psutil

    with connect(None, 1) as client:
        workers = list(client.run(os.getpid).values())
        nannies = [psutil.Process(pid).ppid() for pid in workers]
        listeners = _listeners([os.getpid(), *workers, *nannies])  # scheduler: this process
    assert {pid for pid, _ in listeners} >= {os.getpid(), *workers}
    assert {ip for _, ip in listeners} == {"127.0.0.1"}, listeners
