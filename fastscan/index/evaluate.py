"""The issue's measurement: with the denylist withheld, does the index alone put docs/threats.md
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


# Why a name misses, reviewed by reading its source (the generic note says only what is absent).
# ABSENT names cannot be loaded on the indexed Python/torch at all: reported both with and
# without them in the denominator.
ABSENT = {
    "torch._inductor.codecache.compile_file": "gone from torch 2.13 (the pinned version)",
    "torch.utils.bottleneck.__main__.run_cprofile": "torch.utils.bottleneck gone in torch 2.13",
    "torch.utils.bottleneck.__main__.run_autograd_prof": "torch.utils.bottleneck gone in 2.13",
}
_WILDCARD = "; the rule base's module-wide `{}.*` entry carries one category for every name"
WHY = {
    **ABSENT,
    # indexed from the other supported Pythons' stdlib (`ship.py --other-stdlib`)
    "_aix_support._read_cmd_output": "3.12+ only: an index built without --other-stdlib lacks it",
    "_pyrepl.pager.pipe_pager": "_pyrepl is 3.13+: an index built without --other-stdlib lacks it",
    "lib2to3.pgen2.grammar.Grammar.loads": "the index says nested_loader (it calls"
    " pickle.loads)" + _WILDCARD.format("lib2to3") + " (exec_sink, for make_label's eval)",
    "distutils.file_util.write_file": "the index says filesystem_write (`open(name, 'w')`)"
    + _WILDCARD.format("distutils")
    + " (process, for spawn)",
    "os.remove": "the index says filesystem_write (posix.remove)"
    + _WILDCARD.format("os")
    + " (process, for system/exec*/spawn*)",
    "asyncio.Future.add_done_callback": "the rule base's `asyncio.*` entry is process (subprocess"
    " transports); the callback is stored in `self._callbacks` and handed to"
    " `self._loop.call_soon`, a loop whose type is not known, so no call of it is seen",
    "yaml.load": "with the Loader class bound, `loader.get_single_data()` dispatches through"
    " `self.yaml_constructors[node.tag]`, a table filled by module-level `add_constructor`"
    " calls; the index sees `add_constructor` as a callback store, not which functions the"
    " table holds",
    "yaml.unsafe_load": "same table: UnsafeConstructor reaches `__import__` only through it",
    "aiohttp.request": "returns a context manager around `session._request(...)`; the connection"
    " is made by a connector held in `self._connector` and the event loop, whose types are not"
    " evident",
    "concurrent.futures.ProcessPoolExecutor.submit": "the work item is stored in"
    " `self._pending_work_items`, read by another object (`_ExecutorManagerThread`) and called"
    " in a module function of the worker process (`_process_worker`): no method of the"
    " executor's class family calls it",
    "re.sub": "the callable replacement runs inside the C pattern object's sub(), and the"
    " pattern object is the return value of `_compile()` (return types are not inferred)",
}


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
                note="" if hit else WHY.get(f"{module}.{name}", _note(index, module, sym)),
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
    present = [r for r in rows if r.name not in ABSENT]
    hits = sum(r.hit for r in present)
    out.append(
        f"{hits}/{len(present)} = {100 * hits / max(len(present), 1):.1f}% without the"
        f" {len(rows) - len(present)} names absent from the indexed Python/torch"
    )
    return out


def class_stats(index: Index, packages: set[str] | None = None) -> dict[str, float]:
    """How many top-level public classes reach any sink, and at what path length; `load_time`
    leaves out the weaker "method" reach (a connection a public method opens)."""
    total = reaching = short = load = load_short = 0
    for module in index.modules():
        pkg = index.package_of(module)
        if packages is not None and pkg not in packages:
            continue
        sec = index._section(module) or {}
        for name, (kind, origin_mod, _q) in sec.get("n", {}).items():
            if kind != "class" or origin_mod or "." in name or name.startswith("_"):
                continue  # classes defined here, once each
            total += 1
            sym = index.lookup(module, name)
            if sym is not None and sym.reaches:
                reaching += 1
                short += min(len(r.path) for r in sym.reaches) <= _SHORT
                hooked = [len(r.path) for r in sym.reaches if r.hook != "method"]
                load += bool(hooked)
                load_short += bool(hooked) and min(hooked) <= _SHORT
    return {
        "classes": total,
        "reaching": reaching,
        "reaching_within_short": short,
        "load_time": load,
        "load_time_within_short": load_short,
    }


_SHORT = 4  # path elements: hook, up to two calls, the primitive


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", help="index file (default: the shipped one)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--stats", nargs="*", metavar="PACKAGE", help="class reach statistics")
    args = ap.parse_args(argv)
    from . import load_index, shipped_index

    index = load_index(args.index) if args.index else shipped_index()
    if args.stats is not None:
        print(class_stats(index, set(args.stats) or None))
        return 0
    for line in render(f_rows(index), markdown=args.markdown):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
