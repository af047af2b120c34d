"""`[[suppress]] path` globs match wherever the file is, in `scan` and `bulk`; a suppressed
finding stays in the row, marked, and does not count (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fastscan.cli import main
from fastscan.results import conform_table

UNKNOWN = b"\x80\x02cmylab.old\nThing\n)R."  # FS103: an unlisted global, called


def _config(tmp_path: Path, glob: str) -> str:
    path = tmp_path / f"cfg-{abs(hash(glob))}.toml"
    path.write_text(f'[[suppress]]\nrule = "FS103"\npath = "{glob}"\nreason = "old format"\n')
    return str(path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for sub in ("legacy", "new"):
        (root / sub).mkdir(parents=True)
        (root / sub / "a.pkl").write_bytes(UNKNOWN)
    return root


def _bulk_rows(root: str, out: Path, config: str) -> dict[str, dict]:  # type: ignore[type-arg]
    argv = ["bulk", root, "--out", str(out), "-j", "0", "--model", "none", "--no-progress"]
    main([*argv, "--config", config])
    table = conform_table(pq.read_table(out))
    return {r["path"].split("tree/", 1)[1]: r for r in table.to_pylist()}


@pytest.mark.parametrize("glob", ["legacy/*", "*/legacy/*.pkl", "{abs}/legacy/*"])
@pytest.mark.parametrize("root_form", ["absolute", "relative"])
def test_bulk_matches_root_relative_and_absolute(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, glob: str, root_form: str
) -> None:
    monkeypatch.chdir(tmp_path)
    root = str(tree) if root_form == "absolute" else "tree"
    rows = _bulk_rows(root, tmp_path / "v.parquet", _config(tmp_path, glob.format(abs=tree)))
    legacy, new = rows["legacy/a.pkl"], rows["new/a.pkl"]
    assert new["verdict"] == "suspicious" and new["rule_ids"] == ["FS103"]
    assert legacy["verdict"] == "clean" and legacy["rule_ids"] == []
    # the audit trail: the finding is still there, marked with the config and its reason
    (finding,) = legacy["findings"]
    assert finding["rule_id"] == "FS103" and finding["suppressed"].endswith(": old format")
    assert legacy["reasons"][0].endswith("(suppressed: " + finding["suppressed"] + ")")
    assert new["findings"][0]["suppressed"] == ""


@pytest.mark.parametrize(
    "case",
    [(g, a) for g in ("legacy/*", "{abs}/legacy/*") for a in ("relative", "absolute")],
)
def test_scan_matches_cwd_relative_and_absolute(
    tree: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str],
) -> None:
    glob, arg_form = case
    config = _config(tmp_path, glob.format(abs=tree))
    monkeypatch.chdir(tree)
    files = ["legacy/a.pkl", "new/a.pkl"]
    if arg_form == "absolute":
        files = [str(tree / f) for f in files]
    code = main(["scan", "--format", "jsonl", "--model", "none", "--config", config, *files])
    legacy, new = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert code == 1  # new/a.pkl still flagged
    assert legacy["verdict"] == "clean" and legacy["findings"][0]["suppressed"]
    assert new["verdict"] == "suspicious" and not new["findings"][0]["suppressed"]
    assert main(["scan", "--model", "none", "--config", config, files[0]]) == 0


def test_unmatched_glob_suppresses_nothing(tree: Path, tmp_path: Path) -> None:
    rows = _bulk_rows(str(tree), tmp_path / "v.parquet", _config(tmp_path, "other/*"))
    assert all(r["verdict"] == "suspicious" for r in rows.values())


def test_files_written_before_the_suppressed_field_still_read(tmp_path: Path) -> None:
    import pyarrow as pa

    from fastscan.report import collect_report
    from fastscan.results import FINDING_TYPE, RESULT_SCHEMA, batch_to_results

    old_finding = pa.struct([f for f in FINDING_TYPE if f.name != "suppressed"])
    old_schema = pa.schema(
        [
            pa.field("findings", pa.list_(old_finding)) if f.name == "findings" else f
            for f in RESULT_SCHEMA
        ]
    )
    finding = {
        "rule_id": "FS103",
        "severity": "suspicious",
        "message": "m",
        "member": "",
        "offset": 3,
        "subject": "x.y",
    }
    rows = [
        {"path": "a", "verdict": "suspicious", "status": "complete", "findings": [finding]},
        {"path": "b", "verdict": "clean", "status": "complete", "findings": []},
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=old_schema), tmp_path / "old.parquet")
    table = conform_table(pq.read_table(tmp_path / "old.parquet"))
    assert table.schema.equals(RESULT_SCHEMA)
    (a, b) = batch_to_results(table)
    assert a.findings[0].suppressed == "" and a.rule_ids == ["FS103"] and b.findings == []
    assert collect_report(str(tmp_path / "old.parquet")).rows == 2


def test_sarif_marks_suppressed_results(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, f"{tree}/legacy/*")
    argv = ["scan", "--format", "sarif", "--sarif-all", "--model", "none", "--config", config]
    main([*argv, str(tree / "legacy" / "a.pkl"), str(tree / "new" / "a.pkl")])
    results = json.loads(capsys.readouterr().out)["runs"][0]["results"]
    by_path = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r for r in results}
    # outside the SARIF root (the current directory) locations are absolute file URIs
    legacy = by_path[(tree / "legacy" / "a.pkl").as_uri()]
    new = by_path[(tree / "new" / "a.pkl").as_uri()]
    assert legacy["suppressions"][0]["justification"].endswith(": old format")
    assert "suppressions" not in new
