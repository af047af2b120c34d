"""Every document the code cites is in the repository: a `docs/` page, its `#anchor` headings
and the threat ids (`docs/threats.md G5`) it names."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CITED_DOC = re.compile(r"\bdocs/([\w-]+\.md)(?:#([\w-]+))?")
THREAT_IDS = re.compile(
    r"docs/threats\.md,?\s+(?:section\s+)?((?:[A-J]\d*(?:[-/][A-J]\d+)?(?:,\s*)?)+)"
)
# documents that live outside the repository and were cited before docs/ held them
ABSENT = re.compile(r"\b(THREATS|STACK|DESIGN|HOUSE)\.md\b")


def _sources() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "fastscan", "tests", "benchmarks", "fuzz", "native", "pyproject.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    suffixes = (".py", ".pyx", ".pxi", ".toml", ".md", ".sh")
    return [REPO / p for p in listed if p.endswith(suffixes) and (REPO / p).is_file()]


def _headings(doc: Path) -> set[str]:
    return {line[3:].strip() for line in doc.read_text().splitlines() if line.startswith("## ")}


def test_cited_documents_and_anchors_exist() -> None:
    cited = 0
    for path in _sources():
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not ABSENT.search(text), f"{path}: cites a document outside the repository"
        for name, anchor in CITED_DOC.findall(text):
            doc = REPO / "docs" / name
            assert doc.is_file(), f"{path} cites docs/{name}"
            if anchor:
                assert anchor in _headings(doc), f"{path} cites docs/{name}#{anchor}"
            cited += 1
    assert cited > 100  # the finder sees the citations (rules' refs, comments, tests)


def test_cited_threat_ids_are_in_the_catalogue() -> None:
    catalogue = (REPO / "docs" / "threats.md").read_text()
    sections = {line[3] for line in catalogue.splitlines() if re.match(r"## [A-J]\. ", line)}
    ids = set(re.findall(r"\b[A-J]\d+\b", catalogue))
    for letter, first, last in re.findall(r"\b([A-J])(\d+)-[A-J](\d+)\b", catalogue):
        ids |= {f"{letter}{n}" for n in range(int(first), int(last) + 1)}
    seen = 0
    for path in _sources():
        for group in THREAT_IDS.findall(path.read_text(encoding="utf-8", errors="replace")):
            for token in re.findall(r"[A-J]\d*", group):
                seen += 1
                assert token[0] in sections, f"{path}: section {token[0]}"
                assert len(token) == 1 or token in ids, f"{path}: threat id {token}"
    assert seen > 50
