"""A scanned tree is data: nothing in it (or in the current directory) is imported, by any process
fastscan starts, and nothing is written outside the outputs (onnxruntime's telemetry included).

Every run has its current directory inside a tree that plants modules fastscan or its workers
import; each writes a marker when imported. HOME points at an empty folder that must stay empty.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLANTED = ("numpy", "pyarrow", "onnxruntime", "lz4", "tqdm", "py7zr", "multiprocessing")


def _malicious_pickle() -> bytes:
    """GLOBAL os.system + REDUCE with a harmless `echo`, assembled by hand; never unpickled."""
    arg = b"echo hi"
    return b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(arg)) + arg + b"q\x01\x85q\x02R."


@pytest.fixture()
def hostile(tmp_path: Path) -> dict[str, Path]:
    tree, markers, home = tmp_path / "tree", tmp_path / "markers", tmp_path / "home"
    for d in (tree / "sub", tree / "fastscan", markers, home):
        d.mkdir(parents=True)
    for name in PLANTED:
        (tree / f"{name}.py").write_text(f"open({str(markers / name)!r}, 'w').close()\n")
    (tree / "fastscan" / "__init__.py").write_text(
        f"open({str(markers / 'fastscan')!r}, 'w').close()\n"
    )
    (tree / "sub" / "evil.pkl").write_bytes(_malicious_pickle())
    return {"tree": tree, "markers": markers, "home": home}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)  # absolute: the code under test, never the tree
    return env


def _console_script(tmp: Path) -> list[str]:
    """What pip's `fastscan` entry point runs: a script whose directory is sys.path[0]."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "fastscan"
    script.write_text(
        "import sys\nfrom fastscan.cli import main\nif __name__ == '__main__':\n"
        "    sys.exit(main())\n"
    )
    return [sys.executable, str(script)]


def _run(cmd: list[str], h: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, *args],
        cwd=h["tree"],
        env=_env(h["home"]),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _assert_untouched(h: dict[str, Path], proc: subprocess.CompletedProcess[str]) -> None:
    time.sleep(0.2)  # a forkserver outliving its parent would import late
    assert sorted(p.name for p in h["markers"].iterdir()) == [], proc.stderr
    assert sorted(str(p.relative_to(h["home"])) for p in h["home"].rglob("*")) == []
    assert "\x1b[" not in proc.stderr


def _bulk_rows(path: Path) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {os.path.normpath(str(r["path"])): r for r in rows}


SAFE_WAYS = {
    "python -P -m": [sys.executable, "-P", "-m", "fastscan"],
    "console script": None,  # built per test: see _console_script
}


@pytest.mark.parametrize("way", sorted(SAFE_WAYS))
def test_scan_explain_bulk_import_nothing_from_the_tree(
    hostile: dict[str, Path], tmp_path: Path, way: str
) -> None:
    cmd = SAFE_WAYS[way] or _console_script(tmp_path)

    proc = _run(cmd, hostile, "scan", "sub/evil.pkl", "--format", "jsonl")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["verdict"] == "malicious"
    _assert_untouched(hostile, proc)

    proc = _run(cmd, hostile, "explain", "sub/evil.pkl")
    assert "os.system" in proc.stdout, proc.stderr
    _assert_untouched(hostile, proc)

    for workers in (1, 2):
        out = tmp_path / f"rows-{workers}.jsonl"
        proc = _run(
            cmd, hostile, "bulk", ".", "--workers", str(workers), "--format", "jsonl",
            "--out", str(out), "--no-progress",
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        rows = _bulk_rows(out)
        assert rows["sub/evil.pkl"]["verdict"] == "malicious"
        assert "FS102" in rows["sub/evil.pkl"]["rule_ids"]
        _assert_untouched(hostile, proc)


def test_python_m_without_P_is_safe_for_everything_but_fastscan_itself(
    hostile: dict[str, Path], tmp_path: Path
) -> None:
    """`python -m` puts the cwd first: fastscan drops it before importing anything else, so only
    a planted `fastscan/` package could win (the README says to use -P or the console script)."""
    for p in (hostile["tree"] / "fastscan").iterdir():
        p.unlink()
    (hostile["tree"] / "fastscan").rmdir()
    out = tmp_path / "rows.jsonl"
    proc = _run(
        [sys.executable, "-m", "fastscan"], hostile, "bulk", ".", "--workers", "2",
        "--format", "jsonl", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert _bulk_rows(out)["sub/evil.pkl"]["verdict"] == "malicious"
    _assert_untouched(hostile, proc)


def test_dask_local_cluster_imports_nothing_from_the_tree(
    hostile: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    out = tmp_path / "rows.parquet"
    # the console script (no -P of its own): Dask's spawned processes start with `-c`
    proc = _run(
        _console_script(tmp_path), hostile, "bulk", ".", "--engine", "dask",
        "--workers", "1", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    import pyarrow.parquet as pq

    rows = {os.path.normpath(r["path"]): r for r in pq.read_table(out).to_pylist()}
    assert rows["sub/evil.pkl"]["verdict"] == "malicious"
    assert sorted(p.name for p in hostile["markers"].iterdir()) == [], proc.stderr
