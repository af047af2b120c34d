"""Gadgets an ecosystem index finds that the reviewed denylist lacks (issue #14 item 4).

Run by hand:  python benchmarks/index_gaps.py INDEX [--top 40] [--categories process,network]

Counts every name defined in the index (at its origin, so re-exports count once) whose
load-time code reaches a sink by some hook, and those the shipped rules (without the index) do
not already call dangerous; lists the public ones, shortest path first per name. Nothing is
imported: the index holds names and paths only.
"""

from __future__ import annotations

import argparse
import collections
import sys

from fastscan.index import load_index
from fastscan.rules import RuleSet
from fastscan.rules.knowledge import load_shipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--categories", default="", help="comma list; default every category")
    args = ap.parse_args(argv)
    wanted = set(filter(None, args.categories.split(",")))
    ix = load_index(args.index)
    rules = RuleSet(load_shipped())  # the denylist alone, no index
    reached = 0
    lacking: list[tuple[str, str, str, str, tuple[str, ...]]] = []
    by_package: collections.Counter[str] = collections.Counter()
    by_hook: collections.Counter[tuple[str, str]] = collections.Counter()
    for module in ix.modules():
        section = ix._section(module)  # no public listing of a module's names yet
        for qual, (_kind, origin_module, _q) in (section or {}).get("n", {}).items():
            if (origin_module or module) != module:
                continue
            symbol = ix.lookup(module, qual)
            reaches = [
                r for r in (symbol.reaches if symbol else ()) if not wanted or r.category in wanted
            ]
            if symbol is None or not reaches:
                continue
            reached += 1
            if rules.classify(module, qual).is_dangerous:
                continue
            best = min(reaches, key=lambda r: len(r.path))
            lacking.append(
                (f"{module}.{qual}", symbol.package, best.hook, best.category, best.path)
            )
            by_package[symbol.package] += 1
            for r in reaches:
                by_hook[(r.hook, r.category)] += 1
    print(f"names whose load-time code reaches a sink: {reached}")
    print(f"... not dangerous by the shipped denylist: {len(lacking)}")
    print("by package:", ", ".join(f"{p} {n}" for p, n in by_package.most_common()))
    print("by hook/category:", ", ".join(f"{h}/{c} {n}" for (h, c), n in by_hook.most_common(12)))
    public = [
        x
        for x in lacking
        if not any(p.startswith("_") for p in x[0].split(".")) and "test" not in x[0]
    ]
    print(f"public names among them: {len(public)}")
    for name, package, hook, category, path in public[: args.top]:
        print(f"  {name} ({package}) {hook} -> [{category}] {' -> '.join(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
