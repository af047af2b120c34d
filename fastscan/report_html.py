"""The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched).

Charts are horizontal bar charts drawn as SVG at render time, so the page looks the same offline,
in a mail attachment or in a CI artifact viewer. Every value from the data is escaped.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from .report import ReportData, fmt_score, sections

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:80em}"
    "table{border-collapse:collapse;margin-bottom:2em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:90%;"
    "vertical-align:top}th{background:#eee}"
    ".banner{background:#fff3cd;border:2px solid #d39e00;padding:.8em;font-weight:bold}"
    ".charts{display:flex;flex-wrap:wrap;gap:2em}.charts figure{margin:0}"
    "figcaption{font-weight:bold;margin-bottom:.3em}"
    ".malicious{color:#b00020;font-weight:bold}.suspicious{color:#a15c00;font-weight:bold}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}"
    "dd{margin:0;font-family:monospace}ul.paths{margin:0;padding-left:1.2em}"
)
_COLOURS = {
    "clean": "#2e7d32",
    "suspicious": "#e69500",
    "malicious": "#b00020",
    "complete": "#2e7d32",
    "partial": "#e69500",
    "error": "#b00020",
    "encrypted": "#6a1b9a",
    "unsupported": "#78909c",
}
_PATHS_SHOWN = 10  # per flagged group; the rest are counted


def bar_chart(title: str, items: list[tuple[str, int]], width: int = 420) -> str:
    """A labelled horizontal bar chart as inline SVG (an <svg> with a <title> for readers)."""
    e = html.escape
    bar_h, gap, label_w, count_w = 18, 6, 150, 60
    items = items or [("(none)", 0)]
    height = len(items) * (bar_h + gap) + gap
    scale = (width - label_w - count_w) / max(1, *(n for _k, n in items))
    parts = [
        f"<figure><figcaption>{e(title)}</figcaption><svg "
        f'width="{width}" height="{height}" role="img" aria-label="{e(title)}">'
        f"<title>{e(title)}</title>"
    ]
    for row, (label, n) in enumerate(items):
        y = gap + row * (bar_h + gap)
        w = max(1, round(n * scale)) if n else 0
        colour = _COLOURS.get(label, "#1565c0")
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="12">{e(short)}'
            f"</text>"
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{colour}">'
            f"<title>{e(label)}: {n}</title></rect>"
            f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{n}</text>'
        )
    parts.append("</svg></figure>")
    return "".join(parts)


def render_html(data: ReportData, *, now: datetime | None = None) -> str:
    e = html.escape
    meta = data.metadata
    rendered = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>fastscan report: {e(data.root or data.path)}</title><style>{_CSS}</style>",
        "</head><body>",
        "<h1>fastscan report</h1>",
    ]
    if data.banner:
        parts.append(f'<p class="banner" role="alert">{e(data.banner)}</p>')
    facts = [
        ("scan root", data.root or "(not recorded)"),
        ("scanned", meta.get("fastscan.started", "(not recorded)")),
        ("report rendered", rendered),
        ("files", str(data.rows)),
        (
            "flagged",
            f"{data.flagged_files} files, {data.flagged_groups} distinct contents",
        ),
        ("errors", str(data.errors_total)),
        ("fastscan", meta.get("fastscan.fastscan_version") or meta.get("fastscan.version", "?")),
        ("model", f"{meta.get('fastscan.model', '?')} {meta.get('fastscan.model_hash', '')[:12]}"),
        ("rules hash", meta.get("fastscan.rules_hash", "?")[:16]),
        ("opcode table", meta.get("fastscan.opcode_table", "?")[:16]),
        ("verdicts file", data.path),
    ]
    parts.append("<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts) + "</dl>")
    parts.append('<div class="charts">')
    parts.append(bar_chart("Verdicts", data.by_verdict))
    parts.append(bar_chart("Status", data.by_status))
    parts.append(bar_chart("Formats", [(str(k), n) for k, n in data.by_format][:12]))
    parts.append(bar_chart("Top rules (files)", [(k, n) for k, n, _t in data.top_rules][:12]))
    parts.append("</div>")
    parts += _flagged(data)
    for title, header, rows in sections(data):
        if title in ("Verdicts", "Status", "Formats", "Flagged files"):
            continue  # charted above, or the grouped table
        parts.append(f"<h2>{e(title)}</h2>")
        if not rows:
            parts.append("<p>(none)</p>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _flagged(data: ReportData) -> list[str]:
    e = html.escape
    shown = len(data.flagged)
    out = [
        "<h2>Flagged files</h2>",
        f"<p>{data.flagged_files} flagged files with {data.flagged_groups} distinct contents"
        + (f"; the first {shown} shown" if shown < data.flagged_groups else "")
        + ". Copies (same sha256, or same size and findings) are grouped.</p>",
    ]
    if not data.flagged:
        return [*out, "<p>(none)</p>"]
    out.append(
        "<table><tr><th>verdict</th><th>score</th><th>rules</th><th>copies</th>"
        "<th>paths</th><th>first reason</th></tr>"
    )
    for g in data.flagged:
        paths = g["paths"]
        items = "".join(f"<li>{e(p)}</li>" for p in paths[:_PATHS_SHOWN])
        if len(paths) > _PATHS_SHOWN:
            items += f"<li>… and {len(paths) - _PATHS_SHOWN} more</li>"
        sha = f"<br><small>sha256 {e(g['sha256'])}</small>" if g["sha256"] else ""
        out.append(
            f'<tr><td class="{e(g["verdict"])}">{e(g["verdict"])}</td>'
            f"<td>{e(fmt_score(g['score']))}</td><td>{e(g['rules'])}</td>"
            f'<td>{len(paths)}</td><td><ul class="paths">{items}</ul>{sha}</td>'
            f"<td>{e(g['reason'])}</td></tr>"
        )
    out.append("</table>")
    return out
