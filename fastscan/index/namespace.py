"""Whether a module's namespace is closed (every name it has at run time is a statement the
index read) or open (names are made at run time), read from `ast` without importing.

pickle's `find_class` is `getattr(sys.modules[module], name)`: a name the index does not list is
evidence of a typo or an attribute path only when nothing can have put it there. Things that
can, and so make a namespace open:

- writes through the module's own `globals()` (`globals()[k] = v`, `globals().update(...)`,
  `globals()` handed to a call such as `exec(code, globals())`), `vars()`/`locals()` written at
  module level, `sys.modules[__name__]`, or a bare `exec(...)` at module level;
- another module assigning into it: `mod.name = v`, `setattr(mod, ...)`,
  `mod.__dict__.update(...)` (`mpmath/__init__.py` sets `ctx_mp_python.mpf`);
- (at lookup, `store.Index.open_ended`) a PEP 562 `__getattr__`, or a star import from a module
  the index cannot read (a C extension, an unindexed package).

Compiled modules are opaque and answer every name as a builtin, so they never miss a name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from typing import Any

from .flows import dotted

_NAMESPACES = ("globals", "vars", "locals")
_WRITERS = frozenset({"update", "setdefault", "__setitem__", "pop", "clear"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_MAX_REASONS = 4  # a module's list names its first few reasons only


def _reason(
    node: ast.Call | ast.Name, parent: ast.AST | None, module_level: bool, name: str, spelled: str
) -> str | None:
    """Why a `globals()`/`vars()`/`locals()` call (`name`), or a module-level name bound to
    the module's dict (`name` "globals"), writes the namespace (None: it reads)."""
    if name != "globals" and not module_level:
        return None  # a function's vars()/locals() are its own
    if isinstance(parent, ast.Subscript) and not isinstance(parent.ctx, ast.Load):
        return f"{spelled}[...] assigned"
    if isinstance(parent, ast.Attribute) and parent.attr in _WRITERS:
        return f"{spelled}.{parent.attr}"
    if isinstance(parent, ast.Call) and node is not parent.func:
        callee = dotted(parent.func) or "a call"
        if callee.rsplit(".", 1)[-1] in ("get", "items", "keys", "values", "copy", "dict"):
            return None
        return f"{spelled} handed to {callee}"
    return None


def _namespace_aliases(tree: ast.Module) -> set[str]:
    """Module-level names bound to the module's own namespace dict: `_globals = globals()`,
    how protobuf's generated `*_pb2` modules hand it to the builder that fills them."""
    out: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, _SCOPES):
            continue
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id in ("globals", "vars")
            and not node.value.args
        ):
            out.update(t.id for t in node.targets if isinstance(t, ast.Name))
        stack.extend(ast.iter_child_nodes(node))
    return out


def dynamic_reasons(tree: ast.Module) -> list[str]:
    """Why the module's own code may create names no statement shows (empty: none)."""
    found: list[str] = []
    aliases = _namespace_aliases(tree)
    stack: list[tuple[ast.AST, ast.AST | None, bool]] = [(tree, None, True)]
    while stack and len(found) < _MAX_REASONS:
        node, parent, module_level = stack.pop()
        why: str | None = None
        if isinstance(node, ast.Name) and node.id in aliases and isinstance(node.ctx, ast.Load):
            # the module's dict under another name: written wherever it is used as globals()
            why = _reason(node, parent, module_level, "globals", f"globals() as {node.id}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in _NAMESPACES and not node.args:
                why = _reason(node, parent, module_level, node.func.id, f"{node.func.id}()")
            elif node.func.id == "exec" and len(node.args) == 1 and module_level:
                why = "exec() into the module"
        elif (
            isinstance(node, ast.Subscript)
            and dotted(node.value) == "sys.modules"
            and dotted(node.slice) == "__name__"
        ):
            why = "sys.modules[__name__]"
        if why and why not in found:
            found.append(why)
        body_level = module_level and not isinstance(node, _SCOPES)
        for child in ast.iter_child_nodes(node):
            stack.append((child, node, body_level))
    return sorted(found)


def attribute_store(node: ast.stmt) -> Iterator[str]:
    """The dotted objects a module-level statement assigns attributes on (`a.b.x = v` -> "a.b",
    `setattr(a, ...)` / `a.__dict__.update(...)` / `a.__dict__[k] = v` -> "a"); compound
    statements (if/try/with/for) are looked into, definitions are not."""
    if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
        for part in ("body", "orelse", "finalbody"):
            for sub in getattr(node, part, []):
                yield from attribute_store(sub)
        for handler in getattr(node, "handlers", []):
            for sub in handler.body:
                yield from attribute_store(sub)
        return
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        call = node.value
        func = dotted(call.func)
        if func == "setattr" and call.args:
            targets = [ast.Attribute(value=call.args[0], attr="?", ctx=ast.Store())]
        elif func and func.endswith(".__dict__.update"):
            yield func[: -len(".__dict__.update")]
    for target in targets:
        t = target
        if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Attribute):
            t = t.value if t.value.attr == "__dict__" else t  # `a.__dict__[k] = v`
        if isinstance(t, ast.Attribute):
            base = dotted(t.value)
            if base and "(" not in base and base.split(".")[0] not in ("self", "cls"):
                yield base


def _modules_named(
    mods: Mapping[str, Any], module: str, parts: tuple[str, ...], depth: int
) -> set[str]:
    """Indexed modules `module`'s dotted name `parts` may be, through every import binding it
    has (the losing branches of an `if`/`try` included)."""
    if not parts:
        return {module} if module in mods else set()
    m = mods.get(module)
    if m is None or m.opaque or depth > 8:
        return set()
    head, rest = parts[0], parts[1:]
    bindings = [b for b in (m.bindings.get(head), *m.alternatives.get(head, ())) if b]
    if not bindings and f"{module}.{head}" in mods:
        return _modules_named(mods, f"{module}.{head}", rest, depth + 1)
    out: set[str] = set()
    for b in bindings:
        if b[0] == "import":  # `import a.b` binds "a" to a; `import a.b as c`, c to a.b
            out |= _modules_named(mods, b[1], rest, depth + 1)
        elif b[0] == "from":
            sub = f"{b[1]}.{b[2]}"
            if sub in mods and sub != module:
                out |= _modules_named(mods, sub, rest, depth + 1)
            else:
                out |= _modules_named(mods, b[1], (b[2], *rest), depth + 1)
    return out


def assigned_from_outside(mods: Mapping[str, Any]) -> dict[str, list[str]]:
    """Module -> "assigned from <module>" reasons: other modules that set its attributes
    (`mods`: name -> symbols.ModuleInfo, as the resolver holds them)."""
    out: dict[str, set[str]] = {}
    for name in sorted(mods):
        m = mods[name]
        for base in m.attr_stores:
            for target in _modules_named(mods, name, tuple(base.split(".")), 0):
                if target != name:
                    out.setdefault(target, set()).add(f"assigned from {name}")
    return {k: sorted(v)[:_MAX_REASONS] for k, v in out.items()}


__all__ = ["assigned_from_outside", "attribute_store", "dynamic_reasons"]
