"""Never executes: the whole test corpus is scanned under an audit hook in a fresh interpreter.

Extends `test_never_executes.py` (the lead's hand-built rows) to every docs/threats.md matrix cell
(all payloads x all containers, the archive fixtures) and, separately, a generated `small`
corpus. The child warms up on one benign file per container family (so lazy imports such as
py7zr and lz4 happen before the hook), then installs `sys.addaudithook` and scans. Any import,
exec/compile (except `ast.literal_eval` of a .npy header, which only parses), code-object
construction, unpickling (`pickle.find_class`), marshal load, process, socket, directory
listing, file write, or open of a file other than the scanned ones fails the test; so does a
payload module appearing in `sys.modules`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_matrix import (
    HAS_TORCH,
    build_cell,
    build_fixture,
    model_option,
    payload_cells,
)

from fastscan.train import benign, matrix, payloads, wrappers

PROBE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from fastscan.scan import Scanner

    fixtures, warm, model = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    scanner = Scanner(model=None if model == "none" else model)
    for path in sorted(warm.iterdir()):
        scanner.scan_path(str(path))
    listings = ("manifest.jsonl", "summary.json")
    paths = sorted(str(p) for p in fixtures.rglob("*") if p.is_file() and p.name not in listings)
    # py7zr sizes its decoder from free memory (psutil reads /proc/meminfo, read-only)
    allowed = set(paths) | {"/proc/meminfo"}
    before = set(sys.modules)
    events = []
    WATCH = (
        "import", "exec", "compile", "code.__new__", "function.__new__", "pickle.find_class",
        "marshal.load", "subprocess.", "os.system", "os.exec", "os.spawn", "os.posix_spawn",
        "os.fork", "os.kill", "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.truncate",
        "os.chmod", "os.symlink", "os.link", "os.listdir", "os.scandir", "os.putenv",
        "shutil.", "socket.", "urllib.", "http.", "ftplib.", "smtplib.", "webbrowser.",
        "ctypes.", "pty.", "sys.settrace", "sys.setprofile", "cpython.run_",
    )

    def is_npy_header(args):
        source = args[0].decode("latin-1") if isinstance(args[0], bytes) else str(args[0])
        return args[1] == "<unknown>" and source.lstrip().startswith(("{'descr'", '{"descr"'))

    def hook(event, args):
        if event == "open":
            target, mode = str(args[0]), str(args[1]) if len(args) > 1 else "r"
            if target not in allowed or any(c in mode for c in "wax+"):
                events.append(["open", target, mode])
        elif event == "compile" and is_npy_header(args):
            pass  # ast.literal_eval of a .npy header: parsed to an AST, never executed
        elif event.startswith(WATCH):
            events.append([event, repr(args)[:200]])

    sys.addaudithook(hook)
    results = {}
    for path in paths:
        result = scanner.scan_path(path)
        results[os.path.relpath(path, fixtures)] = [result.verdict, result.status]
    new_modules = sorted(set(sys.modules) - before)
    print(json.dumps({"events": events, "new_modules": new_modules, "results": results}))
    """
)
# Modules named by payloads: none may be imported by a scan (also checked via new_modules == []).
PAYLOAD_MODULES = (
    "posix", "pty", "webbrowser", "runpy", "smtplib", "ctypes", "pydoc", "pdb", "subprocess",
    "socket", "urllib.request", "cProfile", "timeit", "venv",
)  # fmt: skip


def _write_warm_up(folder: Path) -> None:
    """One benign file per container family, so every lazy import happens before the hook."""
    folder.mkdir()
    plain, _ = benign.SOURCES["plain_python"](random.Random(0), "small")
    for container, spec in wrappers.CONTAINERS.items():
        if spec.needs_torch and not HAS_TORCH:
            continue
        data, ext = wrappers.wrap(
            container, plain if spec.accepts == "stream" else b"N0.", random.Random(0)
        )
        (folder / f"{container}{ext.replace('/', '_')}").write_bytes(data)
    for name in wrappers.FIXTURES:
        data, ext = build_fixture(name)
        (folder / f"{name}{ext}").write_bytes(data)


def _run_probe(fixtures: Path, warm: Path, cwd: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(fixtures), str(warm), model_option() or "none"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def _assert_nothing_ran(report: dict[str, object]) -> None:
    assert report["events"] == [], report["events"][:20]  # type: ignore[index]
    assert report["new_modules"] == []
    for module in PAYLOAD_MODULES:
        assert module not in report["new_modules"]


def _malicious_cells() -> list[tuple[str, str, str]]:
    cells = []
    for row, container, key in payload_cells():
        spec = wrappers.CONTAINERS[container]
        if spec.needs_torch and not HAS_TORCH:
            continue
        if spec.accepts == "snippet" and key not in payloads.INJECTABLE:
            continue
        cells.append((row.id, container, key))
    return cells


def test_matrix_corpus_runs_nothing(tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    expected: dict[str, str] = {}
    for row_id, container, key in _malicious_cells():
        data, ext = build_cell(row_id, container, key)
        name = f"{row_id}-{container}-{key.replace(':', '_')}{ext.replace('/', '_')}"
        (fixtures / name).write_bytes(data)
        expected[name] = matrix.row(row_id).expected
    for row in matrix.ROWS:
        for fixture in row.fixtures:
            if fixture in benign.TORCH_SOURCES and not HAS_TORCH:
                continue
            data, ext = build_fixture(fixture)
            (fixtures / f"{row.id}-{fixture}{ext}").write_bytes(data)
    _write_warm_up(tmp_path / "warm")
    report = _run_probe(fixtures, tmp_path / "warm", tmp_path)
    _assert_nothing_ran(report)
    results: dict[str, list[str]] = report["results"]  # type: ignore[assignment]
    assert len(results) == len(list(fixtures.iterdir()))
    assert len(expected) > 1000
    # scanned for real: every malicious cell is flagged (test_matrix checks the exact verdicts)
    missed = [n for n, want in expected.items() if want == "malicious" and results[n][0] == "clean"]
    assert not missed, missed[:10]


@pytest.mark.skipif(not HAS_TORCH, reason="the small corpus needs torch for its benign models")
def test_generated_small_corpus_runs_nothing(tmp_path: Path) -> None:
    from fastscan.train.corpus import generate

    manifest = generate(tmp_path / "corpus", seed=0, scale="small")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    _write_warm_up(tmp_path / "warm")
    report = _run_probe(tmp_path / "corpus", tmp_path / "warm", tmp_path)
    _assert_nothing_ran(report)
    results: dict[str, list[str]] = report["results"]  # type: ignore[assignment]
    assert set(results) == {row["path"] for row in rows}
    missed = [
        r["path"] for r in rows if r["label"] == "malicious" and results[r["path"]][0] == "clean"
    ]
    assert not missed, missed[:10]
