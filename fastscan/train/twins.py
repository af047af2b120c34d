"""Benign unknown twins (issue 15): every benign file of an indexed library also trains as the
scanner sees it when nobody indexed that library.

In the corpus every benign library is known to the ecosystem index, so its unlisted names look
`know_inert` while unknown names show up only in attacks, their unlisted twins (withhold.py) and
user code: a classifier learns "unknown = malicious" and flags any library it never saw. The
twin is the mirror of denylist dropout: the same benign file rescanned with its library left
out of the index (`lolo.scanner_without_index`), still labelled benign, so restoring classes
nobody indexed is seen as benign and only behaviour (what is called on what) separates.

The rescan of one library is also exactly how `eval --lolo` judges that library held out, so
`TwinScan` keeps the rescan's findings and verdicts for `lolo.run_lolo` to reuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..findings import rule_findings
from ..verdict import settleable
from .corpus_scan import CorpusScan, scan_with_rows
from .withhold import _map

__all__ = ["LibraryView", "add_benign_twins", "indexed_libraries", "judgeable_twins"]


@dataclass(frozen=True, slots=True)
class LibraryView:
    """A library's benign files rescanned without it in the index (rows: CorpusScan indices)."""

    rows: np.ndarray
    X: np.ndarray
    findings: list[Any]  # per file, FS9* (model) findings dropped as in scan_corpus
    statuses: list[str]
    rule_verdicts: list[str]


# Corpus library labels that are not distribution names in the ecosystem index.
_INDEX_PACKAGE = {"python-stdlib": "python"}


def index_package(library: str) -> str:
    """The ecosystem index's package name for a corpus library label."""
    return _INDEX_PACKAGE.get(library, library)


def scanner_without_index(
    libraries: frozenset[str], *, model: Any = None, extra_indexes: Sequence[str] = ()
) -> Any:
    """A Scanner whose ecosystem index (the shipped one plus `extra_indexes` files) does not
    know `libraries` (issue 15: a library left out of training is judged with it left out of
    the index too); rules only unless a `model` is given (a path, or scan.DEFAULT_MODEL)."""
    from ..rules.indexed import load_user_indexes, shipped_index
    from ..rules.knowledge import load_shipped
    from ..rules.ruleset import RuleSet
    from ..scan import Scanner

    index = load_user_indexes(extra_indexes, shipped_index())
    hidden = {index_package(lib) for lib in libraries}
    rules = RuleSet(load_shipped(), index=index.without(hidden) if index is not None else None)
    return Scanner(model=model, rules=rules)


# Benign files a scanner must still report (encrypted, not a pickle): not false positives.
NOT_JUDGED = frozenset({"encrypted", "unsupported"})


def libraries(scan: CorpusScan) -> dict[str, np.ndarray]:
    """Library -> row indices of its benign files (rows without a library, and NOT_JUDGED
    ones, are left out)."""
    out: dict[str, list[int]] = {}
    for i, entry in enumerate(scan.entries):
        if entry.label == 0 and entry.library and entry.expected not in NOT_JUDGED:
            out.setdefault(entry.library, []).append(i)
    return {lib: np.array(rows, dtype=np.int64) for lib, rows in sorted(out.items())}


def indexed_libraries(labels: list[str]) -> set[str]:
    """The corpus library labels the shipped index knows (the others' twins are the rows)."""
    from ..rules.indexed import shipped_index

    index = shipped_index()
    if index is None:
        return set()
    packages = {index.package_of(m) for m in index.modules()}
    return {lib for lib in labels if index_package(lib) in packages}


def _rescan_chunk(job: tuple[str, list[str]]) -> tuple[list[Any], np.ndarray]:
    """Worker: rules results and feature rows of `paths` with `library` unknown to the index."""
    library, paths = job
    return scan_with_rows(scanner_without_index(frozenset({library})), paths)


def add_benign_twins(scan: CorpusScan, workers: int = 1, chunk: int = 64) -> int:
    """Fill `scan.X_twin` (each benign file's row with its library withheld from the index; the
    row itself where nothing is withheld) and `scan.library_views`. Returns how many files
    were rescanned."""
    groups = libraries(scan)
    known = indexed_libraries(list(groups))
    jobs = [
        (lib, [str(scan.entries[i].path) for i in rows[k : k + chunk].tolist()])
        for lib, rows in groups.items()
        if lib in known
        for k in range(0, len(rows), chunk)
    ]
    parts = iter(_map(_rescan_chunk, jobs, workers))
    twin = scan.X.copy()
    views: dict[str, LibraryView] = {}
    for lib, rows in groups.items():
        if lib not in known:
            continue
        results: list[Any] = []
        blocks: list[np.ndarray] = []
        for _k in range(0, len(rows), chunk):  # the jobs of `lib`, in order
            rs, X = next(parts)
            results += rs
            blocks.append(X)
        X_lib = np.vstack(blocks)
        twin[rows] = X_lib
        views[lib] = LibraryView(
            rows=rows,
            X=X_lib,
            findings=[rule_findings(r.findings) for r in results],
            statuses=[r.status for r in results],
            rule_verdicts=[r.verdict for r in results],
        )
    scan.X_twin = twin
    scan.library_views = views
    return sum(len(v.rows) for v in views.values())


def judgeable_twins(scan: CorpusScan) -> np.ndarray:
    """fit.judgeable_rows for the twins: rows whose twin's only findings at suspicious or above
    are unlisted globals (the row's own answer where it has no rescan)."""
    return scan.judged_twins(settleable)
