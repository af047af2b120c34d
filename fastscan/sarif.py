"""SARIF 2.1.0 for code-scanning views (GitHub code scanning reads exactly this shape).

Rules are described once, from the catalogue (`findings.py`): title, explanation,
remediation, severity. Results are one per finding of a flagged or errored file (clean files
only with `include_clean`), each with a `ruleIndex`, a repository-relative location and a
`partialFingerprints` entry that depends on the file's content and the finding only, so the
same alert is recognised across runs and commits.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import IO, Any
from urllib.parse import quote

import pyarrow as pa

from .findings import REGISTRY, SCAN_ERROR, FindingRule, Severity
from .results import conform_batch

PROJECT_URL = "https://github.com/fastscan/fastscan"
RULES_DOC = "docs/rules.md"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "fastscanFinding/v1"

# GitHub code scanning buckets security-severity: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9
# medium, 0.1-3.9 low.
SECURITY_SEVERITY = {
    Severity.MALICIOUS: "9.3",
    Severity.SUSPICIOUS: "7.0",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}
_LEVEL = {
    Severity.MALICIOUS: "error",
    Severity.SUSPICIOUS: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def rule_anchor(rule_id: str) -> str:
    """The anchor of a rule's heading in docs/rules.md (GitHub lower-cases heading ids)."""
    return rule_id.lower()


def help_uri(rule_id: str) -> str:
    return f"{PROJECT_URL}/blob/main/{RULES_DOC}#{rule_anchor(rule_id)}"


def sarif_rule(rule: FindingRule) -> dict[str, Any]:
    threats = f"\n\nThreats (docs/threats.md): {rule.threats}." if rule.threats else ""
    return {
        "id": rule.rule_id,
        "name": "".join(w.capitalize() for w in re.findall(r"[A-Za-z0-9]+", rule.title)),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.explanation},
        "help": {
            "text": f"{rule.explanation}\n\nRemediation: {rule.fix}",
            "markdown": f"{rule.explanation}\n\n**Remediation**: {rule.fix}{threats}",
        },
        "helpUri": help_uri(rule.rule_id),
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "tags": ["security", "pickle", "ml-model"],
            "precision": "high" if rule.rule_id[2] != "9" else "medium",
        },
    }


def fingerprint(row: Mapping[str, Any], finding: Mapping[str, Any]) -> str:
    """Stable for the same file content and finding; the path is not part of it.

    With a content hash (`--hash`) the content is its sha256, else its size: files of equal
    size with the very same finding then share a fingerprint, which only merges their alerts.
    """
    content = row.get("sha256") or f"size={row.get('size')}"
    parts = (content, finding["rule_id"], finding["member"] or "", finding["subject"] or "")
    offset = finding["offset"] if finding["offset"] is not None else -1
    text = "\0".join((*parts, str(offset)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def artifact_location(path: str, root: str) -> dict[str, Any]:
    """Repository-relative `uri` with `uriBaseId` when `path` is under `root`, else absolute."""
    if "://" in path:
        return {"uri": path}
    full = os.path.abspath(path)
    rel = os.path.relpath(full, root) if full.startswith(os.path.join(root, "")) else ""
    if rel:
        return {"uri": quote(PurePosixPath(*rel.split(os.sep)).as_posix()), "uriBaseId": SRCROOT}
    return {"uri": PurePosixPath(full).as_uri()}


class SarifSink:
    """One run; rules for the ids seen, one result per finding. Written on `close`.

    `baseline`: (sha256, rule_id) pairs accepted earlier; their results carry an external
    suppression, which code scanning shows as dismissed, so only new findings alert.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        tool_version: str = "",
        root: str | None = None,
        include_clean: bool = False,
        baseline: frozenset[tuple[str, str]] = frozenset(),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self._stream = stream
        self._tool_version = tool_version
        self._root = os.path.abspath(root or os.getcwd())
        self._include_clean = include_clean
        self._baseline = baseline
        self._metadata = dict(metadata or {})
        self._rule_index: dict[str, int] = {}
        self._results: list[dict[str, Any]] = []

    def write(self, batch: pa.RecordBatch) -> None:
        for row in conform_batch(batch).to_pylist():
            flagged = row["verdict"] != "clean" or row["status"] == "error"
            if not flagged and not self._include_clean:
                continue
            findings = list(row["findings"] or ())
            if not self._include_clean:  # INFO notes (FS310, FS203) say nothing about risk
                findings = [f for f in findings if Severity.parse(f["severity"]) > Severity.INFO]
            if flagged and not findings:  # never drop a flagged file for want of a notable note
                findings = list(row["findings"] or ())
            if row["status"] == "error" and not findings:
                # an error found before any reader ran (unreadable, FIFO, timeout): one result
                findings = [_error_finding(row)]
            for f in findings:
                self._results.append(self._result(row, f))

    def _result(self, row: Mapping[str, Any], f: Mapping[str, Any]) -> dict[str, Any]:
        rule_id = f["rule_id"]
        if rule_id not in self._rule_index:
            self._rule_index[rule_id] = len(self._rule_index)
        where = f["member"] or "<file>"
        if f["offset"] is not None and f["offset"] >= 0:
            where += f"@{f['offset']}"
        result: dict[str, Any] = {
            "ruleId": rule_id,
            "ruleIndex": self._rule_index[rule_id],
            "level": _LEVEL[Severity.parse(f["severity"])],
            "message": {"text": f"{f['message']} [{where}] (file verdict: {row['verdict']})"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": artifact_location(row["path"], self._root)
                    }
                }
            ],
            "partialFingerprints": {FINGERPRINT_KEY: fingerprint(row, f)},
            "properties": {
                "severity": f["severity"],
                "member": f["member"],
                "offset": f["offset"],
                "subject": f["subject"],
                "verdict": row["verdict"],
                "status": row["status"],
            },
        }
        suppressions = []
        if f.get("suppressed"):  # a [[suppress]] entry of the config: kept as an audit trail
            suppressions.append({"kind": "external", "justification": f["suppressed"]})
        if row.get("sha256"):
            result["properties"]["sha256"] = row["sha256"]
            if (row["sha256"], rule_id) in self._baseline:
                suppressions.append(
                    {"kind": "external", "justification": "accepted in the fastscan baseline"}
                )
        if suppressions:
            result["suppressions"] = suppressions
        return result

    def close(self) -> None:
        rules = sorted(self._rule_index, key=self._rule_index.__getitem__)
        driver: dict[str, Any] = {
            "name": "fastscan",
            "informationUri": PROJECT_URL,
            "rules": [sarif_rule(REGISTRY[rid]) for rid in rules],
        }
        if self._tool_version:
            driver["version"] = driver["semanticVersion"] = self._tool_version
        run: dict[str, Any] = {
            "tool": {"driver": driver},
            "originalUriBaseIds": {SRCROOT: {"uri": PurePosixPath(self._root).as_uri() + "/"}},
            "results": self._results,
        }
        if self._metadata:
            run["properties"] = self._metadata
        doc = {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [run],
        }
        json.dump(doc, self._stream, indent=2)
        self._stream.write("\n")
        self._stream.flush()


def _error_finding(row: Mapping[str, Any]) -> dict[str, Any]:
    rule = SCAN_ERROR
    return {
        "rule_id": rule.rule_id,
        "severity": "suspicious" if row["verdict"] != "clean" else "low",
        "message": f"{rule.title}: {row['error'] or 'unknown error'}",
        "member": "",
        "offset": -1,
        "subject": "error",
    }
