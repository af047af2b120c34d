"""Which call sites the symbolic walk records (callsites.stream_sites): per stream, the globals
whose calls are judged by what they are handed (handed.py, kept.py, nested_loaders.py,
unknown_calls.py), and how deep the walk goes."""

from __future__ import annotations

from collections.abc import Callable

from ..facts import StreamFacts
from . import kept, nested_loaders
from .call_shapes import _CODECS_ENCODE
from .callsites import EVERY, NONE, Wanted
from .handed import GETATTR, PARTIAL, TEXT_SINKS, dispatcher_only
from .held import dispatches_now
from .knowledge import CALLBACK_DISPATCH, Classification
from .ruleset import RuleSet
from .unknown_calls import weighed_globals


def wanted_in(rules: RuleSet) -> Callable[[StreamFacts], Wanted]:
    """For `callsites.stream_sites`: per stream, the globals whose call sites are judged by
    what they are handed (getattr, reviewed dispatchers such as partial, index dispatchers,
    nested loaders and the `_codecs.encode` bytes they may load), by import offset; a deep
    walk when a class's hooks reach a nested loader (its state decides: nested_loaders)."""
    through: dict[tuple[str, ...], str] = {}

    def via_loader(cls: Classification) -> bool:
        for r in cls.reaches:
            if r.path not in through:
                through[r.path] = nested_loaders.loader_on_path(rules, r)
            if through[r.path]:
                return True
        return False

    def of(facts: StreamFacts) -> Wanted:
        offsets, encoders, loaders, deep = set(), set(), False, False
        used: set[int] = set()  # globals some call calls or is first handed (filled lazily)
        weighed = weighed_globals(facts, rules.classify)
        weigh = (weighed | _encoders(facts)).__contains__ if weighed else NONE
        watch: set[int] = set()  # index reaches only referenced so far: followed (FS110)
        through_loader = partial_called = False
        for i, g in enumerate(facts.globals):
            if not g.resolved:
                continue
            cls = rules.classify(g.module, g.name)
            reaches = bool(cls.reaches) and not (cls.pinned or cls.is_dangerous)
            now = cls.category == CALLBACK_DISPATCH and dispatches_now(cls.resolved)
            judged = cls.is_dangerous and (
                cls.resolved == GETATTR or now or cls.category == "nested_loader"
            )
            if cls.resolved in _CODECS_ENCODE:
                encoders.add(g.offset)
            if not (reaches or judged):
                continue
            if not used:
                used = _used(facts)
            if i not in used:
                if reaches:
                    watch.add(g.offset)
                continue  # only referenced: nothing here hands it anything first
            if reaches and not through_loader and via_loader(cls):
                through_loader = True  # a deep walk, after every global is looked at
            if reaches and any(r.category in TEXT_SINKS for r in cls.reaches):
                deep = True  # every site: what text reaches it (textless)
            dispatcher = dispatcher_only(cls)
            if dispatcher:
                deep = True  # every site: the objects it holds are judged by what built them
            if judged or dispatcher:
                offsets.add(g.offset)
                partial_called = partial_called or cls.resolved == PARTIAL
                loaders = loaders or cls.category == "nested_loader"
        if partial_called:
            watch |= kept.watched(facts, rules.classify)  # partials of unlisted names: followed
        if through_loader or deep:
            return Wanted(EVERY, through_loader, weigh, frozenset(watch))
        if loaders or weighed:
            offsets |= encoders
        return Wanted((offsets | weighed).__contains__, False, weigh, frozenset(watch))

    return of


def _encoders(facts: StreamFacts) -> set[int]:
    """Offsets of `_codecs.encode` globals: protocol <= 2 bytes are their results."""
    return {g.offset for g in facts.globals if g.qualname in _CODECS_ENCODE}


def _used(facts: StreamFacts) -> set[int]:
    out = {-1}  # never empty, so it is built once
    for c in facts.calls:
        if c.opcode != "BUILD":
            out.add(c.callable_index)
            out.add(c.first_arg_global)
    return out
