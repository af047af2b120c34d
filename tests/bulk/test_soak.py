"""A small run of benchmarks/soak_bulk.py: the generated corpus (archives, 7z, compressed joblib,
torch zips, malicious samples) hard-linked into a mirror of a few thousand files gives the same
rows for 1 and 2 workers and two chunk sizes, no memory-error row, and a bounded process RSS."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "soak_bulk.py"


def _soak_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("soak_bulk", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak_bulk"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_rows_do_not_depend_on_workers_or_chunk_size(tmp_path: Path) -> None:
    soak = _soak_module()
    runs, diff = soak.soak(tmp_path, "small", 4, [1, 2], [64, 7])
    n = len(runs[0].rows)
    assert n > 1500
    assert all(len(r.rows) == n for r in runs)
    verdicts = {row[0] for row in runs[0].rows.values()}
    assert '"malicious"' in verdicts and '"clean"' in verdicts  # the mirror is mixed
    assert any(p.endswith(".7z") for p in runs[0].rows)
    assert diff == []
    assert [p for r in runs for p in r.memory_errors] == []
    assert max(r.max_process_rss for r in runs) < 400 << 20
    assert all(r.returncode == 1 for r in runs)  # malicious samples flag the run
