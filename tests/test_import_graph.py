"""No import circles inside `fastscan`: every import statement (module level, in functions and
under TYPE_CHECKING alike) is an edge, and the graph must be acyclic. A lazy import hides a
circle from Python, not from this test."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fastscan"


def _modules() -> dict[str, Path | None]:
    """Module name -> source (None for compiled extensions: they import nothing of ours)."""
    out: dict[str, Path | None] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in PACKAGE.rglob("*.so"):
        parts = path.relative_to(PACKAGE.parent).parts
        out[".".join((*parts[:-1], path.name.split(".")[0]))] = None
    return out


def _known(name: str, modules: dict[str, Path | None]) -> str | None:
    """The longest module of ours that `name` (a module or module.attribute) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict) -> set:
    """What one import statement loads: the named modules and, as Python does, every package
    above them that is not also above the importer (a submodule's own packages are already
    being loaded when it runs)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            parts = package.split(".")
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        subs = [f"{base}.{alias.name}" for alias in node.names]
        # `from pkg import sub` loads pkg.sub; `from pkg import name` loads pkg itself
        names = [s for s in subs if s in modules] + (
            [base] if any(s not in modules for s in subs) else []
        )
    out: set[str] = set()
    for name in names:
        target = _known(name, modules)
        if target is None or target == module:
            continue
        out.add(target)
        parts = target.split(".")
        for i in range(1, len(parts)):
            package = ".".join(parts[:i])
            if package in modules and not (module == package or module.startswith(package + ".")):
                out.add(package)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module] |= _targets(module, path, node, modules)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle as [a, b, ..., a], or [] when the graph is acyclic (iterative DFS)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return []


def test_the_graph_is_built_from_every_kind_of_import() -> None:
    graph = import_graph()
    assert "fastscan.findings" in graph and "fastscan._tokenizer" in graph
    # module level, relative
    assert "fastscan.findings" in graph["fastscan.verdict"]
    # inside a function (Scanner.prepare reads URLs through sources.remote lazily)
    assert "fastscan.sources.remote" in graph["fastscan.scan"]
    # a submodule import also loads the package above it
    assert "fastscan.rules" in graph["fastscan.scan"]


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    cycle = find_cycle(graph)
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_fastscan_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_findings_is_a_leaf() -> None:
    """Every stage names rules through `findings`; it must import nothing of the package."""
    assert import_graph()["fastscan.findings"] == set()


def test_discovery_does_not_import_the_output_stage() -> None:
    graph = import_graph()
    discovery = [m for m in graph if m == "fastscan.sources" or m.startswith("fastscan.sources.")]
    assert {"fastscan.sources.ref", "fastscan.sources.remote"} <= set(discovery)
    for module in discovery:
        assert not graph[module] & {"fastscan.sinks", "fastscan.sarif", "fastscan.report"}
