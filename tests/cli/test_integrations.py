"""The pre-commit hook (through `pre-commit try-repo`) and the composite CI action (its `run:`
steps executed the way the runner executes them; `uses:` steps such as the SARIF upload are
not run, only checked for their inputs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MALICIOUS = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x12echo fastscan-test\x85R."
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]


@pytest.fixture
def shims(tmp_path: Path) -> dict[str, str]:
    """PATH with `fastscan` and `python` running this checkout's code (not an installed one)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, args in (("fastscan", "-m fastscan "), ("python", "")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {args}"$@"\n')
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PRE_COMMIT"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = str(REPO)
    return env


def git(cwd: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


# -- pre-commit ----------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_pre_commit_hook_flags_staged_models_by_content(
    tmp_path: Path, shims: dict[str, str]
) -> None:
    pytest.importorskip("pre_commit")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    shutil.copy(REPO / ".pre-commit-hooks.yaml", hooks)
    git(hooks, "init", "-q")
    git(hooks, "add", ".")
    git(hooks, "commit", "-qm", "hooks")
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q")
    (project / "README.md").write_text("a model repository\n")
    (project / "weights.dat").write_bytes(MALICIOUS)  # no model extension: found by content
    git(project, "add", ".")
    env = {**shims, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    def try_repo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pre_commit", "try-repo", str(hooks), "fastscan-system"],
            cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    proc = try_repo()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "weights.dat" in proc.stdout and "FS102" in proc.stdout
    assert "README.md" not in proc.stdout  # --quiet: clean files are not listed
    git(project, "rm", "-q", "--cached", "weights.dat")
    (project / "weights.dat").unlink()
    proc = try_repo()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FASTSCAN_TEST_PRE_COMMIT_BUILD") != "1",
    reason="builds fastscan from source into a fresh virtualenv with packages from PyPI (~5 min);"
    " set FASTSCAN_TEST_PRE_COMMIT_BUILD=1",
)
def test_pre_commit_python_hook_installs_fastscan_itself(tmp_path: Path) -> None:
    """The `language: python` hook: pre-commit pip-installs this repository (HEAD, extensions
    compiled) into its own environment; nothing from the test's PATH is used."""
    pytest.importorskip("pre_commit")
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q")
    (project / "w.dat").write_bytes(MALICIOUS)
    git(project, "add", ".")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PRE_COMMIT_HOME")}
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "fastscan"],
        cwd=project, env=env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "w.dat" in proc.stdout and "FS102" in proc.stdout


def test_hook_manifest_scans_every_file_type() -> None:
    import yaml

    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"fastscan", "fastscan-system"}
    for hook in hooks.values():
        assert hook["types"] == ["file"] and "files" not in hook  # content decides, not names
        assert hook["entry"].startswith("fastscan scan")
    assert hooks["fastscan"]["language"] == "python"


# -- the composite action -----------------------------------------------------------------------


def action() -> dict[str, Any]:
    import yaml

    doc = yaml.safe_load((REPO / "action.yml").read_text())
    assert doc["runs"]["using"] == "composite"
    return doc


_EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def expand(text: str, context: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) not in context:
            raise AssertionError(f"action uses an expression the test does not know: {m[0]}")
        return context[m.group(1)]

    return _EXPR.sub(one, text)


def run_action(
    workspace: Path, env: dict[str, str], **inputs: str
) -> tuple[list[int], dict[str, str], dict[str, Any]]:
    """Run the action's `run:` steps in order with bash as the runner does; returns their exit
    codes (stopping at the first failure), the step outputs and the upload step's inputs."""
    doc = action()
    context = {f"inputs.{k}": str(v.get("default", "")) for k, v in doc["inputs"].items()}
    context.update({f"inputs.{k.replace('_', '-')}": v for k, v in inputs.items()})
    context["github.action_path"] = str(REPO)
    outputs: dict[str, str] = {}
    codes: list[int] = []
    upload: dict[str, Any] = {}
    for step in doc["runs"]["steps"]:
        if "uses" in step:
            if step["uses"].startswith("github/codeql-action/upload-sarif"):
                upload = {k: expand(str(v), context) for k, v in step["with"].items()}
            continue
        out_file = workspace.parent / f"output-{len(codes)}"
        out_file.write_text("")
        step_env = {
            **env,
            **{k: expand(str(v), context) for k, v in step.get("env", {}).items()},
            "GITHUB_OUTPUT": str(out_file),
            "GITHUB_WORKSPACE": str(workspace),
        }
        script = workspace.parent / f"step-{len(codes)}.sh"
        script.write_text(expand(step["run"], context))
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace, env=step_env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        codes.append(proc.returncode)
        for line in out_file.read_text().splitlines():
            key, _, value = line.partition("=")
            outputs[key] = value
            if "id" in step:
                context[f"steps.{step['id']}.outputs.{key}"] = value
        if proc.returncode != 0:
            break
    return codes, outputs, upload


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "models").mkdir(parents=True)
    (ws / "models" / "evil.ckpt").write_bytes(MALICIOUS)
    (ws / "models" / "notes.txt").write_text("ok\n")
    return ws


def test_action_scans_writes_sarif_and_fails(workspace: Path, shims: dict[str, str]) -> None:
    codes, outputs, upload = run_action(workspace, shims, install="none", path="models")
    assert codes == [0, 0, 1]  # install (none), scan, fail on findings
    assert outputs["exit-code"] == "1"
    assert upload["sarif_file"] == "fastscan.sarif"
    doc = json.loads((workspace / "fastscan.sarif").read_text())
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in doc["runs"][0]["results"]
    }
    assert uris == {"models/evil.ckpt"}  # relative to the workspace (repository root)


def test_action_report_only_and_baseline(workspace: Path, shims: dict[str, str]) -> None:
    codes, _, _ = run_action(workspace, shims, install="none", path="models", fail_on="never")
    assert codes == [0, 0, 0]
    baseline = workspace / "fastscan-baseline.json"
    subprocess.run(
        ["fastscan", "scan", "--write-baseline", str(baseline), "models"],
        cwd=workspace, env=shims, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    codes, outputs, _ = run_action(
        workspace, shims, install="none", path="models", baseline=str(baseline)
    )
    assert codes == [0, 0, 0] and outputs["exit-code"] == "0"
    (workspace / "models" / "new.pkl").write_bytes(MALICIOUS.replace(b"test", b"new!"))
    codes, _, _ = run_action(
        workspace, shims, install="none", path="models", baseline=str(baseline)
    )
    assert codes == [0, 0, 1]  # a new finding fails despite the baseline


def test_action_install_step_is_valid_shell() -> None:
    for step in action()["runs"]["steps"]:
        if "run" in step:
            script = _EXPR.sub("x", step["run"])
            proc = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
            assert proc.returncode == 0, (step.get("name"), proc.stderr)
