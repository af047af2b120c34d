"""`scan` over trees and stdin, --quiet, --hash, baselines, `rules`, --version, help texts, and
console output that keeps whole reasons and prints one line per finding."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fastscan import __version__
from fastscan.cli import _build_parser, main
from fastscan.containers import ContainerLimits
from fastscan.findings import REGISTRY, Finding, Severity
from fastscan.results import results_to_batch
from fastscan.scan import Scanner
from fastscan.sinks import ConsoleSink
from fastscan.verdict import FileResult

REPO = Path(__file__).resolve().parents[2]
MALICIOUS = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x12echo fastscan-test\x85R."
BENIGN = pickle.dumps({"weights": [1.0, 2.0], "epoch": 3}, protocol=4)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "good.pkl").write_bytes(BENIGN)
    (tmp_path / "a" / "b" / "deep.bin").write_bytes(MALICIOUS)
    (tmp_path / "a" / "notes.txt").write_text("hello\n")
    return tmp_path / "a"


def jsonl(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_scan_directory_recurses_in_order(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--format", "jsonl", str(tree)]) == 1
    rows = jsonl(capsys)
    assert [Path(str(r["path"])).relative_to(tree).as_posix() for r in rows] == [
        "b/deep.bin",
        "good.pkl",
        "notes.txt",
    ]
    assert [r["verdict"] for r in rows] == ["malicious", "clean", "clean"]


def test_scan_stdin(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fastscan", "scan", "--format", "jsonl", "-"],
        input=MALICIOUS,
        capture_output=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert row["path"] == "<stdin>" and row["verdict"] == "malicious"


def test_quiet_prints_only_flagged(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "-q", str(tree / "good.pkl")]) == 0
    assert capsys.readouterr().out == ""
    main(["scan", "--quiet", str(tree)])
    out = capsys.readouterr().out
    assert "deep.bin" in out and "good.pkl" not in out


def test_hash_column(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["scan", "--format", "jsonl", "--hash", str(tree / "b" / "deep.bin")])
    (row,) = jsonl(capsys)
    assert row["sha256"] == hashlib.sha256(MALICIOUS).hexdigest()
    main(["scan", "--format", "jsonl", str(tree / "b" / "deep.bin")])
    assert jsonl(capsys)[0]["sha256"] is None  # hashing reads every byte: only when asked


def test_baseline_fails_only_on_new_findings(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline.json"
    assert main(["scan", "--write-baseline", str(baseline), str(tree)]) == 0
    entries = json.loads(baseline.read_text())["accepted"]
    assert {e["rule_id"] for e in entries} == {"FS102"}  # a listed sink: no classifier finding
    assert main(["scan", "--baseline", str(baseline), str(tree)]) == 0
    assert "(accepted in baseline)" in capsys.readouterr().out
    (tree / "moved.bin").write_bytes(MALICIOUS)  # same content elsewhere: still accepted
    assert main(["scan", "--baseline", str(baseline), str(tree)]) == 0
    (tree / "new.bin").write_bytes(MALICIOUS.replace(b"fastscan-test", b"fastscan-new!"))
    assert main(["scan", "--baseline", str(baseline), str(tree)]) == 1
    baseline.write_text("{}")
    assert main(["scan", "--baseline", str(baseline), str(tree)]) == 2  # clear error, no crash
    assert "not a fastscan-baseline/1 file" in capsys.readouterr().err


def test_rules_lists_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for rule in REGISTRY.values():
        assert rule.rule_id in out and rule.title in out
    assert main(["rules", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == len(REGISTRY) and all(r["explanation"] for r in listed)


@pytest.mark.parametrize(
    ("name", "origin", "klass"),
    [
        ("os.system", "denylist", "dangerous"),
        ("posix:system", "denylist", "dangerous"),
        ("collections.OrderedDict", "allowlist", "safe"),
        ("mylab.layers.Block", "unlisted", "unknown"),
    ],
)
def test_rules_lookup(
    name: str, origin: str, klass: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "--format", "json", "--lookup", name]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["origin"], info["class"]) == (origin, klass)
    assert info["reason"] if origin != "unlisted" else not info["entry"]
    assert main(["rules", "--lookup", name]) == 0
    assert f"decided by   {origin}" in capsys.readouterr().out


def test_rules_lookup_rejects_a_bare_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--lookup", "system"]) == 2
    assert "module.name" in capsys.readouterr().err


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"fastscan {__version__}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_argument_has_help_and_its_default_shown() -> None:
    for name, sub in _subparsers(_build_parser()).items():
        if name in ("corpus", "train", "eval", "version"):
            continue  # forwarded to their own parsers / no arguments
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest} has no help"
            if action.option_strings and action.default is not None:
                assert "(default:" in sub._get_formatter()._format_action(action), (
                    name,
                    action.dest,
                )


def _row(reason: str) -> FileResult:
    finding = Finding("FS102", Severity.MALICIOUS, reason, "archive/data.pkl", 1234)
    return FileResult("m.pt", verdict="malicious", findings=[finding])


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_keeps_whole_reasons_off_a_terminal() -> None:
    long = "os.system called with " + "x" * 300
    to_file = io.StringIO()
    sink = ConsoleSink(to_file, max_reasons=20)
    sink.write(results_to_batch([_row(long)]))
    assert "archive/data.pkl@1234" in to_file.getvalue()  # the location is not cut
    terminal = _Tty()
    ConsoleSink(terminal, max_reasons=20).write(results_to_batch([_row(long)]))
    assert "…" in terminal.getvalue() and "@1234" not in terminal.getvalue()


def test_one_finding_per_budget() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(40):
            z.writestr(f"m{i}", b"x")
    scanner = Scanner(model=None, container_limits=ContainerLimits(max_members=10))
    result = scanner.scan_bytes(buf.getvalue(), "bomb.zip")
    assert [f.rule_id for f in result.findings].count("FS306") == 1
    assert result.status == "partial" and result.verdict != "clean"


def test_bulk_hash_column(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.jsonl"
    code = main(
        ["bulk", str(tree), "--out", str(out), "--format", "jsonl", "-j", "0", "--no-progress",
         "--hash"]
    )  # fmt: skip
    assert code == 1
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["deep.bin"]["sha256"] == hashlib.sha256(MALICIOUS).hexdigest()
    assert rows["notes.txt"]["sha256"] == hashlib.sha256(b"hello\n").hexdigest()


def test_rules_lookup_asks_an_index_when_the_build_has_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import types

    fake = types.ModuleType("fastscan.index")
    fake.lookup = lambda module, name: f"{module}.{name} is defined by package mylab 1.2"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fastscan.index", fake)
    assert main(["rules", "--format", "json", "--lookup", "mylab.layers.Block"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["index"] == "mylab.layers.Block is defined by package mylab 1.2"
    monkeypatch.delitem(sys.modules, "fastscan.index")
    assert main(["rules", "--format", "json", "--lookup", "mylab.layers.Block"]) == 0
    assert "index" not in json.loads(capsys.readouterr().out)


def test_scan_of_one_file_does_not_import_parquet(tmp_path: Path) -> None:
    """A one-file scan stays under 0.3 s (benchmarks/bench_latency.py) partly because it never
    loads pyarrow.parquet (~20 ms); `scan --format jsonl` must still print the row."""
    target = tmp_path / "evil.pkl"
    target.write_bytes(MALICIOUS)
    code = (
        "import sys\n"
        "from fastscan.cli import main\n"
        f"code = main(['scan', '--format', 'jsonl', {str(target)!r}])\n"
        "print('parquet' if 'pyarrow.parquet' in sys.modules else 'no parquet', code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-P", "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    row, last = proc.stdout.splitlines()
    assert json.loads(row)["verdict"] == "malicious"
    assert last == "no parquet 1"
