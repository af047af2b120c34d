"""`--index FILE` (scan, explain, bulk) and the config file's `index` key: a user index built from
a small internal package makes its classes known, its gadgets dangerous, and its identity goes
into the output metadata. Needs the index builder (fastscan.index); the package's import-time
marker proves the build never imports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastscan.index")

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = {
    "__init__.py": (
        "import os\nimport pickle\n\nfrom .nets import Net\n\n"
        "open(os.environ['ACME_MARKER'], 'w').write('imported')\n\n\n"
        "class Loader:\n    def __setstate__(self, state):\n"
        "        self.inner = pickle.loads(state['blob'])\n\n\n"
        "def run(cmd):\n    return os.system(cmd)\n"
    ),
    "nets.py": "class Net:\n    def __init__(self, width=3):\n        self.width = width\n",
}
PICKLES = {
    "net": b"\x80\x02cacme_models\nNet\n)\x81}b.",
    "loader": b"\x80\x02cacme_models\nLoader\n)\x81}b.",
    "run": b"cacme_models\nrun\n(S'echo hi'\ntR.",
    "typo": b"\x80\x02cacme_models\nNte\n)\x81}b.",
}


def _fastscan(*args: str, marker: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACME_MARKER": str(marker)}
    return subprocess.run(
        [sys.executable, "-m", "fastscan", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from fastscan.index.cli import main as index_main

    tmp = tmp_path_factory.mktemp("acme")
    package = tmp / "src" / "acme_models"
    package.mkdir(parents=True)
    for name, text in PACKAGE.items():
        (package / name).write_text(text)
    for name, data in PICKLES.items():
        (tmp / f"{name}.pkl").write_bytes(data)
    marker = tmp / "imported_marker"
    os.environ["ACME_MARKER"] = str(marker)
    assert index_main([str(package), "--out", str(tmp / "acme.index")]) == 0
    assert not marker.exists()  # the build parsed the package, never imported it
    return tmp, marker


def _rows(tmp: Path, marker: Path, *extra: str) -> dict[str, dict]:  # type: ignore[type-arg]
    files = [str(tmp / f"{n}.pkl") for n in PICKLES]
    done = _fastscan("scan", "--model", "none", "--format", "jsonl", *extra, *files, marker=marker)
    assert done.returncode in (0, 1), done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {Path(r["path"]).stem: r for r in rows}


def test_user_index_makes_internal_classes_known_and_gadgets_dangerous(
    built: tuple[Path, Path],
) -> None:
    tmp, marker = built
    before = _rows(tmp, marker)
    assert {before[n]["verdict"] for n in PICKLES} == {"suspicious"}
    after = _rows(tmp, marker, "--index", str(tmp / "acme.index"))
    rules = {n: {f["rule_id"] for f in r["findings"]} for n, r in after.items()}
    assert after["net"]["verdict"] == "clean" and rules["net"] == {"FS111"}
    assert after["loader"]["verdict"] == "malicious" and "FS110" in rules["loader"]
    assert after["run"]["verdict"] == "malicious" and "FS110" in rules["run"]
    assert after["typo"]["verdict"] == "suspicious" and rules["typo"] == {"FS109"}
    assert not marker.exists()


def test_config_file_index_key(built: tuple[Path, Path]) -> None:
    tmp, marker = built
    (tmp / "fastscan.toml").write_text('index = "acme.index"\n')
    rows = _rows(tmp, marker, "--config", str(tmp / "fastscan.toml"))
    assert rows["net"]["verdict"] == "clean"


def test_explain_and_bulk_take_the_index_and_record_its_hash(built: tuple[Path, Path]) -> None:
    import pyarrow.parquet as pq

    tmp, marker = built
    index = str(tmp / "acme.index")
    done = _fastscan(
        "explain", "--model", "none", "--index", index, str(tmp / "loader.pkl"), marker=marker
    )
    assert "obj1.__setstate__({})" in done.stdout
    assert "load-time setstate -> [nested_loader] acme_models.Loader.__setstate__" in done.stdout
    out = tmp / "out.parquet"
    done = _fastscan(
        "bulk", str(tmp), "--out", str(out), "--model", "none", "--index", index,
        "--workers", "1", "--no-progress", "--include", "*.pkl", marker=marker,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    meta = pq.read_schema(out).metadata
    assert meta[b"fastscan.index_hash"] and meta[b"fastscan.index_version"] != b"none"
    verdicts = dict(
        zip(
            [Path(p).stem for p in pq.read_table(out)["path"].to_pylist()],
            pq.read_table(out)["verdict"].to_pylist(),
            strict=True,
        )
    )
    assert verdicts["net"] == "clean" and verdicts["run"] == "malicious"


def test_unreadable_index_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.index"
    bad.write_bytes(b"not an index")
    (tmp_path / "x.pkl").write_bytes(PICKLES["net"])
    done = _fastscan("scan", "--index", str(bad), str(tmp_path / "x.pkl"), marker=tmp_path / "m")
    assert done.returncode == 2 and "cannot load index" in done.stderr
