"""Partials the load keeps and never calls (issue #15: skorch's `partial(optimizer_setter)` and
spaCy's `partial(_get_attr_unless_lookup, lower, {...})` when nobody indexed their library).

`functools.partial(f, *args)` runs nothing when it is built: `f` runs when the partial object is
called. So a partial whose function is a name nobody listed (no reviewed entry, no index reach)
is judged by what the load does with the object, followed by the call-site walk (`watched`:
callsites' `watch` follows the partial's result like a global):
- never handed to a call (not called, not a first or later argument, not hashed, not a
  persistent id), only stored as data, directly or inside objects whose classes call nothing
  they hold (allowlisted, index-known without a callback-dispatch reach, or unlisted: their
  hooks are nobody's knowledge, and they get their own finding) -> the partial is low;
- anything else (called, handed on, held by a dispatcher, a walk past its budget) keeps the
  older grading (malicious: the partial may run a novel sink).
A sink or an index gadget anywhere in what the partial is handed keeps it malicious whatever
happens to it (threat matrix E7), and the wrapped function keeps its own finding, judged by the
arguments the partial binds (`bound_text`: text a command line needs makes it FS112).

Only the partial: the other dispatchers that call what they are handed either call it at once
(sorted, min, max, reduce...) or are lazy iterators (map, filter) that benign pickles do not
hold; they keep their grading (handed.py).

The same holding objects judge an index reach only stored as data (`held_by_unlisted`: skorch's
`NeuralNet.iterator_train = DataLoader`): held by objects of unlisted classes, it runs only if
their code calls it, so it is as uncertain as they are (FS113, judgeable like their FS103).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

from ..facts import CallSite, StreamFacts
from .call_shapes import PARTIAL, last_segment_is_class
from .callsites import OPAQUE, Box, Call, Data, Glob, Site, Sites, Text, walk_values
from .indexed import KNOWN, RECONSTRUCTORS, UNDEFINED
from .knowledge import CALLBACK_DISPATCH, UNKNOWN, Classification
from .literals import reads_as_command

_STATE_ITEMS = 4  # partial.__setstate__ takes (func, args, keywords, __dict__)
# Bound values are walked through tuples and lists (an argv), not into mappings (a lookup
# table's keys and values are data, not a command line).
_ARGV_KINDS = ("tuple", "list")
_MAX_BOUND = 10_000  # bound values looked at; past it the walk yields OPAQUE (command-like)
# Calls whose result may be text or bytes handed on (protocol <= 2 writes bytes as
# `_codecs.encode(text, "latin1")`).
_TEXT_MAKERS = frozenset(
    {"_codecs.encode", "codecs.encode", "builtins.str", "builtins.bytes", "builtins.bytearray"}
)


def unlisted(cls: Classification | None) -> bool:
    """A name no rule reviewed and the index knows no reach of (a user's or an unindexed
    library's function): not a sink, not an index gadget, not a name the index finds absent."""
    return (
        cls is not None
        and cls.verdict_class == UNKNOWN
        and not cls.entry_id
        and not cls.reaches
        and cls.index != UNDEFINED
    )


def watched(facts: StreamFacts, classify: Callable[[str, str], Classification]) -> set[int]:
    """Offsets of the partial calls whose function (first argument) is an unlisted global: the
    call-site walk follows their results (`callsites.Stored`)."""
    partials = {
        i
        for i, g in enumerate(facts.globals)
        if g.resolved and classify(g.module, g.name).resolved == PARTIAL
    }
    out: set[int] = set()
    if not partials:
        return out
    for c in facts.calls:
        f = c.first_arg_global
        if c.callable_index in partials and c.opcode != "BUILD" and 0 <= f < len(facts.globals):
            g = facts.globals[f]
            if g.resolved and unlisted(classify(g.module, g.name)):
                out.add(c.offset)
    return out


class Kept:
    """Per-stream judge of partial call sites by what the load does with their results."""

    def __init__(
        self,
        facts: StreamFacts,
        classes: Sequence[Classification | None],
        sites: Sites,
        stored: Mapping[int, frozenset[int]],
        global_at: Mapping[int, int],
    ) -> None:
        self.facts, self.classes, self.sites = facts, classes, sites
        self.stored, self.global_at = stored, global_at

    def note(self, offset: int) -> str | None:
        """Why the partial call at `offset` runs nothing at load; None when not shown."""
        site = self.sites.get(offset)
        owners = self.stored.get(offset)
        if site is None or owners is None or not site.args:
            return None  # not followed, or handed to a call: it may be called
        funcs = self._functions(site)
        if funcs is None or not all(unlisted(self._class(f)) for f in funcs):
            return None
        if not self._inert_handed((*site.args[1:], *site.states)):
            return None
        if not all(self._holds_inertly(o) for o in owners):
            return None
        names = sorted({self.facts.globals[self.global_at[f.offset]].qualname for f in funcs})
        where = "stored as data" if not owners else f"stored in {len(owners)} object(s)"
        return (
            f"wrapping {', '.join(names)}, a partial kept and never called at load ({where}):"
            " its function runs only when the partial is called"
        )

    def bound_text(self, index: int) -> str:
        """Why global `index` (an unlisted function) is applied to text through a partial: some
        partial wrapping it binds str/bytes a command line could be (`reads_as_command`; long
        or unseen text and any bytes count) as a positional argument or a keyword value. ""
        when none does."""
        offset = self.facts.globals[index].offset
        for site, keywords_last in self._partial_sites:
            funcs = self._functions(site) if site.args else None
            if not funcs or not any(f.offset == offset for f in funcs):
                continue
            bound: list[Any] = list(site.args[1:])
            kwargs = bound[-1] if keywords_last and bound else None
            if isinstance(kwargs, Box) and kwargs.kind == "dict":  # NEWOBJ_EX's keywords
                bound[-1:] = kwargs.items[1::2]
            for state in site.states:
                if isinstance(state, Box) and len(state.items) == _STATE_ITEMS:
                    args, keywords = state.items[1], state.items[2]
                    if isinstance(args, Box):
                        bound.extend(args.items)
                    if isinstance(keywords, Box) and keywords.kind == "dict":
                        bound.extend(keywords.items[1::2])
            if any(self._command_like(v) for v in walk_values(bound, _MAX_BOUND, _ARGV_KINDS)):
                return "bound by functools.partial to text a command line could be"
        return ""

    def _command_like(self, value: Any) -> bool:
        """Text a command line needs, long or unseen text, bytes (not kept by the walk), what
        a str/bytes maker or a computed callable returned, or a value the walk did not see."""
        if isinstance(value, Text):
            return value.text is None or value.loads or reads_as_command(value.text)
        if isinstance(value, Data):
            return True
        if isinstance(value, Call):
            c = self._call_at.get(value.offset)
            if c is None or c.callable_is_call:
                return True
            made = self._made(c.callable_index)
            return made is None or made.resolved in _TEXT_MAKERS
        return value is OPAQUE  # unseen (a persistent id, past a budget): it may be text

    @cached_property
    def _partial_sites(self) -> list[tuple[Site, bool]]:
        """Sites of the partial calls, each with whether its last argument is NEWOBJ_EX's
        keyword dict (the walk appends it to the arguments)."""
        out = []
        for offset, site in self.sites.items():
            c = self._call_at.get(offset)
            made = (
                self._made(c.callable_index) if c is not None and not c.callable_is_call else None
            )
            if c is not None and made is not None and made.resolved == PARTIAL:
                out.append((site, c.opcode == "NEWOBJ_EX"))
        return out

    def _made(self, index: int) -> Classification | None:
        return self.classes[index] if 0 <= index < len(self.classes) else None

    @cached_property
    def _call_at(self) -> dict[int, CallSite]:
        return {c.offset: c for c in self.facts.calls if c.opcode != "BUILD"}

    def _functions(self, site: Site) -> list[Glob] | None:
        """The partial's function: its first argument and the one each BUILD state sets (the
        partial pickles as `partial(f)` + BUILD (f, args, keywords, dict)); None when one is
        not a global or a state is no such tuple (the load then fails or sets anything)."""
        first = site.args[0]
        if not isinstance(first, Glob):
            return None
        out = [first]
        for state in site.states:
            if not (isinstance(state, Box) and len(state.items) == _STATE_ITEMS):
                return None
            func = state.items[0]
            if not isinstance(func, Glob):
                return None
            out.append(func)
        return out

    def _class(self, value: Glob) -> Classification | None:
        i = self.global_at.get(value.offset, -1)
        return self.classes[i] if i >= 0 else None

    def _inert_handed(self, values: Iterable[Any]) -> bool:
        """No sink nor index gadget among what the partial is handed: those keep it malicious
        whatever happens to it (a listed sink is the E7 shape)."""
        for leaf in walk_values(values):
            if isinstance(leaf, Glob):
                cls = self._class(leaf)
                if cls is None or cls.is_dangerous or (cls.reaches and not cls.pinned):
                    return False
        return True

    def _holds_inertly(self, offset: int) -> bool:
        """The object call `offset` made calls nothing it holds at load: its class (the one a
        reconstructor rebuilds) is allowlisted, index-known without a callback-dispatch reach,
        or unlisted; never a sink, a reviewed dispatcher or a computed callable's result."""
        k, made = holder(self.facts, self.classes, self._call_at.get(offset))
        if made is None or made.is_dangerous or made.category == CALLBACK_DISPATCH:
            return False
        if made.is_safe:
            return True
        if made.index == KNOWN:
            return not any(r.category == CALLBACK_DISPATCH for r in made.reaches)
        return unlisted(made) and last_segment_is_class(self.facts.globals[k].name)


def holder(
    facts: StreamFacts, classes: Sequence[Classification | None], call: CallSite | None
) -> tuple[int, Classification | None]:
    """The global (index, class) whose object `call` made, the class a reconstructor rebuilds
    for copyreg; (-1, None) for a computed callable or no call."""
    if call is None or call.callable_is_call or not 0 <= call.callable_index < len(classes):
        return -1, None
    k = call.callable_index
    made = classes[k]
    if made is not None and made.resolved in RECONSTRUCTORS:
        k = call.first_arg_global
        made = classes[k] if 0 <= k < len(classes) else None
    return k, made


def held_by_unlisted(
    facts: StreamFacts,
    classes: Sequence[Classification | None],
    index: int,
    stored: Mapping[int, frozenset[int]] | None,
) -> list[str]:
    """The unlisted classes whose objects hold global `index` (an index reach), when the walk
    followed it, the loader never calls nor hands it to a call, and every other object holding
    it is of a class `indexed.stored_only` accepts (allowlisted or index-known); [] otherwise.
    Its hooks then run only if those classes' own load-time code calls what they hold: exactly
    as unknown as the classes themselves, which get their own unlisted-global finding."""
    owners = stored.get(facts.globals[index].offset) if stored is not None else None
    if not owners:
        return []
    at = {c.offset: c for c in facts.calls if c.opcode != "BUILD"}
    names: set[str] = set()
    for offset in owners:
        k, made = holder(facts, classes, at.get(offset))
        if made is None or made.is_dangerous:
            return []
        if made.is_safe or made.index == KNOWN:
            continue
        if not (unlisted(made) and last_segment_is_class(facts.globals[k].name)):
            return []
        names.add(facts.globals[k].qualname)
    return sorted(names)


__all__ = ["Kept", "held_by_unlisted", "holder", "unlisted", "watched"]
