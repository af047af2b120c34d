"""The labelled corpus as the model sees it: the manifest's entries, and every file scanned by
the production pipeline (`fastscan.scan.Scanner(model=None)`, rules only) into its feature row.

Shared by training (fit.py), withholding (withhold.py), evaluation and leave-one-library-out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import features
from ..findings import Finding, rule_findings
from ..verdict import FileResult, score_decides, settleable


@dataclass(frozen=True, slots=True)
class CorpusEntry:
    path: Path  # absolute
    label: int  # 1 malicious, 0 benign
    family: str  # payload variant ("F:os.system", "C7") or benign source ("torch_state_dict")
    group: str  # coarse family ("process", "exec", …; benign: "torch", "numpy", …)
    container: str
    library: str | None = None  # benign: the distribution whose objects the file holds
    expected: str = ""  # the manifest's expected rules verdict (informational)

    @property
    def split_key(self) -> str:
        """Rows sharing a key stay on one side of every split: all files of one payload variant
        (whatever the container or seed); benign files are independent samples."""
        return f"mal:{self.family}" if self.label else f"benign:{self.path}"


def read_manifest(corpus: str | os.PathLike[str]) -> list[CorpusEntry]:
    """Entries of `<corpus>/manifest.jsonl` (paths relative to the corpus folder)."""
    root = Path(corpus)
    entries = []
    lines = (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = json.loads(line)
        label = row.get("label")
        if label not in ("benign", "malicious"):
            raise ValueError(f"manifest.jsonl:{number}: label must be benign|malicious")
        path = Path(row["path"])
        entries.append(
            CorpusEntry(
                path=path if path.is_absolute() else root / path,
                label=int(label == "malicious"),
                family=str(row.get("family") or row["path"]),
                group=str(row.get("group") or ("benign" if label == "benign" else "unknown")),
                container=str(row.get("container", "")),
                library=row.get("library") or None,
                expected=str(row.get("expected", "")),
            )
        )
    if not entries:
        raise ValueError(f"{root / 'manifest.jsonl'} lists no files")
    return entries


Judge = Callable[[list[Finding], str], bool]  # (findings, status) -> verdict.settleable-like


class Decided(NamedTuple):
    """Masks aligned with a CorpusScan's rows: which rows, unlisted rows and benign twins a
    model score decides (verdict.score_decides)."""

    rows: np.ndarray
    unlisted: np.ndarray
    twins: np.ndarray


@dataclass
class CorpusScan:
    """Features and rule results for every corpus entry, in manifest order."""

    entries: list[CorpusEntry]
    X: np.ndarray  # (n, N_FEATURES) float32
    statuses: list[str]
    findings: list[list[Finding]]
    rule_verdicts: list[str]  # rules alone (Scanner without a model)
    # rows with every dangerous name of the file withheld (withhold.add_unlisted_rows); training
    # adds those of malicious files as extra examples
    X_unlisted: np.ndarray | None = None
    # rows with each benign file's library withheld from the index (twins.add_benign_twins);
    # training adds those of benign files as extra benign examples
    X_twin: np.ndarray | None = None
    library_views: dict[str, Any] = field(default_factory=dict)  # twins.LibraryView by library
    # which unlisted rows a score decides (verdict.score_decides), filled with them (their
    # findings are not kept; the twins' are, in library_views)
    decided_unlisted: np.ndarray | None = None
    y: np.ndarray = field(init=False)
    split_keys: np.ndarray = field(init=False)  # CorpusEntry.split_key
    # split_keys, but the benign files of one library share a key: the folds that calibrate
    # the thresholds (fit.out_of_fold) then score each library as one the classifier never
    # saw, as leave-one-library-out does, not as more files of a library it knows
    fold_keys: np.ndarray = field(init=False)
    groups: np.ndarray = field(init=False)  # coarse family, the unit of leave-one-family-out

    def __post_init__(self) -> None:
        self.y = np.array([e.label for e in self.entries], dtype=np.int64)
        self.split_keys = np.array([e.split_key for e in self.entries])
        self.fold_keys = np.array(
            [f"lib:{e.library}" if not e.label and e.library else e.split_key for e in self.entries]
        )
        self.groups = np.array([e.group for e in self.entries])

    def judged_rows(self, judge: Judge) -> np.ndarray:
        """judge(findings, status) of every row."""
        pairs = zip(self.findings, self.statuses, strict=True)
        return np.array([judge(found, status) for found, status in pairs], dtype=bool)

    def judged_twins(self, judge: Judge) -> np.ndarray:
        """judge(findings, status) of every row's benign twin: its library view's rescan where
        there is one (twins.add_benign_twins), the row's own elsewhere."""
        out = self.judged_rows(judge)
        for view in self.library_views.values():
            pairs = zip(view.findings, view.statuses, strict=True)
            out[view.rows] = [judge(found, status) for found, status in pairs]
        return out

    def decided(self, rows: np.ndarray | None = None) -> Decided:
        """The Decided masks of `rows` (all rows by default), for fit.fit_classifier."""
        own = self.judged_rows(score_decides)
        unlisted = own if self.decided_unlisted is None else self.decided_unlisted
        twin = self.judged_twins(score_decides)
        if rows is None:
            return Decided(own, unlisted, twin)
        return Decided(own[rows], unlisted[rows], twin[rows])

    def data_hash(self) -> str:
        """Digest of what the model learns from: features, labels and groups."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.X).tobytes())
        digest.update(self.y.tobytes())
        digest.update("\n".join(self.split_keys.tolist()).encode())
        return digest.hexdigest()


_WORKER_SCANNER: Any = None


def _scan_chunk(paths: list[str]) -> tuple[list[FileResult], np.ndarray]:
    """Worker: scan paths with a rules-only Scanner; rows are aligned with `paths`."""
    global _WORKER_SCANNER
    if _WORKER_SCANNER is None:
        from ..scan import Scanner

        _WORKER_SCANNER = Scanner(model=None)
    return scan_with_rows(_WORKER_SCANNER, paths)


def scan_with_rows(scanner: Any, paths: list[str]) -> tuple[list[FileResult], np.ndarray]:
    """Results and feature rows aligned with `paths`."""
    results, batch = scanner.scan_refs(paths, with_features=True)
    rows = np.zeros((len(paths), features.N_FEATURES), dtype=np.float32)
    if batch is not None and batch.num_rows:
        # files whose scan raised have no feature row: they keep the all-zero (error) row
        index = {p: i for i, p in enumerate(paths)}
        matrix = features.batch_to_matrix(batch)
        for j, p in enumerate(batch.column("path").to_pylist()):
            rows[index[p]] = matrix[j]
    return results, rows


def scan_corpus(entries: Sequence[CorpusEntry], workers: int = 1, chunk: int = 64) -> CorpusScan:
    """Scan every entry with the production pipeline (rules only) and keep its features."""
    paths = [str(e.path) for e in entries]
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_scan_chunk, chunks))
    else:
        parts = [_scan_chunk(c) for c in chunks]
    results = [r for rs, _ in parts for r in rs]
    X = np.vstack([rows for _, rows in parts]) if parts else np.zeros((0, features.N_FEATURES))
    return CorpusScan(
        entries=list(entries),
        X=np.ascontiguousarray(X, dtype=np.float32),
        statuses=[r.status for r in results],
        findings=[rule_findings(r.findings) for r in results],
        rule_verdicts=[r.verdict for r in results],
    )


def judgeable_rows(scan: CorpusScan) -> np.ndarray:
    """Rows a confident classifier may settle (see verdict.combine): complete scans whose only
    findings at suspicious or above are unlisted globals."""
    return scan.judged_rows(settleable)
