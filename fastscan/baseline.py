"""Baselines: findings accepted earlier, keyed by file content (sha256) and rule id.

`--write-baseline FILE` records every (sha256, rule) of the files a scan flagged; `--baseline
FILE` then accepts a flagged file when every finding it has is in the baseline, so CI fails only
on new files or new findings. Keys are content hashes, not paths: moving an accepted file keeps
it accepted, and changing one byte of it makes it new again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from .findings import Severity
from .verdict import CLEAN, FileResult

FORMAT = "fastscan-baseline/1"
Accepted = frozenset[tuple[str, str]]


def counted(result: FileResult) -> list[str]:
    """Rule ids a baseline must cover for `result` (INFO notes never flag a file)."""
    return sorted({f.rule_id for f in result.findings if f.severity > Severity.INFO})


def is_accepted(result: FileResult, accepted: Accepted) -> bool:
    if result.verdict == CLEAN or not result.sha256 or result.status == "error":
        return False
    rules = counted(result)
    return bool(rules) and all((result.sha256, r) in accepted for r in rules)


def load_baseline(path: str) -> Accepted:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"baseline {path} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"baseline {path} is not a {FORMAT} file")
    try:
        return frozenset((str(e["sha256"]), str(e["rule_id"])) for e in doc["accepted"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"baseline {path}: malformed entry ({exc})") from exc


def write_baseline(path: str, results: Iterable[FileResult]) -> int:
    """Write the findings of every flagged file; returns the number of entries."""
    entries: dict[tuple[str, str], dict[str, str]] = {}
    for r in results:
        if r.verdict == CLEAN or not r.sha256:
            continue
        for rule in counted(r):
            entries.setdefault(
                (r.sha256, rule), {"sha256": r.sha256, "rule_id": rule, "path": r.path}
            )
    doc = {"format": FORMAT, "accepted": [entries[k] for k in sorted(entries)]}
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, path)
    return len(entries)
