"""Summaries of a scan: the end-of-run table, and a report over a verdicts Parquet (text, CSV;
the `report` command is reportcmd.py, its HTML page report_html.py).

The exit code of a bulk run comes from `BulkSummary.exit_code` (fastscan.exitcodes).
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .exitcodes import exit_code, outcomes
from .findings import REGISTRY
from .results import comparable, conform_table, read_parquet, read_provenance
from .text import clip
from .verdict import SUSPICIOUS, VERDICTS


@dataclass
class BulkSummary:
    out: str = ""
    discovered: int = 0
    scanned: int = 0  # files scanned in this run
    skipped: int = 0  # unchanged since `since`, rows carried forward
    resumed: int = 0  # already in `out`, rows kept (resume)
    aliased: int = 0  # Hugging Face snapshot paths whose blob was scanned under another path
    rows: int = 0  # rows in the final output
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)  # (verdict, status)
    crashed: int = 0  # culprits of worker crashes, hard timeouts
    bytes: int = 0  # bytes of the files scanned in this run
    seconds: float = 0.0
    interrupted: str = ""  # name of the signal that stopped the run
    fail_on: str = SUSPICIOUS
    strict_errors: bool = False
    stale: str = ""  # why the `since`/`resume` rows could not be reused ("" = they were)

    def count(self, verdicts: list[str], statuses: list[str]) -> None:
        """Set the row counts from the final output's verdict and status columns."""
        self.outcomes = dict(outcomes(verdicts, statuses))

    @property
    def by_verdict(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (verdict, _status), n in self.outcomes.items():
            out[verdict] += n
        return dict(out)

    @property
    def by_status(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_verdict, status), n in self.outcomes.items():
            out[status] += n
        return dict(out)

    @property
    def errors(self) -> int:  # rows with status "error" (each one suspicious or worse)
        return self.by_status.get("error", 0)

    @property
    def files_per_s(self) -> float:
        return self.scanned / self.seconds if self.seconds > 0 else 0.0

    @property
    def flagged(self) -> int:
        return sum(n for v, n in self.by_verdict.items() if v != "clean")

    @property
    def exit_code(self) -> int:
        return exit_code(
            self.outcomes,
            self.fail_on,
            strict_errors=self.strict_errors,
            stopped_by=self.interrupted,
        )

    def render(self) -> str:
        mb = self.bytes / 1e6
        lines = [
            f"{'files discovered':<20} {self.discovered}",
            f"{'scanned':<20} {self.scanned}",
            f"{'skipped (unchanged)':<20} {self.skipped}",
            *([f"{'rescanned (stale)':<20} {self.stale}"] if self.stale else []),
            f"{'kept (resume)':<20} {self.resumed}",
            *([f"{'same blob (HF)':<20} {self.aliased}"] if self.aliased else []),
            f"{'rows written':<20} {self.rows}",
        ]
        lines += [f"{'  ' + v:<20} {self.by_verdict.get(v, 0)}" for v in VERDICTS]
        lines += [f"{'  status ' + s:<20} {n}" for s, n in sorted(self.by_status.items())]
        lines += [
            f"{'errors':<20} {self.errors} ({self.crashed} worker crashes/timeouts)",
            f"{'bytes scanned':<20} {mb:.1f} MB",
            f"{'time':<20} {self.seconds:.1f} s ({self.files_per_s:.1f} files/s, "
            f"{mb / self.seconds if self.seconds else 0.0:.1f} MB/s)",
            f"{'output':<20} {self.out}",
        ]
        if self.interrupted:
            lines.append(f"interrupted by {self.interrupted}: rerun with --resume to finish")
        return "\n".join(lines)


# --- report over a Parquet file ---------------------------------------------------------------


@dataclass
class ReportData:
    path: str
    rows: int
    metadata: dict[str, str]
    by_verdict: list[tuple[str, int]]
    by_status: list[tuple[str, int]]
    by_format: list[tuple[str, int]]
    top_rules: list[tuple[str, int, str]]  # rule id, files, title
    flagged: list[dict[str, Any]]  # one group per distinct content: paths, verdict, rules...
    flagged_files: int  # files in all groups (flagged shows the first `top` groups)
    flagged_groups: int
    slowest: list[dict[str, Any]]  # path, scan_seconds, size
    errors: list[dict[str, Any]]  # path, error
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)  # for the exit code
    errors_total: int = 0

    @property
    def root(self) -> str:
        return self.metadata.get("fastscan.root", "")

    @property
    def banner(self) -> str:
        """Why these rows may not describe one complete scan of the root ("" when they do)."""
        notes = []
        if self.metadata.get("fastscan.complete") == "false":
            notes.append("INTERRUPTED run: some files were not scanned; rerun bulk with --resume")
        if self.metadata.get("fastscan.since"):
            notes.append(
                f"INCREMENTAL run: {self.metadata.get('fastscan.carried', '?')} rows carried "
                f"unchanged from {self.metadata['fastscan.since']}"
            )
        if self.metadata.get("fastscan.resumed_rows"):
            notes.append(f"RESUMED run: {self.metadata['fastscan.resumed_rows']} rows kept")
        return "; ".join(notes)


_ROW_COLUMNS = ("path", "verdict", "status", "format", "score", "rule_ids", "reasons", "size")


def collect_report(parquet_path: str, top: int = 20) -> ReportData:
    # a file, or a Dask engine's dataset folder
    metadata = {f"fastscan.{k}": v for k, v in read_provenance(parquet_path).items()}
    table = conform_table(read_parquet(parquet_path))
    cols = {name: table.column(name).to_pylist() for name in _ROW_COLUMNS}
    cols.update({n: table.column(n).to_pylist() for n in ("scan_seconds", "error", "sha256")})
    cols["findings"] = table.column("findings").to_pylist()
    rule_counts: Counter[str] = Counter()
    for ids in cols["rule_ids"]:
        rule_counts.update(ids or ())
    groups = _flagged_groups(cols)
    slow_idx = sorted(
        range(table.num_rows), key=lambda i: (-_num(cols["scan_seconds"][i]), cols["path"][i])
    )
    error_idx = [i for i, s in enumerate(cols["status"]) if s == "error"]
    return ReportData(
        path=parquet_path,
        rows=table.num_rows,
        metadata=metadata,
        by_verdict=_ordered(Counter(cols["verdict"]), VERDICTS),
        by_status=Counter(cols["status"]).most_common(),
        by_format=Counter(cols["format"]).most_common(),
        top_rules=[
            (rid, n, REGISTRY[rid].title if rid in REGISTRY else "")
            for rid, n in rule_counts.most_common(top)
        ],
        flagged=groups[:top],
        flagged_files=sum(len(g["paths"]) for g in groups),
        flagged_groups=len(groups),
        slowest=[
            {
                "path": cols["path"][i],
                "seconds": cols["scan_seconds"][i],
                "size": cols["size"][i],
            }
            for i in slow_idx[:top]
        ],
        errors=[{"path": cols["path"][i], "error": cols["error"][i]} for i in error_idx[:top]],
        errors_total=len(error_idx),
        outcomes=dict(outcomes(cols["verdict"], cols["status"])),
    )


def _flagged_groups(cols: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Flagged files grouped by content: the sha256 when hashed, else (size, findings), which
    copies of one file share. Worst verdict first, then the most copies."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, verdict in enumerate(cols["verdict"]):
        if not verdict or verdict == "clean":
            continue
        findings = tuple(
            (f["rule_id"], f["member"], f["offset"], f["subject"])
            for f in cols["findings"][i] or ()
        )
        key = ("sha256", cols["sha256"][i]) if cols["sha256"][i] else (cols["size"][i], findings)
        group = groups.get(key)
        if group is None:
            groups[key] = group = {
                "verdict": verdict,
                "score": cols["score"][i],
                "rules": ",".join(cols["rule_ids"][i] or ()),
                "reason": (cols["reasons"][i] or [""])[0],
                "sha256": cols["sha256"][i] or "",
                "size": cols["size"][i],
                "paths": [],
            }
        group["paths"].append(cols["path"][i])
    rank = {v: i for i, v in enumerate(VERDICTS)}
    out = list(groups.values())
    for g in out:
        g["paths"].sort()
    out.sort(
        key=lambda g: (
            -rank.get(g["verdict"], 0),
            -len(g["paths"]),
            -_num(g["score"]),
            g["paths"][0],
        )
    )
    return out


def _num(value: Any) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return -1.0
    return float(value)


def _ordered(counts: Counter[str], order: tuple[str, ...]) -> list[tuple[str, int]]:
    known = [(k, counts.get(k, 0)) for k in order]
    return known + sorted((k, n) for k, n in counts.items() if k not in order)


CSV_COLUMNS = (
    "path", "verdict", "status", "format", "score", "rule_ids", "size", "sha256", "error",
    "hf_repo", "hf_revision",
)  # fmt: skip


def render_csv(parquet_path: str) -> str:
    """Every row, the columns a spreadsheet or pipeline wants (rule ids joined by spaces)."""
    table = conform_table(read_parquet(parquet_path))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    columns = [table.column(c).to_pylist() for c in CSV_COLUMNS]
    for row in zip(*columns, strict=True):
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return " ".join(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def fmt_score(v: Any) -> str:
    return "-" if _num(v) < 0 else f"{v:.3f}"


def sections(data: ReportData) -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables of a report, shared by the text and HTML renderings."""
    return [
        ("Verdicts", ["verdict", "files"], [[k, str(n)] for k, n in data.by_verdict]),
        ("Status", ["status", "files"], [[k, str(n)] for k, n in data.by_status]),
        ("Formats", ["format", "files"], [[str(k), str(n)] for k, n in data.by_format]),
        (
            "Top findings",
            ["rule", "title", "files"],
            [[k, title, str(n)] for k, n, title in data.top_rules],
        ),
        (
            "Flagged files",
            ["verdict", "score", "rules", "copies", "paths", "first reason"],
            [
                [
                    g["verdict"],
                    fmt_score(g["score"]),
                    g["rules"],
                    str(len(g["paths"])),
                    " ".join(g["paths"]),
                    g["reason"],
                ]
                for g in data.flagged
            ],
        ),
        (
            "Slowest files",
            ["seconds", "MB", "path"],
            [
                [f"{_num(r['seconds']):.3f}", f"{max(r['size'] or 0, 0) / 1e6:.1f}", r["path"]]
                for r in data.slowest
            ],
        ),
        ("Errors", ["path", "error"], [[r["path"], r["error"] or ""] for r in data.errors]),
    ]


def render_text(data: ReportData) -> str:
    lines = [f"fastscan report: {data.path} ({data.rows} files)"]
    if data.banner:
        lines.append(f"!! {data.banner}")
    lines += [f"  {k} = {v}" for k, v in sorted(data.metadata.items())]
    lines.append(f"  flagged: {data.flagged_files} files, {data.flagged_groups} distinct contents")
    for title, header, rows in sections(data):
        lines += ["", title]
        if not rows:
            lines.append("  (none)")
            continue
        widths = [
            min(60, max(len(header[c]), *(len(r[c]) for r in rows))) for c in range(len(header))
        ]
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            cells = [clip(cell, w) for cell, w in zip(row, widths, strict=True)]
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines) + "\n"


def compare_outputs(a_path: str, b_path: str) -> list[str]:
    """Differences between two verdict Parquets, ignoring columns that vary between runs."""
    a = comparable(conform_table(read_parquet(a_path)))
    b = comparable(conform_table(read_parquet(b_path)))
    diffs = []
    if a.num_rows != b.num_rows:
        diffs.append(f"row count {a.num_rows} != {b.num_rows}")
    else:
        for name in a.column_names:
            if not a.column(name).equals(b.column(name)):
                diffs.append(f"column {name} differs")
    return diffs
