"""Sink calls judged by what this call site hands them (issue #15; arguments from callsites.py).

- `getattr(owner, "name")` with a literal name is the global `<owner>.name`, as if the pickle
  imported it: through the denylist and the index exactly like a GLOBAL of that name (a sink
  stays malicious; a method reaching no sink is a low FS111; a name nobody lists is FS103, or
  FS112 when the result is applied to text). The owner is a global (class or module), an
  object a call made from a class (`Figure.__new__(Figure)`), whose methods are the class's, or
  the result of a reviewed callable of fixed type (`re._compile(...)`: knowledge.RESULT_TYPES).
- `partial(f, ...)` and a callback dispatcher (an index reach that only calls a callable the
  pickle hands it) are judged by every callable handed at the call site: the call's arguments
  and the state BUILD gives its result (`partial.__setstate__` replaces func/args). All of them
  allowlisted or index-inert -> low; a sink, an unlisted name, a computed or unseen value -> as
  before (the dispatcher may run it). A partial of an unlisted function the load never calls is
  low too (kept.py).
- An index reach ending only in sinks that run text (exec, import) is low when no text reaches
  the call; one running only through a nested loader is judged by the bytes its state holds
  (`nested_loaders.state_content`).
Without a site (a carried nested pickle the walk does not read, a walk past its budget) nothing
here applies and the callers keep their older, string-based grading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from .. import findings as R
from ..facts import (
    ARG_BYTES,
    ARG_CALL,
    ARG_CONTAINER,
    ARG_GLOBAL,
    ARG_OPAQUE,
    ARG_STR,
    CallSite,
    StreamFacts,
)
from ..findings import Severity
from . import indexed, kept, nested_loaders
from .call_shapes import (
    _CODECS_ENCODE,
    _NON_STRING_HELPERS,
    _SINK_ATTRIBUTES,
    _VALUE_TYPES,
    INSTANTIATING,
    AsGlobal,
    last_segment_is_class,
)
from .callsites import (
    VALUE,
    Box,
    Call,
    Data,
    Glob,
    Keys,
    Sites,
    Stored,
    StreamSites,
    Text,
    walk_values,
)
from .held import dispatches_now, index_inert, object_class_inert, operand_caller
from .knowledge import CALLBACK_DISPATCH, Classification, result_type
from .literals import inert_as_code, reads_as_command
from .nested_loaders import Visible
from .ruleset import RuleSet

GETATTR = "builtins.getattr"
# Sinks that run text as code or import it by name: without text they have nothing to run.
TEXT_SINKS = frozenset({"exec_sink", "import_resolver"})
PARTIAL = "functools.partial"
# Argument kinds that may hold a callable an __init__ stores as an attribute.
_MAY_BE_CALLABLE = ARG_CONTAINER | ARG_GLOBAL | ARG_CALL | ARG_OPAQUE
_MAX_FOLLOWED = 100_000  # calls followed through one global's arguments
# Makers whose results are plain values, never callables (their instances define no __call__).
_PLAIN_MAKERS = (
    _VALUE_TYPES | _NON_STRING_HELPERS | _CODECS_ENCODE | {"builtins.object", "builtins.str"}
)


def dispatcher_only(cls: Classification | None) -> bool:
    """An index-known callable whose every load-time reach is callback dispatch (a `method`
    reach, a connection a public method opens, is the application's to run, not the loader's:
    dask's `Array.compute`)."""
    if cls is None or cls.is_dangerous or cls.pinned:
        return False
    reaches = [r for r in cls.reaches if r.hook != indexed.LAZY_REACH]
    return bool(reaches) and all(r.category == CALLBACK_DISPATCH for r in reaches)


class Handed:
    """Per-stream judge of sink call sites by their recorded arguments."""

    def __init__(
        self,
        facts: StreamFacts,
        classes: Sequence[Classification | None],
        rules: RuleSet,
        sites: Sites,
        *,
        dangerous_attributes: frozenset[str] = frozenset(),
        keys: Keys | None = None,
        stored: Stored | None = None,
    ) -> None:
        self.facts, self.classes, self.rules, self.sites = facts, classes, rules, sites
        self._sink_names = dangerous_attributes
        self._keys = keys if keys is not None else {}
        self._stored = stored if stored is not None else {}

    @cached_property
    def kept(self) -> kept.Kept:
        """The judge of partials by what the load does with them (kept.py)."""
        return kept.Kept(self.facts, self.classes, self.sites, self._stored, self._global_at)

    @cached_property
    def _global_at(self) -> dict[int, int]:
        return {g.offset: i for i, g in enumerate(self.facts.globals)}

    @cached_property
    def _call_at(self) -> dict[int, int]:
        return {c.offset: k for k, c in enumerate(self.facts.calls) if c.opcode != "BUILD"}

    @classmethod
    def for_stream(
        cls,
        facts: StreamFacts,
        classes: Sequence[Classification | None],
        rules: RuleSet,
        sites: StreamSites | None,
        visible: Visible | None,
    ) -> tuple[Handed | None, Visible | None]:
        """The judge of a stream with walked sites (None without), and `visible` (the nested
        loader calls over literal bytes) with the `_codecs.encode` ones those sites show."""
        if sites is None:
            return None, visible
        sink_names = _SINK_ATTRIBUTES | frozenset(rules.knowledge.dangerous_attributes)
        names = [c.resolved if c is not None else "" for c in classes]
        seen = nested_loaders.visible_sites(facts, sites.sites, names)
        if seen:
            visible = {**(visible or {}), **seen}
        judge = cls(
            facts,
            classes,
            rules,
            sites.sites,
            dangerous_attributes=sink_names,
            keys=sites.keys,
            stored=sites.stored,
        )
        return judge, visible

    def has(self, call: CallSite) -> bool:
        return call.offset in self.sites

    # -- getattr ------------------------------------------------------------------------------

    def getattr_as_global(self, k: int) -> AsGlobal | None:
        """Call `k` (a getattr) judged as the global it fetches; None when that is a sink, the
        name or the owner is not a literal the walk saw, or the owner is no class/module."""
        call = self.facts.calls[k]
        site = self.sites.get(call.offset)
        if site is None or len(site.args) not in (2, 3):
            return None
        owner, attr = site.args[0], site.args[1]
        if not (isinstance(attr, Text) and attr.text and attr.text.isidentifier()):
            return None
        if attr.text in self._sink_names:
            return None
        target = self._owner(owner, attr.text)
        if target is None:
            return None
        module, qual = target
        hit = self.rules.classify(module, f"{qual}.{attr.text}")
        name = f"{module}.{qual}.{attr.text}"
        if self._reviewed_class(module, qual):
            return self._member_of_reviewed(name, hit, self._called(k))
        if dispatcher_only(hit):
            note = self._result_dispatch(k)
            if note:
                return AsGlobal(name, R.REACHES_SINK, Severity.LOW, f"a dispatcher, {note}")
        return _as_global(name, hit, self._applied(k, attr.text), self._called(k))

    def _reviewed_class(self, module: str, qual: str) -> bool:
        """An exact allowlist entry (dict, HTTPStatus, ZoneInfo), not a module wildcard."""
        cls = self.rules.classify(module, qual)
        return cls.is_safe and not cls.dotted and not cls.entry_id.endswith(":*")

    @staticmethod
    def _member_of_reviewed(name: str, hit: Classification, called: bool) -> AsGlobal | None:
        """A member of a reviewed class: a value (an enum member) unless the member is a sink
        itself (`Path.write_text`; the wildcard of the class's module does not count: the
        class's own entry says its members are values); called, it must be allowlisted or
        index-inert Python (`ZoneInfo.from_file` is C that reads any path: stays a sink)."""
        if hit.is_dangerous and not hit.entry_id.endswith(":*"):
            return None
        if not called:
            return AsGlobal(name, R.KNOWN_BY_INDEX, Severity.LOW, "a member of a reviewed class")
        if hit.is_safe and not hit.is_dangerous:
            return AsGlobal(name, R.KNOWN_BY_INDEX, Severity.LOW, "allowlisted")
        if not hit.is_dangerous and index_inert(hit):
            return AsGlobal(name, R.KNOWN_BY_INDEX, Severity.LOW, indexed.describe(hit))
        return None

    def _called(self, k: int) -> bool:
        """The getattr's result is called, or wrapped by a partial (there to be called)."""
        return any(
            (c.callable_is_call and c.callable_call_index in (k, -1))
            or (c.first_arg_call == k and self._resolved(c.callable_index) == PARTIAL)
            for c in self.facts.calls
        )

    def _owner(self, value: Any, attr: str) -> tuple[str, str] | None:
        """(module, qualname) whose attribute `attr` getattr reads: a global, the class of an
        object a call instantiated (NEWOBJ/OBJ/INST, REDUCE of a class, a reconstructor) whose
        state does not name `attr` (an instance attribute shadows the class's), or the type of
        a reviewed callable's result given no state (`result_type`)."""
        if isinstance(value, Box):
            return "builtins", value.kind  # a literal list/dict/set/tuple: the builtin's methods
        if isinstance(value, Glob):
            i = self._global_at.get(value.offset, -1)
        elif isinstance(value, Call):
            i = self._made_by(value.offset)
            if i < 0:
                k = self._call_at.get(value.offset, -1)
                c = self.facts.calls[k] if k >= 0 and value.offset not in self._keys else None
                return result_type(self._class_of(c.callable_index)) if c is not None else None
            if self._may_shadow(value, attr):
                return None  # its state may set that attribute: the instance's own value
        else:
            return None
        cls = self.classes[i] if i >= 0 and self.facts.globals[i].resolved else None
        if cls is None or cls.is_dangerous:
            return None
        g = self.facts.globals[i]
        return g.module, g.name

    def _may_shadow(self, value: Call, attr: str) -> bool:
        """The object `value` may hold its own `attr` (what getattr then returns): a BUILD
        state names it or is no plain dict, or the call that made it passed arguments an
        `__init__` could store (anything but text, numbers and None)."""
        names = self._keys.get(value.offset, frozenset())
        if names is None or attr in names:
            return True
        made = self.facts.calls[self._call_at[value.offset]]
        if made.opcode in ("NEWOBJ", "NEWOBJ_EX"):
            return False  # __new__ alone: no __init__ stores its arguments
        if self._resolved(made.callable_index) in indexed.RECONSTRUCTORS:
            # (cls, base, state): base.__init__(obj, state) may store what `state` holds
            return bool(made.arg_kinds & (_MAY_BE_CALLABLE & ~ARG_GLOBAL))
        return bool(made.arg_kinds & _MAY_BE_CALLABLE)

    def _made_by(self, offset: int) -> int:
        k = self._call_at.get(offset, -1)
        c = self.facts.calls[k] if k >= 0 else None
        cls = self._class_of(c.callable_index) if c is not None else None
        if c is None or cls is None:
            return -1
        if cls.resolved in indexed.RECONSTRUCTORS:
            return c.first_arg_global
        if c.opcode in INSTANTIATING or (c.opcode == "REDUCE" and cls.kind == "class"):
            return c.callable_index
        return -1  # a function's result: its type is not known

    def _applied(self, k: int, attr: str) -> bool:
        """The getattr's result is thrown away, or called on str/bytes (a command runner) other
        than as a class-shaped name constructs (`_constructs`)."""
        calls = self.facts.calls
        if calls[k].discarded:
            return True
        return any(
            c.callable_is_call
            and c.callable_call_index == k
            and c.arg_kinds & (ARG_STR | ARG_BYTES)
            and not self._constructs(j, attr)
            for j, c in enumerate(calls)
        )

    def _constructs(self, j: int, attr: str) -> bool:
        """Call `j` of `getattr(owner, attr)` builds a value as the same name imported by
        STACK_GLOBAL does (unknown_calls.StreamShapes: a class-shaped name called, its result
        kept, is a construction). Protocols < 4 pickle a nested class `Outer.Inner` as that
        getattr, so an enum member is `getattr(Outer, "Inner")("value")`. Only when `attr` is
        class-shaped, the result is neither discarded nor called, and the call is handed no
        bytes and no string that reads as a command or that the walk did not see."""
        calls = self.facts.calls
        c = calls[j]
        if not last_segment_is_class(attr) or c.discarded or c.arg_kinds & ARG_BYTES:
            return False
        site = self.sites.get(c.offset)
        if site is None or any(d.callable_is_call and d.callable_call_index == j for d in calls):
            return False
        for v in walk_values(site.args, _MAX_FOLLOWED):
            if isinstance(v, Text):
                if v.text is None or v.loads or reads_as_command(v.text):
                    return False
            elif v is not VALUE and not isinstance(v, Glob):
                return False  # bytes, a call's result, anything computed: applied as before
        return True

    # -- partial and dispatchers --------------------------------------------------------------

    def partial(self, call: CallSite) -> str | None:
        """Why partial call `call` is benign; None when it is not shown benign here."""
        site = self.sites.get(call.offset)
        if site is None or not site.args:
            return None
        f = site.args[0]
        if isinstance(f, Call):
            k = self._call_at.get(f.offset, -1)
            producer = self.facts.calls[k] if k >= 0 else None
            if producer is None or self._resolved(producer.callable_index) != GETATTR:
                return None
            judged = self.getattr_as_global(k)
            return None if judged is None else f"wrapping the method {judged.name}"
        i = self._global_at.get(f.offset, -1) if isinstance(f, Glob) else -1
        if i < 0 or not dispatcher_only(self.classes[i]):
            return self.kept.note(call.offset)  # an unlisted function: judged by its uses
        handed = self._handed_at(self._call_at[call.offset], 1, exclude=f)
        if handed is None:
            return None
        return f"wrapping {self.facts.globals[i].qualname}, a dispatcher handed only {handed}"

    def dispatch(self, index: int, *, held: bool = False) -> str:
        """Why dispatcher global `index` runs nothing dangerous here ("" when not shown): every
        load-time use of it (called, rebuilt by a reconstructor, wrapped by a partial, handed
        first to an allowlisted or index-inert callable, then BUILD) hands it only inert
        callables, or the pickle only references it. `held`: an index dispatcher, which keeps
        what it is handed; reviewed operand callers count as inert there (`inert_handed`)."""
        return self._consumers(
            [k for k, c in enumerate(self.facts.calls) if c.callable_index == index],
            [k for k, c in enumerate(self.facts.calls) if c.first_arg_global == index],
            Glob(self.facts.globals[index].offset),
            held,
        )

    def dispatcher_now(self, index: int, cls: Classification) -> str:
        """`dispatch` for a reviewed dispatcher that calls what it is handed while it runs and
        nothing else (DISPATCH_NOW); "" for any other sink."""
        if cls.category != CALLBACK_DISPATCH or not dispatches_now(cls.resolved):
            return ""
        note = self.dispatch(index)
        return f"handed only what it may call: {note}" if note else ""

    def reach_note(
        self,
        index: int,
        cls: Classification,
        hooks_run: frozenset[str],
        clean: Callable[[StreamFacts], bool],
    ) -> str:
        """Why an index reach of global `index` runs nothing the pickle chose ("" when not
        shown): a dispatcher handed only inert callables, a class whose hooks reach sinks only
        through a nested loader handed only clean nested pickles (`clean` judges one), or a
        text sink handed no text."""
        if dispatcher_only(cls):
            note = self.dispatch(index, held=True)
            return f"a callback dispatcher, {note}" if note else ""
        loader = nested_loaders.loads_through_hooks(self.rules, cls, hooks_run)
        if loader:
            content = nested_loaders.state_content(
                index, self.facts, self.classes, self.sites, clean
            )
            return (
                f"its hooks reach sinks only through {loader}, handed {content}" if content else ""
            )
        return self.textless(index, [r for r in cls.reaches if r.hook in hooks_run])

    def textless(self, index: int, reaches: Sequence[Any]) -> str:
        """Why global `index`, whose `reaches` (those its hooks run) end in sinks that run text
        (sympy's `Rational.__new__ -> sympify -> parse_expr -> eval`), has no text to run: at
        every call of it, its arguments and BUILD state, followed through every call that built
        them (an object's str() may be its state's text), hold numbers, None, globals and names
        (`literals.inert_as_code`: a Symbol's name) only.
        "" when some text, bytes or unseen value reaches it, or a reach ends elsewhere."""
        if not reaches or any(r.category not in TEXT_SINKS for r in reaches):
            return ""
        calls = self.facts.calls
        values: list[Any] = []
        for _k, c in enumerate(calls):
            if c.opcode == "BUILD":
                continue
            skip = 0 if c.callable_index == index else 1
            if skip and (
                c.first_arg_global != index
                or self._resolved(c.callable_index) not in (indexed.RECONSTRUCTORS)
            ):
                if c.first_arg_global == index:
                    return ""  # handed to something that may call it with anything
                continue
            site = self.sites.get(c.offset)
            if site is None:
                return ""
            values.extend((*site.args[skip:], *site.states))
        if not values:
            return ""
        seen: set[int] = set()
        while values:
            follow: list[Any] = []
            for leaf in walk_values(values):
                if leaf is VALUE or (isinstance(leaf, Glob) and self._code_global(leaf)):
                    continue
                if isinstance(leaf, Text) and leaf.text is not None and inert_as_code(leaf.text):
                    continue  # a name or a number: run as code, it calls nothing
                if not isinstance(leaf, Call) or len(seen) > _MAX_FOLLOWED:
                    return ""  # text, bytes or an unseen value
                if leaf.offset in seen:
                    continue
                seen.add(leaf.offset)
                site = self.sites.get(leaf.offset)
                if site is None:
                    return ""
                follow.extend((*site.args, *site.states))
            values = follow
        return f"every call hands it numbers, names and objects built of them ({len(seen)} calls)"

    def _result_dispatch(self, k: int) -> str:
        """`dispatch` for the value call `k` returned (a dispatcher method getattr fetched)."""
        calls = self.facts.calls
        return self._consumers(
            [j for j, c in enumerate(calls) if c.callable_is_call and c.callable_call_index == k],
            [j for j, c in enumerate(calls) if c.first_arg_call == k],
            Call(calls[k].offset),
        )

    def _consumers(
        self, called: list[int], first_of: list[int], itself: Any, held: bool = False
    ) -> str:
        notes: list[str] = []
        for k in called:
            if self.facts.calls[k].opcode == "BUILD":
                continue
            notes.append(self._handed_at(k, 0, itself, held) or "")
        for k in first_of:
            c = self.facts.calls[k]
            if c.opcode == "BUILD" or not self._builds_with(c.callable_index):
                return ""  # handed to something else, which may call it with anything
            notes.append(self._handed_at(k, 1, itself, held) or "")
        if not notes:
            if self._globals_to_unreviewed():
                return ""  # an unlisted callable handed globals may be what calls it
            return "referenced, never called by the pickle"
        if not all(notes):
            return ""
        return f"every call hands it only {notes[0]}"

    def _globals_to_unreviewed(self) -> bool:
        """Some call hands a global to a callable nobody reviewed or indexed as inert."""
        for c in self.facts.calls:
            if c.opcode == "BUILD" or not c.arg_kinds & ARG_GLOBAL:
                continue
            made = self._class_of(c.callable_index)
            if made is None or not (made.is_safe or made.is_dangerous or index_inert(made)):
                return True
        return False

    def _builds_with(self, index: int) -> bool:
        """A callable handed a dispatcher first that can only hand it what this call hands it:
        partial, a reconstructor, or an allowlisted or index-inert callable (toolz's
        `_restore_curry(curry, func, args, ...)`), which runs no sink of its own."""
        what = self._resolved(index)
        if what == PARTIAL or what in indexed.RECONSTRUCTORS:
            return True
        made = self._class_of(index)
        return made is not None and not made.is_dangerous and (made.is_safe or index_inert(made))

    def _handed_at(self, k: int, skip: int, exclude: Any, held: bool = False) -> str | None:
        """`inert_handed` over what call `k` passes on: its arguments after the first `skip`,
        the state BUILD gives its result, and the arguments of every call of that result (a
        partial is there to be called)."""
        calls = self.facts.calls
        site = self.sites.get(calls[k].offset)
        if site is None:
            return None
        values = [*site.args[skip:], *site.states]
        for c in calls:
            if c.callable_is_call and c.callable_call_index == k:
                later = self.sites.get(c.offset)
                if later is None:
                    return None
                values.extend((*later.args, *later.states))
        return self.inert_handed(values, exclude, held)

    def inert_handed(
        self, values: Sequence[Any], exclude: Any = None, held: bool = False
    ) -> str | None:
        """Names of the callables among `values` when each is allowlisted or index-inert and
        nothing else there could be called (a call result, an unseen value); None otherwise.
        `exclude`: the dispatcher itself (a partial's state names its own func again).
        `held`: values an index dispatcher keeps; a reviewed operand caller among them (a
        non-sink callback_dispatch entry: `len`, `sorted`, `operator.mul`, which call only what
        they are applied to, or its dunders) is inert too, since what the held callable is
        applied to at load comes from the calls of the result, which are among `values`."""
        names: list[str] = []
        todo, seen, steps = list(values), set(), 0
        while todo:
            leaf, steps = todo.pop(), steps + 1
            if steps > _MAX_FOLLOWED:
                return None  # too much to judge: fail closed
            if isinstance(leaf, Box):
                todo.extend(leaf.items)
                continue
            if leaf is VALUE or isinstance(leaf, (Text, Data)) or leaf == exclude:
                continue
            if isinstance(leaf, Call) and self._plain_value(leaf):
                continue
            if isinstance(leaf, Call) and held and leaf.offset not in seen:
                built = self._built_of(leaf)  # held objects: judged by what built them
                if built is not None:
                    seen.add(leaf.offset)
                    todo.extend(built)
                    continue
            if not isinstance(leaf, Glob):
                return None  # a computed or unseen value: it may be any callable
            i = self._global_at.get(leaf.offset, -1)
            if isinstance(exclude, Glob) and i >= 0 and self._same(i, exclude):
                continue  # the dispatcher imported again
            cls = self.classes[i] if i >= 0 else None
            if cls is None or cls.is_dangerous:
                return None
            if not (cls.is_safe or index_inert(cls) or (held and operand_caller(cls))):
                return None
            names.append(self.facts.globals[i].qualname)
        uniq = sorted(set(names))
        if not uniq:
            return "data (no callable)"
        shown = ", ".join(uniq[:3]) + (f" (+{len(uniq) - 3})" if len(uniq) > 3 else "")
        return f"inert callables ({shown})"

    def _built_of(self, value: Call) -> list[Any] | None:
        """The arguments and BUILD state an object was made of, when its class can run only
        what it holds (`held.object_class_inert`); None otherwise."""
        k = self._call_at.get(value.offset, -1)
        if k < 0 or self.facts.calls[k].callable_is_call:
            return None
        c = self.facts.calls[k]
        skip = 1 if self._resolved(c.callable_index) in indexed.RECONSTRUCTORS else 0
        made = self._class_of(c.first_arg_global if skip else c.callable_index)
        site = self.sites.get(c.offset)
        if site is None or made is None:
            return None
        instantiated = bool(skip) or c.opcode in INSTANTIATING
        if not object_class_inert(made, self.rules.classify, instantiated):
            return None
        return [*site.args[skip:], *site.states]

    def _code_global(self, value: Glob) -> bool:
        """A class or function (its str() is its name), not a constant that may be text."""
        i = self._global_at.get(value.offset, -1)
        cls = self.classes[i] if i >= 0 else None
        if cls is None or cls.is_dangerous:
            return False
        return cls.kind in indexed.CALLABLE or (cls.is_safe and last_segment_is_class(cls.resolved))

    def _same(self, i: int, other: Glob) -> bool:
        j = self._global_at.get(other.offset, -1)
        return j >= 0 and self._resolved(i) == self._resolved(j) != ""

    def _plain_value(self, value: Call) -> bool:
        """A call result that is no callable: made by a reviewed value type (`object()`, a
        datetime, an int) or array helper, or protocol <= 2 bytes (`_codecs.encode`)."""
        k = self._call_at.get(value.offset, -1)
        if k < 0 or self.facts.calls[k].callable_is_call:
            return False
        c = self.facts.calls[k]
        if self._resolved(c.callable_index) in indexed.RECONSTRUCTORS:
            return self._resolved(c.first_arg_global) in _PLAIN_MAKERS  # object.__new__(object)
        return self._resolved(c.callable_index) in _PLAIN_MAKERS

    def _class_of(self, index: int) -> Classification | None:
        return self.classes[index] if 0 <= index < len(self.classes) else None

    def _resolved(self, index: int) -> str:
        return cls.resolved if (cls := self._class_of(index)) is not None else ""


def _as_global(name: str, hit: Classification, applied: bool, called: bool) -> AsGlobal | None:
    """The finding a GLOBAL `name` classified as `hit` would raise (engine's per-global
    grading, restated for a name no opcode imports); None for a sink (stays malicious)."""
    if hit.is_dangerous:
        return None
    if hit.is_safe:
        return AsGlobal(name, R.KNOWN_BY_INDEX, Severity.LOW, "allowlisted")
    if hit.index == indexed.UNDEFINED:
        return AsGlobal(name, R.UNDEFINED_IN_INDEX, None, hit.reason)
    if hit.index == indexed.KNOWN and not hit.pinned and hit.reaches:
        reach = min(hit.reaches, key=lambda r: len(r.path))
        if not indexed.long_reach(reach):
            return None  # a method that reaches a sink: as malicious as the sink
        path = " -> ".join(reach.path)
        return AsGlobal(name, R.REACHES_SINK, Severity.SUSPICIOUS, f"[{reach.category}] {path}")
    if hit.index == indexed.KNOWN and (index_inert(hit) or (hit.kind == "builtin" and not called)):
        # a called builtin is C the index cannot read (ZoneInfo.from_file): unlisted below
        return AsGlobal(name, R.KNOWN_BY_INDEX, Severity.LOW, indexed.describe(hit))
    if hit.entry_id:
        return AsGlobal(name, R.REVIEWED_UNKNOWN, None, f"[{hit.category}] {hit.reason}")
    if applied:
        return AsGlobal(name, R.UNKNOWN_APPLIED, None, "not in the reviewed allowlist, applied")
    return AsGlobal(name, R.UNKNOWN_GLOBAL, None, "not in the reviewed allowlist")


__all__ = ["AsGlobal", "Handed", "dispatcher_only", "dispatches_now"]
