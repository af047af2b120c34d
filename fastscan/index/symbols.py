"""What one module's source defines and calls, read with the stdlib `ast` (never imported).

The engine was chosen by what is available and measured: griffe/astroid are not dependencies,
and the stdlib parser reads the ~25k modules of the shipped index in minutes. What it cannot see,
and so what the index cannot know: names created dynamically (`globals()[...] =`, `setattr`,
`getattr(mod, name)`), code in C extensions (covered by the reviewed sink table and rule base),
decorators that replace a function by something else (the function body is indexed as written),
calls on objects whose type is not evident from the source (`obj.method()` for an `obj` that is
not `self`/`cls`, a module, a class, or a local assigned from one of those).

Calls are kept as dotted expressions ("pickle.loads", "self._load", "super().__init__",
"Foo().run"); `build.py` resolves them against every indexed module.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from .flows import dotted, mentions, param_flows
from .namespace import attribute_store, dynamic_reasons

# Binding kinds (first element of a binding tuple).
B_IMPORT = "import"  # ("import", module)
B_FROM = "from"  # ("from", module, attribute)
B_DEF = "function"  # ("function",)
B_CLASS = "class"  # ("class",)
B_ALIAS = "alias"  # ("alias", dotted expression)
B_CONST = "constant"  # ("constant",)

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CALL_RO = 1  # call passes a literal read-only mode (open/FileIO/os.open)
CALL_CONST = 2  # every argument is a literal: nothing the loader passes can steer the call
CALL_PARAM = 4  # an argument is derived from one of the function's own parameters
_MAX_CALLS = 400  # per function: bounds fan-out of generated or enormous functions


@dataclass(slots=True)
class FuncInfo:
    calls: list[tuple[str, int]] = field(default_factory=list)
    locals: dict[str, list[str]] = field(default_factory=dict)  # name -> dotted expressions
    params: list[str] = field(default_factory=list)  # positional parameters, in order
    vararg: str = ""  # `*args`: takes the positional arguments past `params`
    # calls passing plain names: (callee, positional arg names, ((keyword, name), ...)); used
    # to bind a callee's parameters to modules/classes/functions (`_load(f, pickle_module)`)
    call_args: list[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]] = field(
        default_factory=list
    )
    # stored-callable facts (`flows.py`): `self.<attr>` keys that receive a parameter-derived
    # value, and keys whose value or element this function calls ("attr" or "attr.field")
    stores: dict[str, list[str]] = field(default_factory=dict)  # key -> parameters stored
    calls_stored: list[str] = field(default_factory=list)
    params_called: list[str] = field(default_factory=list)
    param_slots: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # callee text ->
    # argument slot ("0", "1", ... or a keyword) -> parameters the argument derives from


@dataclass(slots=True)
class ClassInfo:
    bases: list[str] = field(default_factory=list)
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> binding
    # `self.x = <dotted>` in its methods: instance attributes, for resolving `self.x(...)` only
    inst: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ModuleInfo:
    name: str
    package: str
    version: str
    is_pkg: bool = False
    opaque: bool = False  # C extension: names unknown, every attribute is a builtin
    bindings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stars: list[str] = field(default_factory=list)
    all: list[str] | None = None
    functions: dict[str, FuncInfo] = field(default_factory=dict)  # qualname -> info
    classes: dict[str, ClassInfo] = field(default_factory=dict)  # qualname -> info
    error: str = ""
    # Why names may exist that no statement shows (`namespace.py`): its own `globals()` writes,
    # exec into its globals, `sys.modules[__name__]`; the build adds "assigned from <module>".
    dynamic: list[str] = field(default_factory=list)
    # module-level `X.y = v` / `setattr(X, ...)` / `X.__dict__.update(...)`: the dotted `X`s
    attr_stores: list[str] = field(default_factory=list)
    # module-level import bindings that lost to an earlier branch (`if sage: import a as m /
    # else: from . import b as m`): other modules a dotted `X` may name
    alternatives: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)


def _absolute(module: str, is_pkg: bool, level: int, target: str | None) -> str:
    if not level:
        return target or ""
    base = module.split(".")
    if not is_pkg:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _read_only_mode(call: ast.Call) -> bool:
    mode: ast.AST | None = call.args[1] if len(call.args) > 1 else None
    for kw in call.keywords:
        if kw.arg in ("mode", "flags"):
            mode = kw.value
    if mode is None:
        return len(call.args) <= 1 and not any(kw.arg is None for kw in call.keywords)
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return not set(mode.value) & set("wax+")
    text = dotted(mode)
    return text is not None and text.endswith("O_RDONLY")


class _Reader:
    def __init__(self, mod: ModuleInfo) -> None:
        self.mod = mod

    def bind(self, table: dict[str, tuple[str, ...]], name: str, binding: tuple[str, ...]) -> None:
        # definitions and imports beat plain constants; otherwise the first binding wins (the
        # try-branch of a try/except ImportError, the first branch of a platform `if`)
        old = table.get(name)
        if old is None or (old[0] == B_CONST and binding[0] != B_CONST):
            table[name] = binding
        elif table is self.mod.bindings and binding[0] in (B_IMPORT, B_FROM) and old != binding:
            alts = self.mod.alternatives.setdefault(name, [])
            if binding not in alts and len(alts) < 4:
                alts.append(binding)

    def imports(self, node: ast.AST, table: dict[str, tuple[str, ...]]) -> None:
        mod = self.mod
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    self.bind(table, a.asname, (B_IMPORT, a.name))
                else:
                    top = a.name.split(".")[0]
                    self.bind(table, top, (B_IMPORT, top))
        elif isinstance(node, ast.ImportFrom):
            src = _absolute(mod.name, mod.is_pkg, node.level, node.module)
            for a in node.names:
                if a.name == "*":
                    if table is mod.bindings and src not in mod.stars:
                        mod.stars.append(src)
                else:
                    self.bind(table, a.asname or a.name, (B_FROM, src, a.name))

    def body(self, stmts: list[ast.stmt], prefix: str, table: dict[str, tuple[str, ...]]) -> None:
        for node in stmts:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports(node, table)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.bind(table, node.name, (B_DEF,))
                self.function(node, prefix + node.name)
            elif isinstance(node, ast.ClassDef):
                self.bind(table, node.name, (B_CLASS,))
                self.klass(node, prefix + node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                self.assign(node, table, prefix)
                if not prefix and node.value is not None:
                    self.clone(node.value)
            elif isinstance(node, ast.Expr) and not prefix:
                self.clone(node.value)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for part in ("body", "orelse", "finalbody"):
                    if part == "body" and isinstance(node, ast.If) and _typing_only(node.test):
                        continue  # stubs for type checkers; the loader sees the else branch
                    self.body(getattr(node, part, []), prefix, table)
                for handler in getattr(node, "handlers", []):
                    self.body(handler.body, prefix, table)

    def clone(self, value: ast.AST) -> None:
        """`clone_module("torch", globals())`-style re-exports: a module-level call handed
        `globals()` and a module name copies that module's names (sklearn's array_api_compat);
        taken as `from torch import *`."""
        if not isinstance(value, ast.Call):
            return
        args = [*value.args, *(kw.value for kw in value.keywords)]
        if not any(isinstance(a, ast.Call) and dotted(a.func) == "globals" for a in args):
            return
        for a in args:
            if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value:
                names = a.value.split(".")
                if a.value not in self.mod.stars and all(_IDENT_RE.match(p) for p in names):
                    self.mod.stars.append(a.value)

    def assign(
        self, node: ast.Assign | ast.AnnAssign, table: dict[str, tuple[str, ...]], prefix: str
    ) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        value = node.value
        if (
            len(targets) == 1
            and isinstance(targets[0], ast.Tuple)
            and isinstance(value, ast.Tuple)
            and len(targets[0].elts) == len(value.elts)
        ):  # `load, loads = pickle.load, pickle.loads`
            for t, v in zip(targets[0].elts, value.elts, strict=True):
                self.assign(ast.Assign(targets=[t], value=v), table, prefix)
            return
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            if target.id == "__all__" and not prefix and value is not None:
                self.mod.all = _string_list(value)
                continue
            text = dotted(value) if value is not None else None
            if text and not text.endswith("()") and "()." not in text:
                self.bind(table, target.id, (B_ALIAS, text))
            elif isinstance(value, ast.Call) and dotted(value.func) in (
                "staticmethod",
                "classmethod",
            ):
                inner = value.args[0] if value.args else None
                inner_text = dotted(inner) if inner is not None else None
                self.bind(table, target.id, (B_ALIAS, inner_text) if inner_text else (B_CONST,))
            else:
                self.bind(table, target.id, (B_CONST,))

    def klass(self, node: ast.ClassDef, qualname: str) -> None:
        info = ClassInfo(bases=[t for t in (dotted(b) for b in node.bases) if t])
        self.mod.classes[qualname] = info
        self.body(node.body, qualname + ".", info.members)

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str) -> None:
        info = FuncInfo()
        self.mod.functions[qualname] = info
        a = node.args
        info.params = [p.arg for p in a.posonlyargs + a.args]
        info.vararg = a.vararg.arg if a.vararg is not None else ""
        params = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs}
        params |= {p.arg for p in (a.vararg, a.kwarg) if p is not None}
        defaults = list(zip(reversed(a.posonlyargs + a.args), reversed(a.defaults), strict=False))
        defaults += [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d]
        for param, default in defaults:
            text = dotted(default)
            if text:
                info.locals.setdefault(param.arg, []).append(text)
        local_bindings: dict[str, tuple[str, ...]] = {}
        owner = self.mod.classes.get(qualname.rsplit(".", 1)[0]) if "." in qualname else None
        seen: set[tuple[str, int]] = set()
        derived = param_flows(node, params, info)
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                self.imports(sub, local_bindings)
            elif isinstance(sub, ast.Assign) and len(sub.targets) == 1:
                target = sub.targets[0]
                text = dotted(sub.value)
                on_self = isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                if owner is not None and text and on_self and target.value.id == "self":  # type: ignore[attr-defined]
                    if text in params:  # `self.x = x`: resolved through x's bound values
                        text = f"%{qualname}:{text}"
                    owner.inst.setdefault(target.attr, text)  # type: ignore[attr-defined]
                if isinstance(target, ast.Name) and text and target.id != "self":
                    exprs = info.locals.setdefault(target.id, [])
                    if text not in exprs and len(exprs) < 4:
                        exprs.append(text)
            elif isinstance(sub, ast.ClassDef) and sub.bases and sub is not node:
                # a class defined in the function: constructing it constructs its first base
                base = dotted(sub.bases[0])
                if base:
                    info.locals.setdefault(sub.name, []).append(base)
            elif isinstance(sub, ast.withitem) and isinstance(sub.optional_vars, ast.Name):
                text = dotted(sub.context_expr)
                if text:
                    info.locals.setdefault(sub.optional_vars.id, []).append(text)
            elif isinstance(sub, ast.Call) and len(info.calls) < _MAX_CALLS:
                text = dotted(sub.func)
                if text is None:
                    continue
                flags = CALL_RO if _read_only_mode(sub) else 0
                values = [*sub.args, *(kw.value for kw in sub.keywords)]
                if values and all(isinstance(v, ast.Constant) for v in values):
                    flags |= CALL_CONST
                if any(mentions(v, derived) for v in values):
                    flags |= CALL_PARAM
                if (text, flags) not in seen:
                    seen.add((text, flags))
                    info.calls.append((text, flags))
                pos = tuple(dotted(v) or "" for v in sub.args)
                kws = tuple((k.arg, dotted(k.value) or "") for k in sub.keywords if k.arg)
                if len(info.call_args) < _MAX_CALLS and (any(pos) or any(v for _, v in kws)):
                    info.call_args.append((text, pos, kws))
        if qualname == "__getattr__":
            self.lazy_exports(node, local_bindings)
        for name, binding in local_bindings.items():
            if binding[0] == B_IMPORT:
                info.locals.setdefault(name, []).insert(0, "@" + binding[1])
            elif binding[0] == B_FROM:
                info.locals.setdefault(name, []).insert(0, "@" + binding[1] + ":" + binding[2])

    def lazy_exports(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, local: dict[str, tuple[str, ...]]
    ) -> None:
        """PEP 562: a module `__getattr__` that imports a name when asked for it (`if name ==
        "X": from .m import X`, or `global X; X = imported`) makes X a module attribute."""
        asked = {
            c.value
            for sub in ast.walk(node)
            if isinstance(sub, ast.Compare)
            for c in (sub.left, *sub.comparators)
            if isinstance(c, ast.Constant) and isinstance(c.value, str)
        }
        declared = {n for sub in ast.walk(node) if isinstance(sub, ast.Global) for n in sub.names}
        for sub in ast.walk(node):
            if isinstance(sub, ast.Assign) and isinstance(sub.value, ast.Name):
                for t in sub.targets:
                    if isinstance(t, ast.Name) and t.id in declared and sub.value.id in local:
                        self.bind(self.mod.bindings, t.id, local[sub.value.id])
        for name, binding in local.items():
            if name in asked and binding[0] == B_FROM:
                self.bind(self.mod.bindings, name, binding)


def _typing_only(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if ... and typing.TYPE_CHECKING:` (false at run time)."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return any(_typing_only(v) for v in test.values)
    text = dotted(test)
    return text is not None and text.split(".")[-1] == "TYPE_CHECKING"


def _string_list(value: ast.AST) -> list[str] | None:
    if isinstance(value, (ast.List, ast.Tuple)):
        out = [e.value for e in value.elts if isinstance(e, ast.Constant)]
        return [s for s in out if isinstance(s, str)]
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):
        left, right = _string_list(value.left), _string_list(value.right)
        return (left or []) + (right or []) if left is not None or right is not None else None
    return None


def read_module(name: str, source: bytes, package: str, version: str, is_pkg: bool) -> ModuleInfo:
    """Parse one module's source; a syntax error gives an empty module with `error` set."""
    mod = ModuleInfo(name=name, package=package, version=version, is_pkg=is_pkg)
    try:
        tree = ast.parse(source, filename=name)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        mod.error = f"{type(exc).__name__}: {exc}"[:200]
        return mod
    _Reader(mod).body(tree.body, "", mod.bindings)
    mod.dynamic = dynamic_reasons(tree)
    mod.attr_stores = sorted({t for node in tree.body for t in attribute_store(node)})
    return mod


def opaque_module(name: str, package: str, version: str) -> ModuleInfo:
    return ModuleInfo(name=name, package=package, version=version, opaque=True)
