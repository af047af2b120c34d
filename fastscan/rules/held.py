"""What a dispatcher may run of what it is handed (issue #15): the reviewed dispatchers that
call at once, the index-inert and operand-calling callables, and held objects.

Objects an index dispatcher is handed are judged by the class that built them.

An index dispatcher runs what it holds in two ways (index/flows.py): it calls a held value
(`__call__`) or forwards the item protocol to it (`__getitem__`, ...). A held object is no more
dangerous than what those members of its class run: a class the index read (or an allowlisted
one) whose own load-time reaches are callback dispatch at most, and whose call and item members
are absent, index functions that reach nothing but dispatch, or C members of an allowlisted
class. What such an object holds is then judged like any held value (handed.inert_handed walks
its arguments and BUILD state): dask's `Array(HighLevelGraph(...), name, chunks, meta=ndarray)`
hands over a graph object whose layers and tasks hold only `operator.mul` and data.
"""

from __future__ import annotations

from collections.abc import Callable

from ..index.flows import ITEM_METHODS
from . import indexed
from .call_shapes import index_inert
from .knowledge import CALLBACK_DISPATCH, Classification

_MEMBERS = ("__call__", *sorted(ITEM_METHODS))

Classify = Callable[[str, str], Classification]

# Reviewed dispatchers (callback_dispatch) that call only the callables handed to them, while
# they run (itertools.* too): judged by those. Not here: what registers a callable for later
# (threading, atexit, signal, weakref, sched, torch hooks), looks names up from text (operator
# getters, string.Formatter, format, re.sub's templates), or ends the process (exit).
DISPATCH_NOW = frozenset(
    {
        "functools.partial", "functools.reduce", "functools.cmp_to_key", "builtins.map",
        "builtins.filter", "builtins.iter", "builtins.sorted", "builtins.min", "builtins.max",
        "builtins.sum", "builtins.any", "builtins.all", "builtins.zip", "builtins.enumerate",
        "builtins.reversed", "builtins.next",
    }
)  # fmt: skip


def dispatches_now(resolved: str) -> bool:
    module, _, _name = resolved.rpartition(".")
    return module == "itertools" or resolved in DISPATCH_NOW


def operand_caller(cls: Classification) -> bool:
    """A reviewed callback_dispatch entry that is no sink (class "unknown" in the rule base)."""
    return bool(cls.entry_id) and cls.category == CALLBACK_DISPATCH and not cls.is_safe


def object_class_inert(cls: Classification, classify: Classify, instantiated: bool) -> bool:
    """Whether an object `cls` made can run nothing but what it holds when a dispatcher calls
    it or uses it as a mapping. `instantiated`: made by NEWOBJ or a reconstructor, so `cls` is
    a class; otherwise only a class the index read counts (an allowlisted C callable may be a
    function whose result is anything)."""
    if cls.is_dangerous:
        return False
    if not ((cls.index == indexed.KNOWN and cls.kind == "class") or (instantiated and cls.is_safe)):
        return False
    if any(r.category != CALLBACK_DISPATCH and r.hook != indexed.LAZY_REACH for r in cls.reaches):
        return False
    module, _, qual = cls.resolved.rpartition(".")
    if not module:
        return False
    return all(_member_inert(classify(module, f"{qual}.{m}"), classify) for m in _MEMBERS)


def _member_inert(member: Classification, classify: Classify) -> bool:
    if member.index == indexed.UNDEFINED:
        return True  # the class (and its bases) the index read define no such member
    if member.is_dangerous or member.index != indexed.KNOWN:
        return False
    if member.kind == "function":
        return all(r.category == CALLBACK_DISPATCH for r in member.reaches)
    if member.kind == "builtin":  # C code: only an allowlisted class's (dict.__getitem__)
        owner = member.origin.rpartition(".")[0]  # "builtins.dict.__getitem__" -> builtins.dict
        module, _, name = owner.rpartition(".")
        return bool(module) and classify(module, name).is_safe
    return False


__all__ = [
    "DISPATCH_NOW",
    "dispatches_now",
    "index_inert",
    "object_class_inert",
    "operand_caller",
]
