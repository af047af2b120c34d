"""Names judged through the ecosystem index (`fastscan.index`): what the loader runs at load time.

The reviewed rule base stays the first authority; the index adds knowledge on top of it:
- a reviewed dangerous name stays dangerous (except a class the index read under a module-wide
  network entry, graded by the index while the pickle only restores it: `yield_to_index`);
  an exact safe entry stays safe, and a reviewed
  neither-safe-nor-sink entry keeps its grading (the index's reach paths are still shown by
  `explain`, so a reviewer can revisit them);
- an alias is judged by its origin: `sklearn.callback._progressbar.Thread` is `threading.Thread`,
  whatever the `sklearn` class rule says about the spelling;
- a name the index resolves carries its kind, package and load-time reach (hook -> sink paths);
  the engine grades it dangerous when a reach fires for the hook the pickle invokes (`hooks`);
- a name in an indexed module that the module does not define is `undefined` (suspicious);
- a module the index does not know keeps the rule base's answer unchanged.

`fastscan.index` is imported lazily (`shipped_index`, `load_user_indexes`), so processes that
scan without an index never load it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..facts import StreamFacts
from ..opcodes import BY_NAME
from .knowledge import CALLBACK_DISPATCH, NETWORK, UNKNOWN, Classification

if TYPE_CHECKING:
    from ..index import Index, Reach, Symbol

KNOWN = "known"  # Classification.index: the index resolves the name
# Kinds whose code the index analysed: calling a module or a constant runs unknown code.
CALLABLE = frozenset({"class", "function", "builtin"})
UNDEFINED = "undefined"  # ... the module is indexed but does not define the name

# Module-wide deny categories whose classes yield to the index (issue #15). A `network` wildcard
# names a module for its callables that fetch or send (requests.get, urlopen,
# HTTPConnection.request): restoring one of its classes runs only that class's hooks, which the
# index read. Not filesystem_write: its modules keep objects whose lifecycle writes or deletes
# outside any hook the index follows (tempfile._TemporaryFileCloser unlinks its name in __del__,
# logging handlers are flushed and closed by logging.shutdown at exit), and its benign data
# classes (ZipInfo, TarInfo, LogRecord) are not what mirrors hold. Not process, exec, loaders,
# dispatch or introspection: there the module itself is the capability.
YIELDING_CATEGORIES = frozenset({NETWORK})
# Methods the loader may run that the index does not follow (store.HOOKS): BUILD looks
# __setstate__ up through __getattr__/__getattribute__ (xmlrpc.client.ServerProxy answers any
# name with a remote call), sets slot state through __setattr__, and __del__ runs when the
# object is dropped (urllib.request.URLopener deletes its temp files). Defined in Python: no yield.
UNFOLLOWED_METHODS = ("__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__del__")
# Run by an __init__ a decorator generates (dataclasses, attrs), which the index cannot read.
GENERATED_INIT_CALLS = ("__post_init__", "__attrs_post_init__")
# Hooks that construct the object: the class's own __init__ (or every hook, when the pickle
# hands the class to something that may call it). The index misses work an __init__ does through
# attributes it set (huggingface_hub's CommitScheduler: `self.api.create_repo`, a thread, an
# atexit upload), so a yielded class the pickle constructs keeps the wildcard's answer; restoring
# one (NEWOBJ, copyreg reconstructors, BUILD) runs only __new__ and __setstate__.
CONSTRUCTING = frozenset({"init", "call"})


def shipped_index() -> Index | None:
    """The index shipped in the package, or None when this build has none."""
    try:
        from ..index import shipped_index as load
    except ImportError:
        return None
    try:
        return load()
    except FileNotFoundError:  # a source checkout before `python -m fastscan.index.ship`
        return None


def load_user_indexes(paths: Sequence[str], base: Index | None) -> Index | None:
    """`base` combined with the index files at `paths` (a user's own packages)."""
    if not paths:
        return base
    from ..index import combine, load_index

    loaded = [load_index(p) for p in paths]
    return combine(*loaded, *([base] if base is not None else []))  # a user's file wins


def split_origin(index: Index, origin: str) -> tuple[str, str]:
    """`a.b.C.m` -> ("a.b", "C.m"): the longest prefix the index knows as a module."""
    if ":" in origin:
        module, _, qualname = origin.partition(":")
        return module, qualname
    parts = origin.split(".")
    for k in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:k])
        if index.has_module(module):
            return module, ".".join(parts[k:])
    module, _, qualname = origin.rpartition(".")
    return module, qualname


def judge(
    index: Index,
    ruled: Classification,
    module: str,
    name: str,
    rules: Callable[[str, str], Classification],
) -> Classification:
    """`ruled` (the rule base's answer for module.name) with what the index knows added."""
    spelled = module if index.has_module(module) else ""
    if not spelled and ruled.resolved:  # e.g. `posix` normalised to `os` by the rule base
        head, _, _tail = ruled.resolved.rpartition(".")
        if head != module and index.has_module(head):
            spelled, name = head, ruled.resolved[len(head) + 1 :]
    if not spelled:
        return ruled
    try:
        symbol = index.lookup(spelled, name)
    except (ValueError, zlib.error):  # a corrupt section of a user's file: today's treatment
        return ruled
    if symbol is None:
        if ruled.is_dangerous or ruled.pinned:
            return ruled
        head = name.partition(".")[0]
        if index.open_ended(spelled) and (head == name or index.lookup(spelled, head) is None):
            return ruled  # the module may define it at run time: unlisted, not a typo
        package = index.package_of(spelled) or spelled.split(".")[0]
        return replace(
            ruled,
            verdict_class=UNKNOWN,
            category="",
            entry_id="",
            reason=f"{spelled} is indexed ({package}) but defines no {name}",
            ref="",
            index=UNDEFINED,
            package=package,
        )
    origin = symbol.origin or f"{spelled}.{name}"
    known: dict[str, Any] = {
        # an alias whose origin lies outside the index is not knowledge about what it runs
        "index": "" if symbol.kind == "unresolved" else KNOWN,
        "package": symbol.package,
        "kind": symbol.kind,
        "origin": origin,
        "reaches": tuple(symbol.reaches),
    }
    ruled = yield_to_index(index, ruled, symbol)
    if ruled.is_dangerous or ruled.pinned or origin in (f"{spelled}.{name}", ruled.resolved):
        return replace(ruled, **known)
    # A re-export: the spelling's rules (a package-wide class rule) do not vouch for the origin.
    judged = yield_to_index(index, rules(*split_origin(index, origin)), symbol)
    if judged.is_dangerous or judged.entry_id:
        return replace(
            judged,
            reason=f"alias of {origin}: {judged.reason}",
            dotted=ruled.dotted,  # how the pickle spelled it (FS105) still counts
            through_allowlisted=ruled.through_allowlisted,
            **known,
        )
    return replace(
        ruled,
        verdict_class=UNKNOWN,
        category="",
        entry_id="",
        reason=f"alias of {origin}, which the reviewed rules do not list",
        ref="",
        **known,
    )


def yield_to_index(index: Index, ruled: Classification, symbol: Symbol) -> Classification:
    """`ruled`, or what the index alone makes of `symbol` when a module-wide deny entry of a
    YIELDING_CATEGORIES category decides it and `symbol` is a class whose load-time behaviour
    the index read in full (`readable_class`); the wildcard is kept in `denied_by`."""
    if not (
        ruled.is_dangerous
        and ruled.wildcard
        and ruled.category in YIELDING_CATEGORIES
        and readable_class(index, symbol)
    ):
        return ruled
    return replace(
        ruled,
        verdict_class=UNKNOWN,
        category="",
        entry_id="",
        reason=f"a class the index read; the module-wide {ruled.category} entry names its"
        " module for callables that fetch or send",
        ref="",
        wildcard=False,
        denied_by=ruled,
    )


def readable_class(index: Index, symbol: Symbol) -> bool:
    """`symbol` is a class the index read whose load-time hooks reach no sink (a "method" reach,
    a connection its public methods open, is not load-time) and whose loader-run methods are
    all either read or the builtins': no C base outside `builtins` (its __init__ is code the
    index did not read), no UNFOLLOWED_METHODS defined in Python, no GENERATED_INIT_CALLS that
    reach a sink."""
    if symbol.kind != "class" or any(r.hook != LAZY_REACH for r in symbol.reaches):
        return False
    module, qual = split_origin(index, symbol.origin)
    for method in (*_hook_methods(), *UNFOLLOWED_METHODS, *GENERATED_INIT_CALLS):
        try:
            found = index.lookup(module, f"{qual}.{method}")
        except (ValueError, zlib.error):
            return False
        if found is None:
            continue  # defined nowhere in the class's read MRO: object's own
        if found.kind == "builtin":
            if not found.origin.startswith("builtins."):
                return False  # a C base the index did not read (its methods answer any name)
        elif (
            found.kind != "function"
            or method in UNFOLLOWED_METHODS
            or (method in GENERATED_INIT_CALLS and found.reaches)
        ):
            return False
    return True


LAZY_REACH = "method"  # build.lazy_network's reach kind: the application calls it, not the loader


def _hook_methods() -> tuple[str, ...]:
    # lazily, from the index's store: loaded already wherever an index judges (a scan imports
    # nothing after its first file; the builder is never needed to scan)
    from ..index.store import HOOKS

    return tuple(method for _, method in HOOKS)


def denied_when_constructed(
    classes: Sequence[Classification | None], run: Sequence[frozenset[str]]
) -> list[Classification | None]:
    """`classes` with the wildcard answer restored for every yielded class the pickle constructs
    (or may: CONSTRUCTING hooks run on it)."""
    return [
        c.denied_by if c is not None and c.denied_by is not None and ran & CONSTRUCTING else c
        for c, ran in zip(classes, run, strict=True)
    ]


# What each call opcode makes the loader run on its callable (pickle.py's load_* methods).
# REDUCE calls the object: a class runs __new__ and __init__, anything else its own code.
_OPCODE_HOOKS = {
    "NEWOBJ": ("new",),
    "NEWOBJ_EX": ("new",),
    "OBJ": ("new", "init"),
    "INST": ("new", "init"),
    "BUILD": ("setstate",),
}
_CLASS_CALL = ("new", "init")
# Reconstructors that instantiate their first argument: copyreg.__newobj__(cls, *args) runs
# cls.__new__; copyreg._reconstructor(cls, base, state) runs base's (counted as cls's, failing
# closed); the pickle then BUILDs the object.
RECONSTRUCTORS = frozenset(
    {"copyreg.__newobj__", "copyreg.__newobj_ex__", "copyreg._reconstructor"}
)
# What the loader calls on an object (not a literal dict/list/set) each fill opcode targets.
FILL_HOOKS: dict[str, tuple[str, ...]] = {
    "SETITEM": ("setitem",),
    "SETITEMS": ("setitem",),
    "APPEND": ("append",),
    "APPENDS": ("append", "extend"),  # extend when the object has it, else append per item
    "ADDITEMS": ("add",),
}
_FILL_CODES = {BY_NAME[name].code: hooks for name, hooks in FILL_HOOKS.items()}
_ALL = frozenset({"call", "new", "init", "setstate", "setitem", "append", "extend", "add"})
CONTAINER_HOOKS = frozenset({"setitem", "append", "extend", "add"})
ATTRIBUTION_MAX_OPS = 2_000_000  # opcodes the attribution walk may spend on one stream
# A reach longer than this many calls (hook ... sink) is a suspicious note, not a malicious
# verdict: chosen on the corpus (README "Rule-level precision"): the index reaches 96 of the
# 107 docs/threats.md section F callables it resolves within 4 steps, while the benign
# libraries' longer reaches run through generic dispatch (sympify -> parse_expr, DataLoader ->
# graph settings).
REACH_STEPS_MAX = 4

Targets = Mapping[int, frozenset[str]]  # global's opcode offset -> container hooks run on it


def hooks(
    facts: StreamFacts,
    classes: Sequence[Classification | None],
    targets: Targets | None = None,
    stored: Mapping[int, frozenset[int]] | None = None,
) -> list[frozenset[str]]:
    """Per global of `facts`, the hooks a load of the stream can make the loader run on it.

    Container hooks (SETITEMS, APPENDS, ADDITEMS) come from `targets` when the stream's bytes
    were walked (attribute_containers); otherwise an instantiated class gets them whenever its
    stream holds those opcodes (fails closed). A global never called nor reconstructed may be
    passed to something that calls it: every hook, unless the call-site walk (`stored`:
    callsites.Stored) followed it and it is only stored as data (`stored_only`): none.
    """
    container: frozenset[str] = frozenset()
    if targets is None:
        container = frozenset(
            h for code, hs in _FILL_CODES.items() if facts.opcode_counts[code] for h in hs
        )
    out: list[set[str]] = [set() for _ in facts.globals]
    used = [False] * len(facts.globals)
    reconstructor_builds: set[int] = set()
    for c in facts.calls:
        i = c.callable_index
        if not 0 <= i < len(out):
            continue
        cls = classes[i]
        used[i] = True
        if c.opcode == "REDUCE":
            out[i].update(_CLASS_CALL if cls is not None and cls.kind == "class" else ("call",))
        else:
            out[i].update(_OPCODE_HOOKS.get(c.opcode, ()))
        if c.opcode != "BUILD":
            out[i].update(container)
        elif cls is not None and cls.resolved in RECONSTRUCTORS:
            reconstructor_builds.add(i)
    for c in facts.calls:
        i, first = c.callable_index, c.first_arg_global
        if not (0 <= i < len(out) and 0 <= first < len(out)):
            continue
        cls = classes[i]
        if cls is not None and cls.resolved in RECONSTRUCTORS:
            used[first] = True
            out[first].update(("new",), container)
            if i in reconstructor_builds:
                out[first].add("setstate")
    if targets is not None:
        for i, g in enumerate(facts.globals):
            out[i].update(targets.get(g.offset, ()))
    return [
        frozenset(h) if u else _NONE if stored_only(facts, classes, i, stored) else _ALL
        for i, (h, u) in enumerate(zip(out, used, strict=True))
    ]


_NONE: frozenset[str] = frozenset()


def stored_only(
    facts: StreamFacts,
    classes: Sequence[Classification | None],
    index: int,
    stored: Mapping[int, frozenset[int]] | None,
) -> bool:
    """Global `index` is only stored as data: the walk followed it and it is never called,
    handed to a call (any argument, a persistent id), hashed (dict key, set member), built or
    filled, and the objects whose state or items hold it are of classes the rule base or the
    index judges (allowlisted, or index-known: their own hooks get their own finding). No
    load-time hook of its class can run (issue #15: skorch's `iterator_train = DataLoader`)."""
    if stored is None:
        return False
    owners = stored.get(facts.globals[index].offset)
    if owners is None:
        return False
    if not owners:
        return True
    at = {c.offset: c for c in facts.calls if c.opcode != "BUILD"}
    for offset in owners:
        c = at.get(offset)
        if c is None or not 0 <= c.callable_index < len(classes):
            return False
        k = c.callable_index
        made = classes[k]
        if made is not None and made.resolved in RECONSTRUCTORS:
            k = c.first_arg_global  # the class copyreg rebuilds
            made = classes[k] if 0 <= k < len(classes) else None
        if made is None or made.is_dangerous or not (made.is_safe or made.index == KNOWN):
            return False
    return True


def fired(cls: Classification, hooks_run: frozenset[str]) -> Reach | None:
    """The first reach of `cls` (shortest path first) whose hook the pickle runs."""
    if cls.pinned or cls.is_dangerous:
        return None
    best: Reach | None = None
    for r in cls.reaches:
        if r.hook in hooks_run and (best is None or len(r.path) < len(best.path)):
            best = r
    return best


def long_reach(reach: Reach) -> bool:
    """Whether `reach` is too weak for a malicious verdict alone: past REACH_STEPS_MAX, or
    callback dispatch, which runs only a callable the pickle hands it (the index cannot tell
    whether it does; the rule base grades reviewed dispatchers suspicious for the same reason)."""
    return len(reach.path) > REACH_STEPS_MAX or reach.category == CALLBACK_DISPATCH


def no_sink(cls: Classification, ran: frozenset[str]) -> str:
    """Why a known name is not a sink here: it reaches none, or not by the hooks that run."""
    if not cls.reaches:
        return ", reaches no sink"
    if not ran:
        return ", referenced only: stored as data, never called nor handed to a call (no hook runs)"
    needs = ", ".join(sorted({r.hook for r in cls.reaches}))
    runs = ", ".join(sorted(ran)) or "none"
    return f", reaches sinks only by hooks this pickle does not run ({needs}; runs {runs})"


def describe(cls: Classification) -> str:
    """One line of what the index knows about a classified name (explain, messages)."""
    if cls.index == UNDEFINED:
        return f"index: {cls.reason}"
    if cls.index != KNOWN:
        return "index: module not indexed"
    alias = f", alias of {cls.origin}" if cls.origin and cls.origin != cls.resolved else ""
    text = f"index: {cls.kind or '?'} of {cls.package or '?'}{alias}"
    if cls.pinned and cls.reaches:
        text += " (reviewed safe entry wins over the reach below)"
    return text


__all__ = [
    "KNOWN",
    "REACH_STEPS_MAX",
    "RECONSTRUCTORS",
    "UNDEFINED",
    "YIELDING_CATEGORIES",
    "denied_when_constructed",
    "describe",
    "fired",
    "hooks",
    "judge",
    "load_user_indexes",
    "long_reach",
    "no_sink",
    "shipped_index",
    "split_origin",
    "yield_to_index",
]
