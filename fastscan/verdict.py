"""Severity, Finding and the per-file result every sink writes.

`combine` turns findings, file status and model scores into one fail-closed verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

CLEAN = "clean"
SUSPICIOUS = "suspicious"
MALICIOUS = "malicious"
VERDICTS = (CLEAN, SUSPICIOUS, MALICIOUS)

STATUSES = ("complete", "partial", "unsupported", "encrypted", "error")


class Severity(IntEnum):
    INFO = 0  # recorded, never changes the verdict
    LOW = 1  # worth a look, clean verdict stays clean
    SUSPICIOUS = 2  # verdict at least suspicious
    MALICIOUS = 3  # verdict malicious

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {text!r}; expected one of {', '.join(s.name.lower() for s in cls)}"
            ) from None


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str  # stable: FS1xx imports, FS2xx structure, FS3xx containers, FS9xx model
    severity: Severity
    message: str
    member: str = ""  # container member ("" for the file itself)
    offset: int = -1  # byte offset inside the member's pickle buffer
    subject: str = ""  # what triggered it, e.g. "os.system"

    def where(self) -> str:
        loc = self.member or "<file>"
        return f"{loc}@{self.offset}" if self.offset >= 0 else loc


@dataclass(slots=True)
class FileResult:
    """One row of output: everything fastscan says about one file."""

    path: str
    size: int = -1
    mtime: float = 0.0
    etag: str = ""
    format: str = "unknown"
    extension: str = ""
    status: str = "complete"
    verdict: str = CLEAN
    score: float = float("nan")  # classifier probability of malicious
    anomaly_score: float = float("nan")  # unsupervised score; higher = more unusual
    findings: list[Finding] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)  # distinct "module.name", sorted
    members_scanned: int = 0
    pickles: int = 0
    bytes_read: int = 0
    error: str = ""
    scan_seconds: float = 0.0

    @property
    def rule_ids(self) -> list[str]:
        return sorted({f.rule_id for f in self.findings})

    @property
    def reasons(self) -> list[str]:
        order = sorted(self.findings, key=lambda f: (-int(f.severity), f.rule_id, f.offset))
        return [f"{f.rule_id} {f.severity.name.lower()}: {f.message} [{f.where()}]" for f in order]

    @property
    def max_severity(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.INFO)
