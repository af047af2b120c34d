"""Fuzzing in CI: replay every regression input, then a short bounded campaign per harness.

The long campaign is `python fuzz/run.py --minutes 30` (see fuzz/run.py); here each harness runs
a few thousand executions in a subprocess (~30 s in all) so a crash introduced by a change shows
up in the ordinary test run.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = Path(__file__).resolve().parents[1] / "regressions"
sys.path.insert(0, str(ROOT / "fuzz"))

import targets  # noqa: E402 - fuzz/ is not a package

from fastscan.containers import open_container  # noqa: E402
from fastscan.containers._probe import prefix_is_pickle  # noqa: E402

INPUTS = sorted(p for p in REGRESSIONS.iterdir() if p.suffix == ".bin")


def test_there_are_regression_inputs() -> None:
    assert INPUTS, "tests/regressions/*.bin went missing"


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.stem)
def test_regression_input_passes_every_target(path: Path, target: str) -> None:
    targets.TARGETS[target](path.read_bytes())


def _stored_zip(members: list[tuple[str, bytes]]) -> bytes:
    out, central = bytearray(), bytearray()
    for name, data in members:
        crc, raw, n = zlib.crc32(data), name.encode(), len(data)
        fields = (20, 20, 0, 0, 0, 0, crc, n, n, len(raw), 0, 0, 0, 0, 0, len(out))
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, *fields) + raw
        local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, n, n, len(raw), 0)
        out += local + raw + data
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                       len(out), 0)  # fmt: skip
    return bytes(out + central + eocd)


@pytest.mark.parametrize(
    "path", [p for p in INPUTS if p.stem.startswith("probe-tensor")], ids=lambda p: p.stem
)
def test_tensor_bytes_are_not_pickles(path: Path) -> None:
    data = path.read_bytes() * 64  # a tensor member longer than the probe window
    assert not prefix_is_pickle(data)
    with open_container(
        _stored_zip([("archive/data.pkl", b"\x80\x02}q\x00."), ("archive/data/0", data)])
    ) as c:
        assert [s.member for s in c.streams] == ["archive/data.pkl"]


def test_storage_count_is_not_an_extra_legacy_pickle() -> None:
    from fastscan.containers.sniff import LEGACY_MAGIC_PICKLE

    five = (
        LEGACY_MAGIC_PICKLE
        + b"\x80\x02M\xe9\x03."
        + b"\x80\x02}q\x00."
        + b"\x80\x02}q\x00."
        + b"\x80\x02]q\x00."
    )
    assert five.count(b".") >= 5
    with open_container(
        five + (REGRESSIONS / "legacy-storage-count-looks-like-ext4.bin").read_bytes()
    ) as c:
        assert c.format == "torch_legacy"
        assert "legacy_extra_pickle" not in {a.code for a in c.anomalies}


def test_short_fuzz_campaign_finds_nothing(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "run.py"), "--runs", "2000", "--json",
         "--work", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=False,
    )  # fmt: skip
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {r["run"] for r in results} >= {"tokenizer", "containers-zip", "scan"}
    for result in results:
        assert result["executions"] and result["executions"] >= 2000, result
        assert result["cov"], result  # atheris instrumented the Python stages
        assert (result["returncode"], result["artifacts"]) == (0, []), result
    assert proc.returncode == 0


def test_deeply_nested_json_text_is_sniffed_not_a_recursion_error() -> None:
    from fastscan.containers.sniff import sniff

    assert sniff(b"[" * 100_000) == "text"
    data = (REGRESSIONS / "containers-bz2-deep-json-brackets.bin").read_bytes()
    with open_container(data, limits=targets.FUZZ_CONTAINER_LIMITS) as c:
        assert (c.format, c.wrappers) == ("text", ["bz2"])
        assert "budget_depth" not in {a.code for a in c.anomalies}
