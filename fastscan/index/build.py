"""Build an index: parse modules, resolve names, and find what each load-time hook can reach.

Reachability is a reverse breadth-first search from the sink primitives (`sinks.py`) over the
call graph, once per category, so every function gets its shortest path to each category it can
reach, deterministically (nodes and edges are visited in sorted order). Paths are bounded by
`MAX_HOPS`; a function contributes at most `symbols._MAX_CALLS` call sites.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from .flows import SUBSCRIPTED
from .resolve import Ref, Resolver, label
from .sinks import CUTS, MODE_SINKS, direct_category, sink_category
from .store import HOOKS
from .symbols import B_DEF, B_FROM, B_IMPORT, CALL_CONST, CALL_PARAM, CALL_RO, ModuleInfo

MAX_HOPS = 16
_RECEIVERS = frozenset({"self", "cls", "super()"})  # calls that carry the object's state
_LATE_NODES = 64  # methods followed per hook when re-binding `self` to the subclass
# a parameter handed on through more calls than this is nearly always incidental (a message
# string reaching `warnings.warn_explicit`'s `category(message)`): dispatch paths stay short
_DISPATCH_LEN = 4
_BIND_ROUNDS = 2  # argument binding passes: a value handed on through two calls
# The method the loader calls for each hook (REDUCE/NEWOBJ, BUILD, SETITEMS, APPENDS, ADDITEMS):
# store.HOOKS, which the rules read too.

Node = tuple[str, str]  # (module, qualname) of a function, or ("!category", origin) of a sink
ReachRow = tuple[str, str, tuple[str, ...]]  # hook, category, path


class Graph:
    def __init__(self, mods: dict[str, ModuleInfo], resolver: Resolver) -> None:
        self.mods = mods
        self.r = resolver
        self.edges: dict[Node, list[Node]] = {}
        # calls handed a parameter-derived value: (callee node, argument slot -> parameters)
        self.param_edges: dict[Node, list[tuple[Node, dict[str, list[str]]]]] = {}
        for _ in range(_BIND_ROUNDS):
            self.bind_arguments()
        for name in sorted(mods):
            m = mods[name]
            for qual in sorted(m.functions):
                self._function(m, qual)
        self.paths = self._search()
        self.dispatch = dispatchers(self, subclasses=True)  # a method: its class family
        self.dispatch_up = dispatchers(self, subclasses=False)  # a hook: the class and bases

    def bind_arguments(self) -> None:
        """Flow-insensitive argument binding: a module, class or function passed by name to a
        function becomes a possible value of that parameter (torch.load hands `pickle` to
        `_load(..., pickle_module)`, which subclasses `pickle_module.Unpickler`)."""
        for name in sorted(self.mods):
            m = self.mods[name]
            for qual in sorted(m.functions):
                f = m.functions[qual]
                cls = _owner(m, qual)
                for text, pos, kws in f.call_args:
                    callee = self.r.expr(m.name, text, f, cls, 0)
                    if callee is not None and callee[0] == "class":  # `_Utils(Profile)`
                        callee = self.r.member(callee, ("__init__",), 0)
                    if callee is None or callee[0] != "function" or callee[1] not in self.mods:
                        continue
                    g = self.mods[callee[1]].functions.get(callee[2])
                    if g is None:
                        continue
                    skip = 1 if g.params[:1] in (["self"], ["cls"]) and "." in callee[2] else 0
                    pairs = list(zip(g.params[skip:], pos, strict=False)) + list(kws)
                    for param, arg in pairs:
                        if not arg or param in ("self", "cls"):
                            continue
                        ref = self.r.expr(m.name, arg, f, cls, 0)
                        if ref is None or ref[0] not in ("module", "class", "function"):
                            continue
                        marker = "&" + "\x00".join(ref)
                        values = g.locals.setdefault(param, [])
                        if marker not in values and len(values) < 6:
                            values.append(marker)

    def _function(self, m: ModuleInfo, qual: str) -> None:
        f = m.functions[qual]
        node = (m.name, qual)
        cls = _owner(m, qual)
        out: list[Node] = []
        for text, flags in f.calls:
            head = text.split(".", 1)[0]
            stateful = head in _RECEIVERS or any(v[:1] != "@" for v in f.locals.get(head, ()))
            if flags & CALL_CONST and not stateful:
                continue  # literal arguments only, no object state: the loader cannot steer it
            ref = self.r.expr(m.name, text, f, cls, 0)
            if ref is not None and label(ref[1], ref[2]) not in CUTS:
                for target in self.targets(ref, flags):
                    if target not in out and target != node:
                        out.append(target)
                    if flags & CALL_PARAM and not target[0].startswith("!"):
                        slots = f.param_slots.get(text, {})
                        self.param_edges.setdefault(node, []).append((target, slots))
        self.edges[node] = out

    def targets(self, ref: Ref, flags: int = 0) -> list[Node]:
        """Nodes a call of `ref` runs: a function, a class's constructor, or a sink."""
        kind, module, qual = ref
        origin = label(module, qual)
        sink = sink_category(origin, methods=False)  # a method of a sink was constructed first
        if sink is not None:
            if flags & CALL_CONST or (origin in MODE_SINKS and flags & CALL_RO):
                return []  # `CDLL("libnvidia-ml.so.1")`, `open(path, "rb")`: not steerable
            return [("!" + sink, origin)]
        if kind == "function":
            return [(module, qual)]
        if kind != "class":
            return []
        out: list[Node] = []
        for _, method in HOOKS[:2]:
            out += self.hook_targets(ref, method)
        return out

    def hook_targets(self, cls: Ref, method: str) -> list[Node]:
        found = self.r.member(cls, (method,), 0)
        if found is None:
            return []
        if found[0] == "builtin":
            if method not in ("__init__", "__new__"):
                return []
            cat = sink_category(label(found[1], found[2]))
            owner = label(found[1], found[2].rsplit(".", 1)[0])
            return [("!" + cat, owner)] if cat else []
        return self.targets(found) if found[0] == "function" else []

    def _search(self) -> dict[str, dict[Node, Node | None]]:
        """category -> {node: next hop towards the nearest sink of that category}."""
        reverse: dict[Node, list[Node]] = {}
        sinks: dict[str, list[Node]] = {}
        for node, outs in self.edges.items():
            for target in outs:
                reverse.setdefault(target, []).append(node)
                if target[0].startswith("!"):
                    sinks.setdefault(target[0][1:], []).append(target)
        result: dict[str, dict[Node, Node | None]] = {}
        for cat in sorted(sinks):
            nxt: dict[Node, Node | None] = dict.fromkeys(sorted(set(sinks[cat])))
            hops = dict.fromkeys(nxt, 0)
            queue = deque(nxt)
            while queue:
                node = queue.popleft()
                if hops[node] >= MAX_HOPS:
                    continue
                for caller in reverse.get(node, ()):
                    if caller not in nxt:
                        nxt[caller] = node
                        hops[caller] = hops[node] + 1
                        queue.append(caller)
            result[cat] = nxt
        return result

    def reach(self, node: Node) -> list[tuple[str, tuple[str, ...]]]:
        """(category, shortest path of labels) for every category `node` reaches."""
        out = []
        for cat, nxt in self.paths.items():
            if node not in nxt:
                continue
            path: list[str] = []
            cur: Node | None = node
            while cur is not None:
                path.append(cur[1] if cur[0].startswith("!") else label(*cur))
                cur = nxt[cur]
            out.append((cat, tuple(path)))
        return out

    def symbol_reaches(self, ref: Ref) -> list[ReachRow]:
        kind, module, qual = ref
        origin = label(module, qual)
        direct = direct_category(origin)
        if direct is not None:
            return [("new" if kind == "class" else "call", direct, (origin,))]
        rows: list[ReachRow] = []
        if kind == "function":
            node = (module, qual)
            rows = [("call", cat, path) for cat, path in self.reach(node)]
            if node in self.dispatch and not any(r[1] == "callback_dispatch" for r in rows):
                rows.append(("call", "callback_dispatch", self.dispatch[node]))
        elif kind == "class":
            for hook, method in HOOKS:
                for target in self.hook_targets(ref, method):
                    if target[0].startswith("!"):
                        rows.append((hook, target[0][1:], (origin, target[1])))
                        continue
                    rows += [(hook, cat, path) for cat, path in self.late_bound(ref, target)]
                    if target in self.dispatch_up:
                        rows.append((hook, "callback_dispatch", self.dispatch_up[target]))
            if not any(r[1] == "network" for r in rows):
                rows += self.lazy_network(ref)
        return sorted(set(rows))

    def lazy_network(self, cls: Ref) -> list[ReachRow]:
        """A connection opened by a public method (`HTTPConnection.connect`), not by a load-time
        hook: kept as the weaker reach kind "method" — the application, not the loader, calls it
        on the restored object."""
        best: tuple[str, ...] | None = None
        names = set()
        for base in self.r.mro(cls):
            c = self.mods[base[1]].classes.get(base[2]) if base[1] in self.mods else None
            if c is not None:
                names |= {n for n, b in c.members.items() if b[0] == B_DEF and n[:1] != "_"}
        for name in sorted(names):
            found = self.r.member(cls, (name,), 0)
            if found is None or found[0] != "function":
                continue
            for cat, path in self.reach((found[1], found[2])):
                if cat == "network" and (best is None or len(path) < len(best)):
                    best = path
        return [("method", "network", best)] if best else []

    def late_bound(self, cls: Ref, start: Node) -> list[tuple[str, tuple[str, ...]]]:
        """Reach of a hook method with `self` bound to `cls`: a base's `self.open()` runs the
        subclass's `open` (the global graph binds `self` to the defining class only)."""
        in_mro = {(m, q) for k, m, q in self.r.mro(cls) if k == "class"}
        parent: dict[Node, Node | None] = {start: None}
        order = [start]
        for node in order:
            if len(order) >= _LATE_NODES:
                break
            f = self.mods[node[0]].functions.get(node[1]) if node[0] in self.mods else None
            if f is None:
                continue
            nexts: list[Node] = []
            for text, _ in f.calls:
                if text.startswith("self.") and text.count(".") == 1:
                    t = self.r.member(cls, (text[5:],), 0)
                    if t is not None and t[0] == "function":
                        nexts.append((t[1], t[2]))
            for target in self.edges.get(node, ()):  # Base.method(self) / super().method()
                if "." in target[1] and (target[0], target[1].rsplit(".", 1)[0]) in in_mro:
                    nexts.append(target)
            for nxt in nexts:
                if nxt not in parent:
                    parent[nxt] = node
                    order.append(nxt)
        best: dict[str, tuple[str, ...]] = {}
        for node in order:
            prefix: list[str] = []
            cur: Node | None = parent[node]
            while cur is not None:
                prefix.append(label(*cur))
                cur = parent[cur]
            for cat, path in self.reach(node):
                full = (*reversed(prefix), *path)
                if cat not in best or (len(full), full) < (len(best[cat]), best[cat]):
                    best[cat] = full
        return sorted(best.items())


def dispatchers(g: Graph, *, subclasses: bool) -> dict[Node, tuple[str, ...]]:
    """Functions that dispatch a callable they are handed, with a path ending in the method
    that calls it: they call their parameter, store it where their class's family calls it
    (`flows.py`), or hand it to such a function or constructor (`sched.scheduler.enter` ->
    `enterabs` stores into `_queue`, `run` calls an element of `_queue`). The family is the
    class and its bases, plus with `subclasses` the classes deriving from it (for a method;
    a restored object's hooks only ever meet its own class and bases)."""
    own: dict[Node, dict[str, str]] = {}  # class -> stored key it calls -> calling method
    for name in sorted(g.mods):
        m = g.mods[name]
        for qual in sorted(m.functions):
            owner = _owner(m, qual)
            if owner is not None:
                keys = own.setdefault((owner[1], owner[2]), {})
                for key in m.functions[qual].calls_stored:
                    keys.setdefault(key, label(m.name, qual))
    family: dict[Node, dict[str, str]] = {}  # a class's own, its bases' and subclasses' calls
    for cls in sorted(own):
        mro = [(b[1], b[2]) for b in g.r.mro(("class", *cls)) if b[0] == "class"]
        for base in mro:
            into = family.setdefault(base, {})
            for key, caller in own[cls].items() if subclasses else ():
                into.setdefault(key, caller)
            for key, caller in own.get(base, {}).items():
                family.setdefault(cls, {}).setdefault(key, caller)
    found: dict[Node, tuple[str, ...]] = {}
    params: dict[Node, set[str]] = {}  # the parameters a node dispatches
    for name in sorted(g.mods):
        m = g.mods[name]
        for qual in sorted(m.functions):
            f, node = m.functions[qual], (m.name, qual)
            owner = _owner(m, qual)
            calls = family.get((owner[1], owner[2]), {}) if owner else {}
            # state a BUILD restores is the object's own data: its item protocol forwarded
            # there is not a callable handed over (only calls count for __setstate__)
            setstate = qual.rsplit(".", 1)[-1] == "__setstate__"
            hit = sorted(
                k for k in f.stores if k in calls and not (setstate and k.startswith(SUBSCRIPTED))
            )
            if f.params_called:
                found[node] = (label(*node),)
            elif hit:
                found[node] = (label(*node), calls[hit[0]])
            if f.params_called or hit:
                params[node] = {*f.params_called, *(p for k in hit for p in f.stores[k])}
    reverse: dict[Node, list[tuple[Node, dict[str, list[str]]]]] = {}
    for node in sorted(g.param_edges):
        for target, slots in g.param_edges[node]:
            reverse.setdefault(target, []).append((node, slots))
    queue = deque(sorted(found))
    while queue:
        node = queue.popleft()
        callee = g.mods[node[0]].functions[node[1]]
        skip = 1 if callee.params[:1] in (["self"], ["cls"]) and "." in node[1] else 0
        for src, slots in reverse.get(node, ()):
            got: set[str] = set()
            for slot, origins in slots.items():
                i = skip + int(slot) if slot.isdigit() else -1
                param = callee.params[i] if 0 <= i < len(callee.params) else slot
                if i >= len(callee.params) and callee.vararg:
                    param = callee.vararg  # `ChainMap(kws, mapping)` fills `*maps`
                if param in params[node]:
                    got.update(origins)  # the argument for a dispatched parameter
            if not got - params.get(src, set()) or len(found[node]) >= _DISPATCH_LEN:
                continue
            found.setdefault(src, (label(*src), *found[node]))
            params.setdefault(src, set()).update(got)
            queue.append(src)
    return found


def _owner(m: ModuleInfo, qual: str) -> Ref | None:
    """The class a method is defined in (what `self`/`cls` and `super()` resolve against)."""
    owner = qual.rsplit(".", 1)[0] if "." in qual else ""
    return ("class", m.name, owner) if owner in m.classes else None


def module_symbols(m: ModuleInfo, r: Resolver) -> tuple[dict[str, tuple[str, str, str]], list[str]]:
    """Every name the module binds (plus class members) -> (kind, origin module, origin qual)."""
    names: dict[str, tuple[str, str, str]] = {}
    opaque_stars: list[str] = []
    for name in sorted(m.bindings):
        ref = r.resolve(m.name, (name,))
        if ref is None:
            binding = m.bindings[name]
            if binding[0] == B_FROM:  # origin outside this build: resolved at lookup time
                ref = ("unresolved", binding[1], binding[2])
            elif binding[0] == B_IMPORT:
                ref = ("module", binding[1], "")
            else:
                continue
        names[name] = ref
    for qual in sorted(m.classes):
        names.setdefault(qual, ("class", m.name, qual))
        for member in sorted(m.classes[qual].members):
            ref = r.member(("class", m.name, qual), (member,), 0)
            if ref is not None:
                names[f"{qual}.{member}"] = ref
    for star in m.stars:
        sm = r.mods.get(star)
        if sm is None or sm.opaque:
            opaque_stars.append(star)
            continue
        for name in sorted(r.exports(star)):
            if name not in names:
                ref = r.resolve(star, (name,))
                if ref is not None:
                    names[name] = ref
    return names, opaque_stars


def analyse(modules: Iterable[ModuleInfo], external: object = None) -> tuple[Resolver, Graph]:
    mods: dict[str, ModuleInfo] = {}
    for m in modules:
        mods.setdefault(m.name, m)  # the first source providing a module wins
    resolver = Resolver(mods)
    return resolver, Graph(mods, resolver)


__all__ = ["CALL_RO", "HOOKS", "MAX_HOPS", "Graph", "analyse", "module_symbols"]
