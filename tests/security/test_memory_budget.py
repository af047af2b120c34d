"""`--memory-mb` bounds what a worker allocates (RLIMIT_DATA), not the size of the files it maps:
a checkpoint past the budget keeps its verdict, and running out of memory is a named finding."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastscan import containers, scan
from fastscan.scan import Scanner

REPO = Path(__file__).resolve().parents[2]


def _malicious_pickle() -> bytes:
    """GLOBAL os.system + REDUCE with a harmless `echo`, assembled by hand; never unpickled."""
    arg = b"echo hi"
    return b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(arg)) + arg + b"q\x01\x85q\x02R."


def _sparse_malicious(path: Path, size: int) -> Path:
    path.write_bytes(_malicious_pickle())
    os.truncate(path, size)  # a hole: costs no disk
    return path


def _fastscan(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-P", "-m", "fastscan", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_malicious_in_scan_and_bulk(path: Path, *, scan_too: bool = True) -> None:
    if scan_too:
        proc = _fastscan("scan", str(path), "--format", "jsonl")
        assert proc.returncode == 1, proc.stderr
        assert json.loads(proc.stdout.splitlines()[0])["verdict"] == "malicious"
    # default --memory-mb (4096): the file is larger than the whole budget
    proc = _fastscan(
        "bulk", str(path), "--workers", "1", "--format", "jsonl", "--out", "-", "--no-progress"
    )
    assert proc.returncode == 1, proc.stderr
    row = json.loads(proc.stdout.splitlines()[0])
    assert row["verdict"] == "malicious" and "FS102" in row["rule_ids"], row
    assert row["status"] != "error", row["error"]


def test_5gib_file_keeps_its_verdict_under_the_default_budget(tmp_path: Path) -> None:
    _assert_malicious_in_scan_and_bulk(_sparse_malicious(tmp_path / "big.pkl", 5 << 30))


@pytest.mark.slow
def test_20gib_file_keeps_its_verdict_under_the_default_budget(tmp_path: Path) -> None:
    path = _sparse_malicious(tmp_path / "huge.pkl", 20 << 30)
    _assert_malicious_in_scan_and_bulk(path, scan_too=False)


def test_remote_sparse_buffer_is_outside_the_data_budget() -> None:
    """Ranged reads of a 20 GiB object need a 20 GiB buffer; under a 64 MB RLIMIT_DATA an
    anonymous private map is refused, the sparse shared file map is not."""
    code = textwrap.dedent(
        """
        import mmap, resource
        from fastscan.containers import sparse
        with open("/proc/self/statm") as fh:
            data = int(fh.read().split()[5]) * mmap.PAGESIZE
        resource.setrlimit(resource.RLIMIT_DATA, (data + (64 << 20), resource.RLIM_INFINITY))
        size = 20 << 30
        try:
            mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000)
            print("anonymous mapped")
        except OSError:
            print("anonymous refused")
        buf = sparse._sparse_map(size)
        buf[:4] = b"head"
        buf[size - 4 :] = b"tail"
        print(bytes(buf[:4]), bytes(buf[size - 4 :]), len(buf))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == [
        "anonymous refused",
        f"b'head' b'tail' {20 << 30}",
    ]


def test_memory_error_in_a_reader_is_a_budget_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(containers, "_scan", exhausted)
    result = Scanner(model=None).scan_bytes(_malicious_pickle(), "x.pkl")
    assert (result.status, result.verdict) == ("partial", "suspicious")
    assert "FS306" in result.rule_ids
    assert scan.out_of_memory(result)


def test_memory_error_while_tokenizing_is_a_budget_finding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    path = tmp_path / "x.pkl"
    path.write_bytes(_malicious_pickle())
    monkeypatch.setattr(scan, "tokenize", exhausted)
    result, analysis = Scanner(model=None).prepare(str(path))
    assert analysis is None
    assert (result.status, result.verdict, result.rule_ids) == ("partial", "suspicious", ["FS306"])
    assert result.error == scan.MEMORY_BUDGET
    assert scan.out_of_memory(result)


def test_worker_memory_stays_flat_over_7z_archives(tmp_path: Path) -> None:
    """py7zr leaves reference cycles holding its decompressor buffers; with the workers' tuned GC
    thresholds they piled up (+1.1 GB over 320 scans of a 1 MiB archive). Fresh interpreter: the
    worker's GC settings must not leak into the test process."""
    py7zr = pytest.importorskip("py7zr")
    archive = tmp_path / "a.7z"
    with py7zr.SevenZipFile(archive, "w") as zf:
        zf.writestr(os.urandom(1 << 20), "data.bin")
    code = textwrap.dedent(
        f"""
        import os
        from fastscan import worker
        from fastscan.sources.ref import FileRef
        config = worker.WorkerConfig(worker.default_scanner_factory, {{}}, 0, 0, in_pool=False)
        worker.init_worker(config)
        worker._tune_gc()  # what a pool worker runs with
        path = {str(archive)!r}
        refs = [FileRef(path, os.path.getsize(path), 0.0)] * 8
        worker.scan_batch(None, 1, refs, False)
        start = worker._statm(1)
        for _ in range(40):
            worker.scan_batch(None, 1, refs, False)
        print((worker._statm(1) - start) >> 20)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-P", "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) < 128, f"RSS grew {proc.stdout.strip()} MB"
