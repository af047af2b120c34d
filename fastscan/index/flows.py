"""Stored-callable facts of one function, read from its `ast` (the build combines them per class).

A callback dispatcher is a class that keeps a callable it was handed and calls it later
(`sched.scheduler`, `contextlib.ExitStack`, `weakref.finalize`, executors' work items). Its
shape, whatever the names:

- a method **stores** a parameter-derived value into instance state: `self.a = v`,
  `self.a[k] = v`, `self.a.append(v)` (any method of `self.a` handed `v`), a call handed both
  `self.a` and `v` (`heappush(self._queue, event)`); `v` is derived from a parameter when it
  mentions one or a local derived from one (`w = _WorkItem(f, fn)`, `info.func = func`);
- a method **calls** what is stored: `self.a(...)`, `self.a[k](...)`, or a local read from
  `self.a` (`for cb in self.a: cb()`, `action = queue[0]` after `queue = self._queue`); an
  item method (`__getitem__`, `__setitem__`, `get`, ...) that subscripts what is stored with
  its own key argument forwards the item protocol to it (`collections.ChainMap`), key "[]a",
  which only a store of the value itself (`self.a = v`, not `self.a[k] = v`) matches;
  `info.func(...)` on such a local counts only for a field a store set (`info.func = func`), so
  `self.model.predict()` on a stored model is not dispatch.

Keys are "attr" or "attr.field"; `build.Graph.dispatchers` intersects the two sets over a
class's family. Flow-insensitive: any mention taints, two passes settle the order of assignments.
"""

from __future__ import annotations

import ast
from typing import Any

_RECEIVERS = ("self", "cls")
# Item-protocol methods: one that subscripts stored state with its own key argument forwards the
# item protocol to that object, so the object's `__getitem__`/`__setitem__` runs (ChainMap's
# `self.maps[0][key] = value` under SETITEMS). Recorded as the key "[]attr".
ITEM_METHODS = frozenset(
    {"__getitem__", "__setitem__", "__delitem__", "__missing__", "__contains__", "get", "pop"}
)
SUBSCRIPTED = "[]"


def mentions(expr: ast.AST, names: set[str] | dict[str, Any]) -> bool:
    return any(n.id in names for n in _names_in(expr))


def _names_in(expr: ast.AST) -> list[ast.Name]:
    """Names an expression reads, not looking into lambdas (their body runs later, if ever)."""
    out: list[ast.Name] = []
    todo = [expr]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name):
            out.append(node)
        elif not isinstance(node, ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return out


def _names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Starred):
        return _names(target.value)
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for e in target.elts for n in _names(e)]
    return []


def _self_attr(expr: ast.AST) -> str | None:
    """`self.a` (or `self.a[k]`, `self.a.pop()`'s receiver) -> "a"."""
    while isinstance(expr, ast.Subscript):
        expr = expr.value
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Name)
        and expr.value.id in _RECEIVERS
    ):
        return expr.attr
    return None


def _source(expr: ast.AST, read: dict[str, str]) -> str | None:
    """The instance attribute a value is taken out of: `self.a`, `self.a[k]`, `self.a.pop()`,
    `heappop(self.a)`, or the same on a local read from one. An attribute merely mentioned in
    an argument (`Loss(ignore=self.config.x)`) is not a source."""
    while True:
        if isinstance(expr, (ast.Subscript, ast.Starred)):
            expr = expr.value
        elif isinstance(expr, ast.Call):
            func = expr.func
            if isinstance(func, ast.Attribute) and not isinstance(func.value, ast.Name):
                expr = func.value  # a method of the container: `self.a.pop()`
            elif isinstance(func, ast.Attribute) and func.value.id in read:  # type: ignore[attr-defined]
                expr = func.value
            elif expr.args:
                expr = expr.args[0]  # `heappop(q)`, `list(self.a)`
            else:
                return None
        elif isinstance(expr, ast.Attribute):
            return _self_attr(expr)
        elif isinstance(expr, ast.Name):
            return read.get(expr.id)
        else:
            return None


def _pairs(node: ast.AST) -> list[tuple[list[ast.expr], ast.expr]]:
    if isinstance(node, ast.Assign):
        return [(list(node.targets), node.value)]
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return [([node.target], node.value)]
    if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
        return [([node.target], node.iter)]
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return [([node.optional_vars], node.context_expr)]
    return []


def _origins(expr: ast.AST, tainted: dict[str, set[str]]) -> set[str]:
    out: set[str] = set()
    for n in _names_in(expr):
        out |= tainted.get(n.id, set())
    return out


def param_flows(node: ast.AST, params: set[str], info: Any) -> dict[str, set[str]]:
    """Fill `info.stores`/`calls_stored`/`params_called`/`param_slots`; return the parameter-derived
    names, each with the parameters it derives from."""
    tainted: dict[str, set[str]] = {p: {p} for p in params if p not in _RECEIVERS}
    read: dict[str, str] = {}  # local -> instance attribute it was read from
    fields: dict[str, set[str]] = {}  # tainted local -> fields set from a parameter
    stores: dict[str, set[str]] = {}  # key -> parameters stored there
    called: set[str] = set()
    called_params: set[str] = set()
    slots: dict[str, dict[str, set[str]]] = {}  # callee text -> argument slot -> parameters
    subs = list(ast.walk(node))
    keys = set(tainted) if getattr(node, "name", "") in ITEM_METHODS else set()

    def store(attr: str, value: ast.AST, whole: bool = False) -> None:
        origins = _origins(value, tainted)
        stores.setdefault(attr, set()).update(origins)
        if whole:  # `self.a = v`: `a` is the value itself, whose item protocol can be forwarded
            stores.setdefault(SUBSCRIPTED + attr, set()).update(origins)
        for n in ast.walk(value):
            if isinstance(n, ast.Name):
                for f in fields.get(n.id, ()):
                    stores.setdefault(f"{attr}.{f}", set()).update(origins)

    for _ in range(2):
        for sub in subs:
            for targets, value in _pairs(sub):
                hot = _origins(value, tainted)
                src = _source(value, read)
                for target in targets:
                    for name in _names(target):
                        if hot:
                            tainted.setdefault(name, set()).update(hot)
                        if src is not None and name not in tainted:
                            read.setdefault(name, src)
                    if not hot:
                        continue
                    attr = _self_attr(target)
                    if attr is not None:
                        store(attr, value, whole=isinstance(target, ast.Attribute))
                    elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                        tainted.setdefault(target.value.id, set()).update(hot)  # `info.func = f`
                        fields.setdefault(target.value.id, set()).add(target.attr)
            if keys and isinstance(sub, ast.Subscript) and mentions(sub.slice, keys):
                value = sub.value
                src = read.get(value.id) if isinstance(value, ast.Name) else _self_attr(value)
                if src is not None:
                    called.add(SUBSCRIPTED + src)  # `self.a[key]`, `for m in self.a: m[key]`
            if not isinstance(sub, ast.Call):
                continue
            args = [*sub.args, *(kw.value for kw in sub.keywords)]
            hot_args = [a for a in args if mentions(a, tainted)]
            text = dotted(sub.func)
            if hot_args and text:
                into = slots.setdefault(text, {})
                named = [(str(i), a) for i, a in enumerate(sub.args)]
                named += [(kw.arg, kw.value) for kw in sub.keywords if kw.arg]
                for slot, a in named:
                    if not isinstance(a, ast.Starred) and mentions(a, tainted):
                        into.setdefault(slot, set()).update(_origins(a, tainted))
            if hot_args:
                func = sub.func
                attr = _self_attr(func.value) if isinstance(func, ast.Attribute) else None
                for a in args:  # `self.a.append(v)`, `heappush(self.a, v)`
                    attr = attr or _self_attr(a)
                if attr is not None:
                    for a in hot_args:
                        store(attr, a)
            func = sub.func
            if isinstance(func, ast.Name) and func.id in params and func.id not in _RECEIVERS:
                called_params.add(func.id)
            attr = _self_attr(func)
            if attr is not None:
                called.add(attr)
            elif isinstance(func, ast.Name) and func.id in read:
                called.add(read[func.id])
            elif isinstance(func, ast.Subscript) and isinstance(func.value, ast.Name):
                if func.value.id in read:
                    called.add(read[func.value.id])
            elif (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in read
            ):
                called.add(f"{read[func.value.id]}.{func.attr}")
    info.stores = {k: sorted(v) for k, v in sorted(stores.items())}
    info.calls_stored = sorted(called)
    info.params_called = sorted(called_params)
    info.param_slots = {t: {k: sorted(v) for k, v in sorted(d.items())} for t, d in slots.items()}
    return tainted


def dotted(node: ast.AST) -> str | None:
    """`a.b.c` -> "a.b.c"; `super().m` -> "super().m"; `A().m` -> "A().m"; else None."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            break
        elif isinstance(node, ast.Call):
            inner = dotted(node.func)
            if inner is None:
                return None
            parts.append(inner + "()")
            break
        else:
            return None
    return ".".join(reversed(parts))
