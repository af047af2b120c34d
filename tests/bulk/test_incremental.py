"""`--since`/`--resume` reuse a row only if it was computed like this run (issue 12)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fastscan.bulk import run_bulk
from fastscan.cli import main
from fastscan.results import read_provenance
from fastscan.sources.incremental import PROVENANCE_KEYS, stale_reason

CONFIG_A = """
[[allow]]
module = "mylab.layers"
name = "*"
reason = "our layers"
"""
CONFIG_B = CONFIG_A.replace("our layers", "our layers, reviewed again")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    for i in range(5):
        (root / f"m{i}.pkl").write_bytes(pickle.dumps({"i": i, "w": [1.0] * i}, protocol=4))
    return root


def _run(root: Path, out: Path, since: Path | None = None, **options: object):  # type: ignore[no-untyped-def]
    return run_bulk(
        str(root),
        out=str(out),
        workers=0,
        since=str(since) if since else None,
        progress=False,
        scanner_options={"model": None, **options},
    )


def test_metadata_says_how_rows_were_computed(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.parquet"
    _run(tree, out)
    meta = read_provenance(str(out))
    for key in (*PROVENANCE_KEYS, "version", "limits", "model", "timeout", "memory_mb"):
        assert key in meta, key
    assert len(meta["index_hash"]) == 64 and len(meta["config_hash"]) == 64
    assert len(meta["rules_hash"]) == 64
    assert '"max_opcodes"' in meta["limits"] and '"max_total_bytes"' in meta["limits"]


def test_same_config_carries_rows_another_config_rescans(tree: Path, tmp_path: Path) -> None:
    config_a, config_b = tmp_path / "a.toml", tmp_path / "b.toml"
    config_a.write_text(CONFIG_A)
    config_b.write_text(CONFIG_B)
    first = tmp_path / "first.parquet"
    assert _run(tree, first, config=str(config_a)).scanned == 5

    same = _run(tree, tmp_path / "same.parquet", first, config=str(config_a))
    assert (same.skipped, same.scanned, same.stale) == (5, 0, "")

    other = _run(tree, tmp_path / "other.parquet", first, config=str(config_b))
    assert (other.skipped, other.scanned) == (0, 5)
    assert "rules_hash" in other.stale and str(first) in other.stale
    assert "rescanned (stale)" in other.render()
    # every row of the new file was computed under the new rules
    assert (
        read_provenance(str(tmp_path / "other.parquet"))["rules_hash"]
        != read_provenance(str(first))["rules_hash"]
    )

    strict = _run(
        tree, tmp_path / "strict.parquet", first, config=str(config_a), strict_unknown=True
    )
    assert strict.skipped == 0 and "config_hash" in strict.stale


@pytest.mark.parametrize("key", PROVENANCE_KEYS)
@pytest.mark.parametrize("change", ["other", "missing"])
def test_any_provenance_difference_rescans(
    tree: Path, tmp_path: Path, key: str, change: str
) -> None:
    first = tmp_path / "first.parquet"
    _run(tree, first)
    table = pq.read_table(first)
    name = f"fastscan.{key}".encode()
    meta = {k: v for k, v in table.schema.metadata.items() if k != name}
    if change == "other":  # e.g. an older fastscan, another index or opcode table
        meta[name] = b"something else"
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "old.parquet")
    again = _run(tree, tmp_path / "again.parquet", tmp_path / "old.parquet")
    assert (again.skipped, again.scanned) == (0, 5) and key in again.stale
    same = _run(tree, tmp_path / "same.parquet", first)
    assert (same.skipped, same.scanned) == (5, 0)


def test_resume_keeps_rows_only_under_the_same_rules(tree: Path, tmp_path: Path) -> None:
    config_b = tmp_path / "b.toml"
    config_b.write_text(CONFIG_B)
    out = tmp_path / "v.parquet"
    _run(tree, out)
    kept = run_bulk(
        str(tree),
        out=str(out),
        workers=0,
        resume=True,
        progress=False,
        scanner_options={"model": None},
    )
    assert kept.resumed == 5
    other = run_bulk(
        str(tree),
        out=str(out),
        workers=0,
        resume=True,
        progress=False,
        scanner_options={"model": None, "config": str(config_b)},
    )
    assert other.resumed == 0 and other.scanned == 5 and "rules_hash" in other.stale


def test_cli_since_reports_stale(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_b = tmp_path / "b.toml"
    config_b.write_text(CONFIG_B)
    first, second = tmp_path / "1.parquet", tmp_path / "2.parquet"
    base = ["bulk", str(tree), "-j", "0", "--model", "none", "--no-progress"]
    assert main([*base, "--out", str(first)]) == 0
    assert (
        main([*base, "--out", str(second), "--since", str(first), "--config", str(config_b)]) == 0
    )
    err = capsys.readouterr().err
    assert "rescanned (stale)" in err and "rules_hash" in err


def test_stale_reason_names_every_difference() -> None:
    now = dict.fromkeys(PROVENANCE_KEYS, "x")
    assert stale_reason(now, now) == ""
    assert stale_reason({**now, "model_hash": "y", "index_hash": "z"}, now) == (
        "computed under another model_hash, index_hash"
    )
    assert "fastscan_version" in stale_reason({}, now)
