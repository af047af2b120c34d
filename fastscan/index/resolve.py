"""Static name resolution over parsed modules: pickle's attribute walk and call targets.

A `Ref` is (kind, module, qualname) of where a name is really defined. Resolution follows
imports, `from x import *` (honouring `__all__`), module-level aliases, class bases (an MRO
approximated by resolving base names and walking them depth-first) and simple locals. Every
walk is memoised and bounded, so cycles between modules end.
"""

from __future__ import annotations

from collections.abc import Callable

from .symbols import B_ALIAS, B_CLASS, B_CONST, B_DEF, B_FROM, B_IMPORT, FuncInfo, ModuleInfo

Ref = tuple[str, str, str]  # kind, module, qualname
_MAX_DEPTH = 24


def label(module: str, qual: str) -> str:
    return f"{module}.{qual}" if qual else module


class Resolver:
    def __init__(
        self,
        mods: dict[str, ModuleInfo],
        external: Callable[[str, tuple[str, ...]], Ref | None] | None = None,
    ) -> None:
        self.mods = mods
        self.external = external  # names of modules outside this build (a dependency index)
        self._memo: dict[tuple[str, tuple[str, ...]], Ref | None] = {}
        self._busy: set[tuple[str, tuple[str, ...]]] = set()
        self._mro: dict[tuple[str, str], list[Ref]] = {}
        self._exports: dict[str, set[str]] = {}

    # -- pickle's walk: getattr from a module ----------------------------------------------------
    def resolve(self, module: str, parts: tuple[str, ...], depth: int = 0) -> Ref | None:
        key = (module, parts)
        if key in self._memo:
            return self._memo[key]
        if key in self._busy or depth > _MAX_DEPTH:
            return None
        self._busy.add(key)
        try:
            out = self._resolve(module, parts, depth)
        finally:
            self._busy.discard(key)
        self._memo[key] = out
        return out

    def _resolve(self, module: str, parts: tuple[str, ...], depth: int) -> Ref | None:
        m = self.mods.get(module)
        if m is None:
            return self.external(module, parts) if self.external else None
        if not parts:
            return ("module", module, "")
        if m.opaque:
            return ("builtin", module, ".".join(parts))
        first, rest = parts[0], parts[1:]
        if first in m.classes:
            return self.member(("class", module, first), rest, depth)
        binding = m.bindings.get(first)
        if binding is not None:
            target = self.binding(module, "", binding, first, depth)
            return self.member(target, rest, depth) if target else None
        sub = f"{module}.{first}"
        if sub in self.mods:
            return self.resolve(sub, rest, depth + 1)
        for star in m.stars:
            sm = self.mods.get(star)
            if sm is None:
                continue
            if sm.opaque or first in self.exports(star):
                return self.resolve(star, parts, depth + 1)
        return None

    def exports(self, module: str) -> set[str]:
        """Names `from module import *` binds."""
        if module in self._exports:
            return self._exports[module]
        self._exports[module] = set()  # cycle guard
        m = self.mods[module]
        if m.all is not None:
            names = set(m.all)
        else:
            names = {n for n in m.bindings if not n.startswith("_")}
            names |= {q for q in m.classes if "." not in q and not q.startswith("_")}
            for star in m.stars:
                if star in self.mods and not self.mods[star].opaque:
                    names |= self.exports(star)
        self._exports[module] = names
        return names

    def binding(
        self, module: str, scope: str, binding: tuple[str, ...], name: str, depth: int
    ) -> Ref | None:
        kind = binding[0]
        qual = f"{scope}.{name}" if scope else name
        if kind == B_IMPORT:
            target = binding[1]
            if target in self.mods or not self.external:
                return ("module", target, "")
            return self.external(target, ()) or ("module", target, "")
        if kind == B_FROM:
            src, attr = binding[1], binding[2]
            own = self.mods[src].bindings if src in self.mods else {}
            if f"{src}.{attr}" == module and attr in own:
                # `from .. import models` inside pkg.models: the import system's getattr(pkg,
                # "models") finds what pkg's __init__ bound (tokenizers binds its Rust
                # submodule there); the submodule is set on pkg only once it has run
                return self.resolve(src, (attr,), depth + 1)
            if f"{src}.{attr}" in self.mods:
                return ("module", f"{src}.{attr}", "")
            if src == module and not scope:
                return None  # `from . import x` of a missing submodule
            return self.resolve(src, (attr,), depth + 1)
        if kind == B_DEF:
            return ("function", module, qual)
        if kind == B_CLASS:
            return ("class", module, qual)
        if kind == B_ALIAS:
            if scope:  # class body: a sibling member first (`load = _load`)
                head = binding[1].split(".")[0]
                owner = self.mods[module].classes.get(scope)
                if owner and head in owner.members and head != name:
                    inner = self.binding(module, scope, owner.members[head], head, depth + 1)
                    rest = tuple(binding[1].split(".")[1:])
                    return self.member(inner, rest, depth + 1) if inner else None
            return self.expr(module, binding[1], None, None, depth + 1)
        if kind == B_CONST:
            return ("constant", module, qual)
        return None

    def member(self, ref: Ref | None, rest: tuple[str, ...], depth: int) -> Ref | None:
        if ref is None or not rest:
            return ref
        kind, module, qual = ref
        if kind == "module":
            return self.resolve(module, rest, depth + 1)
        if kind == "builtin":
            return ("builtin", module, ".".join((qual, *rest)))
        if kind != "class":
            return None
        name = rest[0]
        for base in self.mro(ref):
            bkind, bmod, bqual = base
            if bkind == "builtin":
                if bqual != "object":
                    return self.member(("builtin", bmod, f"{bqual}.{name}"), rest[1:], depth)
                continue
            cls = self.mods[bmod].classes.get(bqual)
            if cls is not None and name in cls.members:
                target = self.binding(bmod, bqual, cls.members[name], name, depth + 1)
                return self.member(target, rest[1:], depth + 1)
        return None

    def mro(self, ref: Ref) -> list[Ref]:
        """The class and its bases, depth-first left-to-right, each once."""
        key = (ref[1], ref[2])
        if key in self._mro:
            return self._mro[key]
        self._mro[key] = [ref]  # cycle guard
        out: list[Ref] = [ref]
        m = self.mods.get(ref[1])
        cls = m.classes.get(ref[2]) if m is not None else None
        if ref[0] == "class" and cls is not None:
            scope = ref[2].rsplit(".", 1)[0] if "." in ref[2] else ""
            for text in cls.bases:
                base = self.expr(ref[1], text, None, None, 1, scope=scope)
                if base is None or base[0] not in ("class", "builtin"):
                    continue
                for item in self.mro(base) if base[0] == "class" else [base]:
                    if item not in out:
                        out.append(item)
        self._mro[key] = out
        return out

    # -- expressions inside code ------------------------------------------------------------
    def expr(
        self,
        module: str,
        text: str,
        func: FuncInfo | None,
        cls: Ref | None,
        depth: int,
        *,
        scope: str = "",
    ) -> Ref | None:
        """Resolve a dotted expression ("self.x", "super().m", "mod.Cls().run") to a Ref."""
        if depth > 6:
            return None
        segs = text.split(".")
        head, rest = segs[0], segs[1:]
        called = head.endswith("()")
        head = head[:-2] if called else head
        ref: Ref | None
        if head == "super" and called:
            if cls is None or not rest:
                return None
            name, tail = rest[0].removesuffix("()"), rest[1:]
            for base in self.mro(cls)[1:]:
                found = self.member(base, (name,), depth)
                if found is not None:
                    if rest[0].endswith("()"):
                        found = self._instance(found)
                    return self._walk(found, tail, depth)
            return None
        if head in ("self", "cls") and cls is not None:
            ref = cls
            attr = rest[0].removesuffix("()") if head == "self" and rest else ""
            if attr and self.member(cls, (attr,), depth) is None:
                inst = self.instance_attribute(cls, attr, depth)
                if inst is not None and rest[0].endswith("()"):
                    inst = self._instance(inst)  # `self.factory()`: an instance of the class
                if inst is not None:
                    ref, rest = inst, rest[1:]
        elif func is not None and head in func.locals:
            ref = None
            for value in func.locals[head]:
                if value.startswith("&"):  # bound by a caller (build.bind_arguments)
                    kind, mod, qual = value[1:].split("\x00")
                    ref = (kind, mod, qual)
                elif value.startswith("@"):
                    spec = value[1:]
                    if ":" in spec:
                        src, attr = spec.split(":", 1)
                        ref = self.binding(module, "", ("from", src, attr), head, depth + 1)
                    else:
                        ref = self.binding(module, "", ("import", spec), head, depth + 1)
                elif value != text and not value.startswith(head + "."):
                    ref = self.expr(module, value, func, cls, depth + 1)
                if ref is not None:
                    break
        else:
            ref = None
            if scope:  # class-body names (a base written as a sibling class)
                owner = self.mods.get(module)
                c = owner.classes.get(scope) if owner else None
                if c is not None and head in c.members:
                    ref = self.binding(module, scope, c.members[head], head, depth + 1)
            if ref is None:
                ref = self.resolve(module, (head,), depth)
            if ref is None and module in self.mods and head not in self.mods[module].bindings:
                ref = ("builtin", "builtins", head)
        if ref is None:
            return None
        if called:
            ref = self._instance(ref)
        return self._walk(ref, rest, depth)

    def instance_attribute(self, cls: Ref, name: str, depth: int) -> Ref | None:
        """`self.name` assigned in a method of the class or a base (`self.f = open`)."""
        for base in self.mro(cls):
            owner = self.mods[base[1]].classes.get(base[2]) if base[1] in self.mods else None
            if owner is not None and name in owner.inst:
                value = owner.inst[name]
                if value.startswith("%"):  # a parameter: its default and caller-bound values
                    qual, param = value[1:].rsplit(":", 1)
                    f = self.mods[base[1]].functions.get(qual)
                    if f is None or param not in f.locals:
                        return None
                    return self.expr(base[1], param, f, base, depth + 1)
                return self.expr(base[1], value, None, base, depth + 1)
        return None

    def _walk(self, ref: Ref | None, rest: list[str], depth: int) -> Ref | None:
        for seg in rest:
            if ref is None:
                return None
            called = seg.endswith("()")
            ref = self.member(ref, (seg.removesuffix("()"),), depth)
            if called and ref is not None:
                ref = self._instance(ref)
        return ref

    @staticmethod
    def _instance(ref: Ref) -> Ref | None:
        # calling a class gives an instance: attributes are looked up on the class
        return ref if ref[0] in ("class", "builtin") else None
