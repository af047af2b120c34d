"""The issue's measurement: with the denylist withheld, does the index alone put THREATS.md
section F's callables into the right dangerous class?

The callables are `fastscan.train.matrix.F_CALLABLES` (one home for section F's list); the
expected class is the category of the rule base's denylist entry for the name. The index is
asked only by name; no rule is consulted for its answer.

    PYTHONPATH=. python -m fastscan.index.evaluate [--index FILE] [--markdown]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .store import Index, Symbol

# The order a triager reads a name's categories in: the most direct harm first.
PRIORITY = (
    "exec_sink",
    "process",
    "nested_loader",
    "import_resolver",
    "network",
    "filesystem_write",
    "callback_dispatch",
    "introspection",
    "scanner_tamper",
)


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    expected: str  # rule base category (dangerous entries only)
    found: tuple[str, ...]  # categories the index reaches, PRIORITY order
    path: tuple[str, ...]  # the path for the expected category (or the first found)
    origin: str
    note: str  # why it is a miss

    @property
    def hit(self) -> bool:
        return self.expected in self.found


def categories(sym: Symbol | None) -> tuple[str, ...]:
    if sym is None:
        return ()
    cats = {r.category for r in sym.reaches}
    return tuple(c for c in PRIORITY if c in cats)


def _note(index: Index, module: str, sym: Symbol | None) -> str:
    if sym is None:
        if not index.has_module(module):
            return f"module {module} not indexed"
        return "name not defined statically in its module"
    if not sym.reaches:
        return f"{sym.kind} {sym.origin}: reaches no sink primitive"
    return f"reaches {', '.join(categories(sym))} only"


def f_rows(index: Index) -> list[Row]:
    from fastscan.rules import DANGEROUS, classify
    from fastscan.train.matrix import F_CALLABLES

    rows = []
    for module, name, _family, _kind in F_CALLABLES:
        expected = classify(module, name)
        if expected.verdict_class != DANGEROUS:
            continue  # reviewed as safe or code construction: not a dangerous-class target
        sym = index.lookup(module, name)
        found = categories(sym)
        path: tuple[str, ...] = ()
        if sym is not None:
            pick = [r for r in sym.reaches if r.category == expected.category] or list(sym.reaches)
            if pick:
                path = min(pick, key=lambda r: (len(r.path), r.hook, r.path)).path
        hit = expected.category in found
        rows.append(
            Row(
                name=f"{module}.{name}",
                expected=expected.category,
                found=found,
                path=path,
                origin=sym.origin if sym else "",
                note="" if hit else _note(index, module, sym),
            )
        )
    return rows


def render(rows: list[Row], *, markdown: bool = False, max_path: int = 5) -> list[str]:
    hits = sum(r.hit for r in rows)
    out = []
    if markdown:
        out += ["| name | expected | index | path / why missed |", "|---|---|---|---|"]
    for r in rows:
        path = r.path if len(r.path) <= max_path else (*r.path[: max_path - 1], "…", r.path[-1])
        text = " → ".join(path) if r.hit else r.note
        found = ", ".join(r.found) or "—"
        mark = "" if r.hit else "**miss** "
        if markdown:
            out.append(f"| `{r.name}` | {r.expected} | {mark}{found} | {text} |")
        else:
            out.append(
                f"{'ok  ' if r.hit else 'MISS'} {r.name:60} {r.expected:17} {found:40} {text}"
            )
    out.append(f"{hits}/{len(rows)} = {100 * hits / max(len(rows), 1):.1f}% in the expected class")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", help="index file (default: the shipped one)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    from . import load_index, shipped_index

    index = load_index(args.index) if args.index else shipped_index()
    for line in render(f_rows(index), markdown=args.markdown):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
