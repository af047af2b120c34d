"""The command line: exit codes, output shapes, help for every command, the Python API."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import fastscan
from fastscan.cli import _COMMANDS, main

MALICIOUS = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x12echo fastscan-test\x85R."
BENIGN = pickle.dumps({"weights": [1.0, 2.0], "epoch": 3}, protocol=4)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {"bad": tmp_path / "bad.bin", "good": tmp_path / "good.pkl", "png": tmp_path / "fake.pt"}
    out["bad"].write_bytes(MALICIOUS)
    out["good"].write_bytes(BENIGN)
    out["png"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    return out


def test_exit_codes(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(files["good"])]) == 0
    assert main(["scan", str(files["bad"])]) == 1
    assert main(["scan", str(files["good"]), str(files["bad"])]) == 1
    missing = str(files["good"].parent / "missing.pkl")
    assert main(["scan", missing]) == 2  # not read: suspicious row, exit 2 (not "flagged")
    assert main(["scan", "--fail-on", "malicious", missing]) == 2
    assert main(["scan", missing, str(files["bad"])]) == 1  # a finding beats an error
    assert main(["scan", str(files["png"])]) == 0  # a PNG named .pt is not a pickle, not an error
    out = capsys.readouterr().out
    assert "FS1" in out and str(files["bad"]) in out


def test_usage_error_is_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scan"])
    assert exc.value.code == 2


def test_jsonl_one_object_per_file(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    main(["scan", "--format", "jsonl", str(files["good"]), str(files["bad"])])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["verdict"] for r in rows] == ["clean", "malicious"]
    assert rows[1]["globals"] == ["os.system"]
    assert rows[1]["format"] == "raw_pickle" and rows[1]["extension"] == ".bin"
    assert any(f["subject"] for f in rows[1]["findings"])


def test_sarif_is_valid_json(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    main(["scan", "--format", "sarif", str(files["bad"])])
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == "2.1.0"
    assert doc["runs"][0]["results"]


def test_explain_lists_opcodes_imports_calls_and_reasons(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(files["bad"])]) == 1
    out = capsys.readouterr().out
    assert "STACK_GLOBAL" in out and "REDUCE" in out
    assert "os.system" in out and "dangerous" in out
    assert "why:" in out and "FS1" in out


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_every_command_has_help(command: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fastscan", command, "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "usage" in proc.stdout, proc.stderr


def test_version_names_the_native_tokenizer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert "tokenizer: native" in capsys.readouterr().out


def test_python_api(files: dict[str, Path]) -> None:
    assert fastscan.scan_path(str(files["bad"])).verdict == "malicious"
    assert fastscan.scan_bytes(BENIGN).verdict == "clean"
    result = fastscan.scan_bytes(MALICIOUS, "upload.pt")
    assert result.verdict == "malicious" and "os.system" in result.globals


def test_readme_config_example_loads(tmp_path: Path) -> None:
    import re

    from fastscan.rules import RuleSet

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert block is not None
    config = tmp_path / "fastscan.toml"
    config.write_text(block.group(1))
    rules = RuleSet.load(config)
    assert rules.classify("mylab.layers", "Conv").verdict_class == "safe"
    assert rules.classify("mylab.debug", "shell").verdict_class == "dangerous"


def test_strict_unknown_keeps_user_classes_suspicious(tmp_path: Path) -> None:
    # a user's own class: unlisted (FS103); the shipped classifier may settle it as benign
    path = tmp_path / "user_model.pkl"
    path.write_bytes(b"\x80\x04\x8c\x0bacme_models\x8c\x03Net\x93)\x81}\x8c\x01w\x8c\x01x\x86b.")
    from fastscan.scan import Scanner

    strict = Scanner(strict_unknown=True).scan_path(path)
    assert strict.verdict == "suspicious" and "FS903" not in strict.rule_ids
    assert main(["scan", "--strict-unknown", str(path)]) == 1
