"""`fastscan report`: a verdicts Parquet as text, JSON or CSV, and optionally an HTML page.

The summary itself is collected in report.py; the page is drawn by report_html.py.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from typing import Any

from .exitcodes import exit_code
from .report import collect_report, render_csv, render_text
from .report_html import render_html
from .verdict import SUSPICIOUS


def render_report(
    parquet_path: str, *, html_path: str | None = None, top: int = 20, fmt: str = "text"
) -> str:
    """A report over a verdicts Parquet: text or JSON summary, or CSV of every row; with
    `html_path`, also a standalone HTML page (report_html.py)."""
    return report(parquet_path, html_path=html_path, top=top, fmt=fmt)[0]


def report(
    parquet_path: str,
    *,
    html_path: str | None = None,
    top: int = 20,
    fmt: str = "text",
    fail_on: str = SUSPICIOUS,
    strict_errors: bool = False,
) -> tuple[str, int]:
    """(report, exit code of the rows): the `report` command."""
    data = collect_report(parquet_path, top)
    if html_path:
        tmp = f"{html_path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(render_html(data))
        os.replace(tmp, html_path)
    incomplete = "incomplete" if data.metadata.get("fastscan.complete") == "false" else ""
    code = exit_code(data.outcomes, fail_on, strict_errors=strict_errors, stopped_by=incomplete)
    if fmt == "json":
        return json.dumps(_json_safe(asdict(data)), indent=1) + "\n", code
    return (render_csv(parquet_path) if fmt == "csv" else render_text(data)), code


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        # (verdict, status) keys of `outcomes` read as "verdict/status"
        return {"/".join(k) if isinstance(k, tuple) else k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
