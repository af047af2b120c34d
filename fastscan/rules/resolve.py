"""Name semantics: how a (module, name) pair from a pickle maps onto the knowledge base.

The rules, each implemented here and tested in tests/rules/test_rules_names.py:
1. Module spellings are normalised first: `__builtin__` -> `builtins`, C-level modules to their
   public module (`posix` -> `os`, `_io` -> `io`, `_operator` -> `operator`), longest prefix wins.
2. A rule on a module covers its sub-modules: `asyncio *` covers `asyncio.unix_events`.
   The most specific rule wins: exact name, then the closest module wildcard. At equal
   specificity user entries win, then dangerous over unknown over safe.
3. A dotted name is an attribute path, resolved the way `pickle` does it (getattr per segment):
   while a segment names a module (a sub-module, a known import alias like `random._os`, or an
   attribute spelled like a sink module such as `os`/`_os`), the walk moves into that module;
   the rest is looked up as `Class.attr` with every prefix checked. A dangerous entry covers its
   attributes; a safe entry covers only itself (`numpy.prod` is safe, `numpy.prod.a` is not).
   Any segment in the dangerous-attribute table (`__globals__`, `__builtins__`…) is dangerous.
4. A dotted name that is not itself a reviewed entry is `dotted`; when it starts in a module
   that has safe entries it is also `through_allowlisted` (benign pickles never do that).
5. Python-2 spellings pass through CPython's own `_compat_pickle` tables first, exactly as the
   loader's `find_class` does for protocols < 3 (NAME_MAPPING on the pair, else IMPORT_MAPPING on
   the module). The stream's protocol is not consulted: under protocol >= 3 the loader imports the
   spelling as written, so the worse of the two readings is graded, where the written one counts
   only when a reviewed entry knows it (an unlisted py2 module does not exist on Python 3).
6. `withheld` names (resolved module.qualname) that would classify as dangerous classify as
   unknown instead, exactly as an unlisted callable of a module nothing indexes does: the
   "novel family" experiment's way to pretend nothing knows them yet. All else is unchanged.
"""

from __future__ import annotations

import _compat_pickle  # CPython's own py2 -> py3 name table (data, not scanned code)
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from . import indexed
from .knowledge import DANGEROUS, SAFE, UNKNOWN, Classification, KnowledgeBase, RuleEntry

if TYPE_CHECKING:
    from ..index import Index

_CLASS_RANK = {DANGEROUS: 0, UNKNOWN: 1, SAFE: 2}
# Distinct (module, name) pairs memoised; a hostile corpus cannot grow the cache forever.
_CACHE_LIMIT = 1_000_000


# The tokenizer already writes `__builtin__`/`copy_reg` as `builtins`/`copyreg`, so the pair
# table is keyed under both spellings (`__builtin__.reduce` arrives as `builtins.reduce`).
_PY2_NAMES: dict[tuple[str, str], tuple[str, str]] = dict(_compat_pickle.NAME_MAPPING)
for (_m, _n), _target in _compat_pickle.NAME_MAPPING.items():
    _PY2_NAMES.setdefault((_compat_pickle.IMPORT_MAPPING.get(_m, _m), _n), _target)
_PY2_MODULES: dict[str, str] = dict(_compat_pickle.IMPORT_MAPPING)


def py3_spelling(module: str, name: str) -> tuple[str, str]:
    """What `pickle.Unpickler.find_class` imports for (module, name) under protocol < 3."""
    pair = _PY2_NAMES.get((module, name))
    if pair is not None:
        return pair
    return _PY2_MODULES.get(module, module), name


def _parents(module: str) -> Iterable[str]:
    """`a.b.c` -> `a.b.c`, `a.b`, `a`."""
    while module:
        yield module
        cut = module.rfind(".")
        module = module[:cut] if cut > 0 else ""


def _class_or_pyx_unpickle(name: str) -> bool:
    """CamelCase names (also private `_BinMapper`), plus Cython's generated
    `__pyx_unpickle_<Class>` helpers (they only call `<Class>.__new__` and restore state)."""
    return name.lstrip("_")[:1].isupper() or name.startswith("__pyx_unpickle_")


class Resolver:
    """Indexes a KnowledgeBase once; `classify` is then dict lookups, memoised per pair."""

    def __init__(
        self, kb: KnowledgeBase, withheld: Iterable[str] = (), index: Index | None = None
    ) -> None:
        self.withheld = frozenset(withheld)
        self.index = index
        self._module_aliases = dict(kb.module_aliases)
        self._attribute_aliases = {
            (self.normalise_module(m), a): t for (m, a), t in kb.attribute_aliases.items()
        }
        self._dangerous_attributes = dict(kb.dangerous_attributes)
        exact: dict[tuple[str, str], list[RuleEntry]] = {}
        wild: dict[str, list[RuleEntry]] = {}
        for e in kb.entries:
            module = self.normalise_module(e.module)
            if e.is_wildcard:
                wild.setdefault(module, []).append(e)
            else:
                exact.setdefault((module, e.name), []).append(e)

        def order(entries: list[RuleEntry]) -> tuple[RuleEntry, ...]:
            return tuple(sorted(entries, key=lambda e: (not e.user, _CLASS_RANK[e.verdict_class])))

        self._exact = {k: order(v) for k, v in exact.items()}
        self._wild = {k: order(v) for k, v in wild.items()}
        # Modules the walk may step into, and which of them hold safe entries.
        self._known_modules: set[str] = set()
        self._safe_modules: set[str] = set()
        for module, _ in self._exact:
            self._known_modules.update(_parents(module))
        for module in self._wild:
            self._known_modules.update(_parents(module))
        for (module, _), entries in self._exact.items():
            if any(e.verdict_class == SAFE for e in entries):
                self._safe_modules.add(module)
        self._safe_wild = {
            m for m, es in self._wild.items() if any(e.verdict_class == SAFE for e in es)
        }
        # Top-level names that make an attribute a module reference (`pathlib.os`, `random._os`).
        self._sink_roots = {
            m.split(".")[0]
            for (m, _), es in self._exact.items()
            if es[0].verdict_class == DANGEROUS
        }
        self._sink_roots |= {
            m.split(".")[0] for m, es in self._wild.items() if es[0].verdict_class == DANGEROUS
        }
        self._sink_roots |= {m for m in self._module_aliases if "." not in m}
        self._cache: dict[tuple[str, str], Classification] = {}

    # -- public -------------------------------------------------------------------------------

    def normalise_module(self, module: str) -> str:
        """Apply module aliases (longest prefix first) until none applies."""
        for _ in range(8):  # alias chains are short; the loader rejects cycles
            for prefix in _parents(module):
                target = self._module_aliases.get(prefix)
                if target is not None:
                    module = target + module[len(prefix) :]
                    break
            else:
                return module
        return module

    def classify(self, module: str, name: str) -> Classification:
        key = (module, name)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            module, name = module.strip(), name.strip()
            py3 = py3_spelling(module, name)
            hit = self._judge(*py3)
            if py3 != (module, name):
                written = self._judge(module, name)
                if (
                    written.entry_id
                    and _CLASS_RANK[written.verdict_class] < _CLASS_RANK[hit.verdict_class]
                ):
                    hit = written
                else:
                    hit = replace(hit, reason=f"{hit.reason} (Python 2 name of {'.'.join(py3)})")
            self._cache[key] = hit
        return hit

    def wildcard_for(self, module: str) -> RuleEntry | None:
        """The module-wide entry deciding for `module` (its own or a parent's), if any."""
        for scope in _parents(self.normalise_module(module)):
            entries = self._wild.get(scope)
            if entries:
                return entries[0]
        return None

    def is_allowlisted_module(self, module: str) -> bool:
        module = self.normalise_module(module)
        return module in self._safe_modules or any(p in self._safe_wild for p in _parents(module))

    # -- internals ----------------------------------------------------------------------------

    def _judge(self, module: str, name: str) -> Classification:
        hit = self._classify(module, name)
        if self.withheld and hit.is_dangerous and hit.resolved in self.withheld:
            # a stand-in for a novel family: nothing knows it, the index included (rule 6)
            return self._unlisted(module, name, hit.resolved)
        if self.index is not None:
            hit = indexed.judge(self.index, hit, module, name, self._judge_origin)
        return hit

    def _judge_origin(self, module: str, name: str) -> Classification:
        """The rule base's answer for an alias's origin (withheld names stay withheld)."""
        hit = self._classify(module, name)
        if self.withheld and hit.is_dangerous and hit.resolved in self.withheld:
            hit = self._unlisted(module, name, hit.resolved)
        return hit

    def _classify(self, module: str, name: str) -> Classification:
        if not module or not name:
            return Classification(UNKNOWN, "", "", "empty module or name", "")
        start = self.normalise_module(module)
        parts = name.split(".")
        dotted = len(parts) > 1
        through = dotted and self.is_allowlisted_module(start)
        reviewed = self._exact.get((start, name))
        if reviewed:  # the exact name is an entry (e.g. builtins __import__, Path.write_text)
            return self._result(reviewed[0], f"{start}.{name}", False, False)
        for part in parts:
            danger = self._dangerous_attributes.get(part)
            if danger is not None:
                return self._result(danger, f"{start}.{name}", dotted, through)
        module_now, i = start, 0
        while i < len(parts) - 1:
            target = self._module_attribute(module_now, parts[i])
            if target is None:
                break
            # An explicit sink entry on the attribute itself wins; a module-wide rule of the
            # module we pass through does not (`torch.serialization.os` is `os`, not a loader).
            for own in self._exact.get((module_now, parts[i]), ()):
                if own.verdict_class == DANGEROUS:
                    return self._result(own, f"{module_now}.{parts[i]}", dotted, through)
            module_now, i = target, i + 1
        qualname = ".".join(parts[i:])
        resolved = f"{module_now}.{qualname}"
        entry = self._lookup(module_now, qualname)
        if entry is None:
            return Classification(
                UNKNOWN, "", "", "not in the reviewed knowledge base", "", resolved, dotted, through
            )
        return self._result(entry, resolved, dotted, through)

    def _unlisted(self, module: str, name: str, resolved: str) -> Classification:
        """What `classify` answers for a name no entry mentions (rule 5)."""
        dotted = "." in name
        through = dotted and self.is_allowlisted_module(self.normalise_module(module))
        return Classification(
            UNKNOWN, "", "", "not in the reviewed knowledge base", "", resolved, dotted, through
        )

    @staticmethod
    def _result(entry: RuleEntry, resolved: str, dotted: bool, through: bool) -> Classification:
        return Classification(
            entry.verdict_class,
            entry.category,
            entry.entry_id,
            entry.reason,
            entry.ref,
            resolved,
            dotted,
            through,
            pinned=entry.verdict_class == UNKNOWN
            or (entry.verdict_class == SAFE and not entry.is_wildcard and not dotted),
            wildcard=entry.is_wildcard and not entry.user,
        )

    def _module_attribute(self, module: str, attribute: str) -> str | None:
        """The module `module.attribute` refers to, or None when it is not a module."""
        target = self._attribute_aliases.get((module, attribute))
        if target is not None:
            return self.normalise_module(target)
        sub = f"{module}.{attribute}"
        if sub in self._known_modules or sub in self._module_aliases:
            return self.normalise_module(sub)
        for candidate in (attribute, attribute.lstrip("_")):
            if candidate in self._sink_roots:
                return self.normalise_module(candidate)
        return None

    def _lookup(self, module: str, qualname: str) -> RuleEntry | None:
        parts = qualname.split(".")
        for k in range(len(parts), 0, -1):
            for e in self._exact.get((module, ".".join(parts[:k])), ()):
                # A safe class does not vouch for its attributes; a sink taints them.
                if k == len(parts) or e.verdict_class != SAFE:
                    return e
        for scope in _parents(module):
            for e in self._wild.get(scope, ()):
                if e.verdict_class == SAFE:
                    if len(parts) > 1:
                        continue
                    if e.classes_only and not _class_or_pyx_unpickle(parts[0]):
                        continue
                return e
        return None
