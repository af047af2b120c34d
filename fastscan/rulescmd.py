"""`fastscan rules`: the finding-rule catalogue (text, markdown for docs/rules.md, JSON) and
`--lookup` of what a global name resolves to under the allowlist/denylist, and why."""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

from .findings import REGISTRY, FindingRule

_ORIGIN = {"safe": "allowlist", "dangerous": "denylist", "unknown": "reviewed, neither"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="catalogue format (markdown is docs/rules.md)",
    )
    p.add_argument(
        "--lookup",
        action="append",
        default=[],
        metavar="NAME",
        help="a global as `module.name` or `module:qualname`: what it resolves to and why "
        "(repeatable)",
    )
    p.add_argument("--config", help="TOML with extra allow/deny entries, as for scan")


def run_rules(args: argparse.Namespace) -> int:
    if args.lookup:
        from .rules import RuleSet

        rules = RuleSet.load(args.config)
        for name in args.lookup:
            info = lookup(rules, name)
            print(json.dumps(info) if args.format == "json" else render_lookup(info))
        return 0
    if args.format == "markdown":
        print(markdown(), end="")
    elif args.format == "json":
        print(json.dumps([_as_dict(r) for r in REGISTRY.values()], indent=1))
    else:
        print(f"{'ID':<6} {'SEVERITY':<10} {'THREATS':<16} TITLE")
        for r in REGISTRY.values():
            print(f"{r.rule_id:<6} {r.severity.name.lower():<10} {r.threats or '-':<16} {r.title}")
    return 0


def _as_dict(r: FindingRule) -> dict[str, str]:
    return {
        "id": r.rule_id,
        "severity": r.severity.name.lower(),
        "title": r.title,
        "threats": r.threats,
        "explanation": r.explanation,
        "remediation": r.fix,
    }


def split_name(text: str) -> tuple[str, str]:
    """`module:qualname` exactly; `a.b.c` as module `a.b`, name `c` (pickle's GLOBAL split)."""
    if ":" in text:
        module, _, name = text.partition(":")
    else:
        module, _, name = text.rpartition(".")
    if not module or not name:
        raise ValueError(f"--lookup needs module.name or module:qualname, not {text!r}")
    return module, name


def lookup(rules: Any, text: str) -> dict[str, Any]:
    module, name = split_name(text)
    hit = rules.classify(module, name)
    if hit.entry_id:
        origin = _ORIGIN.get(hit.verdict_class, hit.verdict_class)
        source = hit.entry_id.split(":", 1)[0]
    else:
        origin, source = "unlisted", ""
    out: dict[str, Any] = {
        "name": f"{module}.{name}",
        "resolved": hit.resolved or f"{module}.{name}",
        "class": hit.verdict_class,
        "origin": origin,
        "entry": hit.entry_id,
        "source": source,
        "category": hit.category,
        "reason": hit.reason,
        "ref": hit.ref,
        "dotted_through_allowlisted": hit.through_allowlisted,
    }
    index = _index_answer(module, name)
    if index is not None:
        out["index"] = index
    return out


def _index_answer(module: str, name: str) -> Any:
    """What an installed-package index says, when this build has one (`fastscan.index`)."""
    try:
        index_module = importlib.import_module("fastscan.index")
    except ImportError:
        return None  # this build has no index: allowlist and denylist decide alone
    fn = getattr(index_module, "lookup", None)
    if not callable(fn):
        return None
    try:
        answer = fn(module, name)
    except Exception as exc:  # the index is advisory here; a broken one must not hide the rest
        return f"index lookup failed: {type(exc).__name__}: {exc}"
    return answer if isinstance(answer, (str, int, float, bool, list, dict)) else str(answer)


def render_lookup(info: dict[str, Any]) -> str:
    lines = [f"{info['name']}", f"  resolves to  {info['resolved']}"]
    verdict = {"safe": "safe", "dangerous": "dangerous (sink)", "unknown": "not safe, not a sink"}
    lines.append(f"  class        {verdict.get(info['class'], info['class'])}")
    entry = f" ({info['entry']})" if info["entry"] else ""
    lines.append(f"  decided by   {info['origin']}{entry}")
    if info["origin"] == "unlisted":
        lines.append(
            "  why          no reviewed entry matches: a scan reports FS103 (suspicious unless"
            " the classifier judges the file benign: FS903)"
        )
    else:
        lines.append(f"  why          {info['reason'] or '-'}")
    if info["category"]:
        lines.append(f"  category     {info['category']}")
    if info["ref"]:
        lines.append(f"  reference    {info['ref']}")
    if info["dotted_through_allowlisted"]:
        lines.append("  note         attribute path through an allowlisted module (FS105)")
    if "index" in info:
        lines.append(f"  index        {info['index']}")
    return "\n".join(lines)


def markdown() -> str:
    """docs/rules.md: one section per rule; SARIF helpUri anchors point at the headings."""
    lines = [
        "# fastscan finding rules",
        "",
        "Generated from `fastscan/findings.py` by `fastscan rules --format markdown`;"
        " do not edit by hand.",
        "Severities: `malicious` and `suspicious` flag a file; `low` and `info` are recorded only.",
        "Threat ids refer to the project's threat catalogue (docs/threats.md).",
        "",
    ]
    for r in REGISTRY.values():
        lines += [
            f"## {r.rule_id}",
            "",
            f"**{r.title}** · severity `{r.severity.name.lower()}`"
            + (f" · threats {r.threats}" if r.threats else ""),
            "",
            r.explanation,
            "",
            f"Remediation: {r.fix}",
            "",
        ]
    return "\n".join(lines)
