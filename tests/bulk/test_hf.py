"""hf://ORG/NAME[@REV]: Hugging Face repositories read by ranges through HfFileSystem.

The public Hub is not reachable from the test machines, so `hub_server` answers the Hub API
for one small repository on 127.0.0.1; the CLI runs in a subprocess so that HF_ENDPOINT and
HF_TOKEN are read the way huggingface_hub reads them.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastscan.sources.ref import hf_coordinates
from tests.hub_server import COMMIT, HubRepo, serve
from tests.mirror import torch_zip_bytes

pytest.importorskip("huggingface_hub")

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_local_test_token"


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[str, HubRepo]]:
    files = {
        "pytorch_model.bin": torch_zip_bytes(tensor_floats=600_000, hostile=True),  # ~2.4 MB
        "model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"__metadata__":{}}',
        "config.json": b'{"model_type": "tiny"}',
        "extra/clean.pkl": pickle.dumps({"lr": 0.1, "steps": [1, 2, 3]}, protocol=4),
    }
    repo = HubRepo("acme/tiny", files, token=TOKEN)
    with serve(repo) as endpoint:
        yield endpoint, repo


def fastscan(
    endpoint: str, *args: str, token: str | None = TOKEN, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        HF_ENDPOINT=endpoint,
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_OFFLINE="0",
        HF_HOME=str(cwd or REPO_ROOT / ".hf-home-unused"),
    )
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "fastscan", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def rows(stdout: str) -> dict[str, dict[str, Any]]:
    return {r["path"]: r for r in map(json.loads, stdout.splitlines())}


def test_scan_hf_repository_by_ranges(hub: tuple[str, HubRepo], tmp_path: Path) -> None:
    endpoint, repo = hub
    repo.requests.clear()
    proc = fastscan(endpoint, "scan", "--format", "jsonl", "hf://acme/tiny", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    got = rows(proc.stdout)
    assert set(got) == {
        "hf://acme/tiny/pytorch_model.bin",
        "hf://acme/tiny/config.json",
        "hf://acme/tiny/extra/clean.pkl",
    }  # safetensors skipped unless asked
    evil = got["hf://acme/tiny/pytorch_model.bin"]
    assert evil["verdict"] == "malicious" and "os.system" in evil["globals"]
    assert (evil["hf_repo"], evil["hf_revision"]) == ("acme/tiny", "main")
    assert got["hf://acme/tiny/extra/clean.pkl"]["verdict"] == "clean"
    size = len(repo.files["pytorch_model.bin"])
    assert evil["bytes_read"] < size // 4  # the tensor storage was not downloaded
    reads = [r for r in repo.requests if r["path"].endswith("/resolve/main/pytorch_model.bin")]
    assert reads and all(r["range"] for r in reads if r["method"] == "GET")
    assert not any("model.safetensors" in r["path"] for r in repo.requests)
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in repo.requests)  # HF_TOKEN honoured


def test_revision_and_safetensors_on_request(hub: tuple[str, HubRepo], tmp_path: Path) -> None:
    endpoint, _repo = hub
    url = f"hf://acme/tiny@{COMMIT}"
    proc = fastscan(
        endpoint, "scan", "--format", "jsonl", "--with-safetensors", "--hash", url, cwd=tmp_path
    )
    got = rows(proc.stdout)
    st = got[f"{url}/model.safetensors"]
    assert st["status"] == "unsupported" and st["hf_revision"] == COMMIT
    assert got[f"{url}/pytorch_model.bin"]["sha256"]  # LFS oid: content hash without reading it


def test_bulk_hf_repository(hub: tuple[str, HubRepo], tmp_path: Path) -> None:
    endpoint, _repo = hub
    out = tmp_path / "v.jsonl"
    proc = fastscan(
        endpoint, "bulk", "hf://acme/tiny", "--out", str(out), "--format", "jsonl", "-j", "0",
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    got = rows(out.read_text())
    assert len(got) == 3 and got["hf://acme/tiny/pytorch_model.bin"]["verdict"] == "malicious"


def test_wrong_token_or_revision_is_a_clear_error(hub: tuple[str, HubRepo], tmp_path: Path) -> None:
    endpoint, _repo = hub
    proc = fastscan(endpoint, "scan", "hf://acme/tiny", token="hf_wrong", cwd=tmp_path)
    assert proc.returncode == 2 and "cannot list hf://acme/tiny" in proc.stderr
    proc = fastscan(endpoint, "scan", "hf://acme/tiny@nope", cwd=tmp_path)
    assert proc.returncode == 2 and "hf://acme/tiny@nope" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = fastscan(endpoint, "scan", "hf://acme/tiny/missing.bin", cwd=tmp_path)
    assert proc.returncode == 2 and "no object at or under it" in proc.stderr  # never clean
    proc = fastscan(endpoint, "scan", "hf://acme/tiny/extra/clean.pkl", cwd=tmp_path)
    assert proc.returncode == 0 and "hf://acme/tiny/extra/clean.pkl" in proc.stdout


def test_hf_coordinates_of_urls() -> None:
    assert hf_coordinates("hf://acme/tiny/a/b.bin") == ("acme/tiny", "main")
    assert hf_coordinates("hf://acme/tiny@v1.0/b.bin") == ("acme/tiny", "v1.0")
    assert hf_coordinates("hf://datasets/acme/data@refs%2Fpr%2F1/x") == (
        "datasets/acme/data",
        "refs/pr/1",
    )
