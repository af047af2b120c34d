"""Benign call shapes of sink globals: how enums, classmethods and partials really pickle.

`builtins.getattr`, `functools.partial` and `operator.attrgetter` are sinks because of what they
can reach, but the standard library pickles ordinary values through them:
- a classmethod or an enum member by name is `getattr(<class>, "<name>")` (`dict.fromkeys`,
  `datetime.datetime.now`); `zoneinfo.ZoneInfo` is `getattr(ZoneInfo, "_unpickle")(key, 1)`;
- `functools.partial(max, 1)` wraps a global the stream imports itself;
- `operator.itemgetter(1)` / `attrgetter("a")` hold plain strings.
The dangerous shapes stay dangerous: getattr of a module, of a sink, of a call result (chains),
with a sink attribute name (`system`, `__globals__`, `Path.write_text`…), a called getattr
result unless `Class.attr` is itself allowlisted, a partial wrapping a sink or a call result.

The tokenizer records a call's first argument but not its second (the attribute name), so the
attribute is judged through the stream's strings: every identifier string the stream holds
(global operands aside) must be harmless on that class, and a called result needs some string
that makes `Class.attr` allowlisted, or that the index resolves to a callable reaching no sink
(issue #15: `getattr(Symbol, "__new__")`, `partial(optimizer_setter)`). A name could still be
computed at load time (str.join, numpy str_), so a called result is graded low only when every
call between the class import and the getattr provably returns no str; otherwise, or when the
string budget dropped strings, it is graded suspicious. Recording the second argument in the
tokenizer would remove the guess.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from ..facts import CallSite, GlobalRef, StreamFacts
from ..findings import FindingRule, Severity
from ..opcodes import STATE_OPCODES  # BUILD sets state; it calls no global
from .indexed import KNOWN
from .knowledge import (
    CALLBACK_DISPATCH,
    CODE_CONSTRUCTION,
    IMPORT_RESOLVER,
    INTROSPECTION,
    UNKNOWN,
    Classification,
)
from .ruleset import RuleSet


@dataclass(frozen=True, slots=True)
class AsGlobal:
    """What a getattr call site fetches, judged as the global `name`."""

    name: str  # module.Owner.attr
    rule: FindingRule  # the rule a GLOBAL of that name would raise
    severity: Severity | None  # None: the rule's default
    reason: str


class CallSiteJudge(Protocol):
    """What the shapes ask of the per-call-site judge (handed.Handed), kept as a protocol so
    this module does not import the judge that builds on its name sets."""

    def has(self, call: CallSite) -> bool: ...
    def getattr_as_global(self, k: int) -> AsGlobal | None: ...
    def partial(self, call: CallSite) -> str | None: ...
    def dispatcher_now(self, index: int, cls: Classification) -> str: ...


GETATTR = "builtins.getattr"
PARTIAL = "functools.partial"
ITEM_GETTER = "operator.itemgetter"
# Hold attribute/method names; calling what they return looks the name up on its argument.
ATTRIBUTE_GETTERS = frozenset({"operator.attrgetter", "operator.methodcaller"})
_SHAPED = frozenset({GETATTR, PARTIAL, ITEM_GETTER}) | ATTRIBUTE_GETTERS
_READ_KINDS = frozenset({"class", "function"})  # index kinds whose Python source was analysed
# Call opcodes that instantiate their callable as a class (cls.__new__ / cls() without REDUCE).
INSTANTIATING = frozenset({"NEWOBJ", "NEWOBJ_EX", "OBJ", "INST"})

# Attribute names that are sinks on any object, whatever the class (defence in depth: the
# resolver already knows sink attributes per class and the interpreter-internals table).
_SINK_ATTRIBUTES = frozenset(
    {
        "system", "popen", "spawn", "spawnv", "spawnl", "execv", "execve", "exec", "eval",
        "execfile", "compile", "__import__", "import_module", "loads", "load", "open", "run",
        "call", "check_output", "getattr", "setattr", "delattr", "globals", "locals", "vars",
        "modules", "os", "sys", "subprocess", "builtins",
    }
)  # fmt: skip
_MAX_INERT_WINDOW = 256  # calls examined between a class import and its getattr
# Calls that may sit between a class import and getattr(<class>, name) without computing the
# name: lowercase value types (CamelCase allowlisted classes count too), never str makers.
_VALUE_TYPES = frozenset(
    {
        "datetime.datetime", "datetime.date", "datetime.time", "datetime.timedelta",
        "datetime.timezone", "builtins.int", "builtins.float", "builtins.complex",
        "builtins.set", "builtins.frozenset", "builtins.list", "builtins.dict",
        "builtins.tuple", "builtins.slice", "builtins.range", "builtins.object",
        "builtins.bytes", "builtins.bytearray", "numpy.dtype",
    }
)  # fmt: skip
# Allowlisted reconstruction helpers whose result is never a str (an array, a block, an index,
# a Timestamp, an Arrow buffer): they fill tz-aware pandas data between two ZoneInfo lookups.
_NON_STRING_HELPERS = frozenset(
    {
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "pandas._libs.tslibs.timestamps._unpickle_timestamp",
        "pandas._libs.tslibs.timedeltas._timedelta_unpickle",
        "pandas._libs.internals._unpickle_block", "pandas.core.internals.blocks.new_block",
        "pandas.core.internals.blocks._unpickle_block", "pandas.core.indexes.base._new_Index",
        "pandas.core.indexes.datetimes._new_DatetimeIndex",
        "pandas.core.arrays.categorical._unpickle_categorical",
        "pyarrow.lib.py_buffer", "pyarrow.lib._restore_array", "pyarrow.lib.type_for_alias",
    }
)  # fmt: skip
# copyreg._reconstructor(cls, base, state) builds a `cls`: inert when `cls` is a value class.
_RECONSTRUCTOR = "copyreg._reconstructor"
_STRING_TYPES = frozenset({"builtins.str", "builtins.StrEnum", "enum.StrEnum", "http.HTTPMethod"})
# Protocols <= 2 write bytes as _codecs.encode(text, "latin1"): bytes are no attribute name.
_CODECS_ENCODE = frozenset({"_codecs.encode", "codecs.encode"})
_TEXT_CODECS = ("rot13", "rot_13", "rot-13")  # the only str -> str codecs
_RESOLVER_CATEGORIES = frozenset({INTROSPECTION, IMPORT_RESOLVER})
# Code-construction globals whose result is a callable function: calling it runs stream code.
_FUNCTION_MAKERS = frozenset(
    {
        "types.FunctionType",
        "types.LambdaType",
        "types.MethodType",
        "cloudpickle.cloudpickle._make_function",
        "dill._dill._create_function",
    }
)


@dataclass(frozen=True, slots=True)
class Shape:
    """A sink call recognised as a benign shape: the severity it gets, and why."""

    severity: Severity
    note: str
    # getattr call sites judged as the globals they fetch (handed.py): reported beside it
    fetched: tuple[AsGlobal, ...] = ()


def last_segment_is_class(name: str) -> bool:
    """CamelCase last segment (`HTTPStatus`, `_ParameterKind`): a class, not a module."""
    return name.rsplit(".", 1)[-1].lstrip("_")[:1].isupper()


def index_inert(cls: Classification) -> bool:
    """A callable whose source the ecosystem index read and found reaching no sink. A builtin
    (C code: `ZoneInfo.from_file` reads the file it is given) is no evidence either way."""
    return cls.index == KNOWN and cls.kind in _READ_KINDS and not cls.reaches and not cls.pinned


def _safe_or_inert(cls: Classification) -> bool:
    return cls.is_safe or (not cls.is_dangerous and index_inert(cls))


class CallShapes:
    """Grades the sink calls of one stream by their shape; built once per stream."""

    def __init__(
        self,
        facts: StreamFacts,
        classes: Sequence[Classification | None],
        rules: RuleSet,
        handed: CallSiteJudge | None = None,
    ) -> None:
        self._facts = facts
        self._classes = classes
        self._rules = rules
        self._handed = handed
        self._harmless_memo: dict[tuple[str, str] | None, bool] = {}
        self._safe_attribute_memo: dict[tuple[str, str], str | None] = {}

    # -- public -------------------------------------------------------------------------------

    def sink_call(self, index: int, cls: Classification) -> Shape | None:
        """The grade of dangerous global `index` when every call of it has a benign shape."""
        if cls.resolved not in _SHAPED:
            note = self._handed.dispatcher_now(index, cls) if self._handed is not None else ""
            return Shape(Severity.LOW, note) if note else None
        shapes: list[Shape] = []
        for k in self._calls_by_callable.get(index, ()):
            shape = self._one(cls.resolved, k, self._facts.calls[k])
            if shape is None:
                return None
            shapes.append(shape)
        if not shapes:
            return None
        worst = max(shapes, key=lambda s: s.severity)
        fetched = tuple(f for s in shapes for f in s.fetched)
        return Shape(worst.severity, worst.note, fetched) if fetched else worst

    def sink_left(self, index: int, cls: Classification | None) -> str:
        """The category of global `index` when it is a sink whose calls have no benign shape
        (what could hand a nested loader other bytes); "" otherwise."""
        if cls is None or not cls.is_dangerous:
            return ""
        shape = self.sink_call(index, cls)
        return "" if shape is not None and shape.severity < Severity.MALICIOUS else cls.category

    def call_of_call(self, call: CallSite, categories: set[str]) -> tuple[Severity | None, str]:
        """Grade of a call whose callable is another call's result (FS107), and what it calls.

        Calling a constructed function, or what getattr/an importer/an attribute getter returned,
        is malicious (E5, E6), unless it is an allowlisted classmethod fetched by getattr
        (`ZoneInfo._unpickle`); building a code object from a looked-up type (cloudpickle) is
        construction, not a run."""
        benign = self._called_result(call)
        if benign is not None:
            return benign.severity, benign.note
        k = call.callable_call_index
        calls, classes = self._facts.calls, self._classes
        producer = calls[k] if 0 <= k < len(calls) else None
        if producer is None or not 0 <= producer.callable_index < len(classes):
            if categories & _RESOLVER_CATEGORIES:
                return Severity.MALICIOUS, "the result of another call, next to a resolver global"
            return None, "the result of another call"
        cls = classes[producer.callable_index]
        if cls is None:
            return None, "the result of an unresolved call"
        if cls.resolved in _FUNCTION_MAKERS:
            return Severity.MALICIOUS, f"the function built by {cls.resolved}"
        if cls.resolved == PARTIAL and self._handed is not None and self._handed.has(producer):
            shape = self._partial(producer)  # calling it runs what it wraps, judged there
            if shape is not None and shape.severity < Severity.SUSPICIOUS:
                return shape.severity, f"the partial {shape.note}"
        if cls.category in _RESOLVER_CATEGORIES or cls.resolved in ATTRIBUTE_GETTERS:
            return Severity.MALICIOUS, f"what {cls.resolved} returned"
        if cls.category == CODE_CONSTRUCTION:
            # cloudpickle/dill look a type up, then instantiate it (a code object, a cell)
            return Severity.LOW, f"the type returned by {cls.resolved}"
        made = self._instance_call_inert(producer, cls)
        if made:
            # sqlalchemy's `_UnpickleDispatch()(cls)`: a restore helper object, then called
            return Severity.LOW, f"an instance of {made}, whose __call__ reaches no sink"
        return None, f"the result of {cls.resolved}"

    def _instance_call_inert(self, producer: CallSite, cls: Classification) -> str:
        """The class `producer` instantiates (NEWOBJ/OBJ/INST or REDUCE of it, or
        `copyreg._reconstructor(cls, ...)`, how protocols 0-1 write it) when the index read it
        and its own `__call__` and found neither reaching a sink: calling the instance runs that
        method, nothing the pickle chose. "" otherwise (FS107 as before)."""
        index = producer.callable_index
        if cls.resolved == _RECONSTRUCTOR:
            index = producer.first_arg_global
            made = self._classes[index] if 0 <= index < len(self._classes) else None
        elif producer.opcode in INSTANTIATING or producer.opcode == "REDUCE":
            made = cls
        else:
            return ""
        if made is None or made.index != KNOWN or made.kind != "class":
            return ""
        if made.is_dangerous or made.reaches:
            return ""
        g = self._facts.globals[index]
        inert = index_inert(self._rules.classify(g.module, f"{g.name}.__call__"))
        return made.resolved if inert else ""

    def _called_result(self, call: CallSite) -> Shape | None:
        """The grade of calling a getattr result when `Class.attr` is an allowlisted name."""
        k = call.callable_call_index
        calls = self._facts.calls
        if not 0 <= k < len(calls):
            return None
        producer = calls[k]
        if self._resolved(producer.callable_index) != GETATTR:
            return None
        if self._handed is not None and self._handed.has(producer):
            judged = self._handed.getattr_as_global(k)
            if judged is None:
                return None
            return Shape(Severity.LOW, f"what getattr returned: {judged.name}, judged as a global")
        target = self._class_argument(producer)
        if target is None:
            return None
        attrs = self._safe_attributes(target)
        if attrs is None:
            return None
        severity = self._called_severity(target, producer)
        return Shape(severity, f"{target.qualname}.{attrs}, an allowlisted classmethod via getattr")

    # -- shapes -------------------------------------------------------------------------------

    def _one(self, resolved: str, k: int, call: CallSite) -> Shape | None:
        if resolved == GETATTR:
            return self._getattr(k, call)
        if resolved == PARTIAL:
            return self._partial(call)
        if call.first_arg_global >= 0 or call.first_arg_call >= 0:
            return None  # getters take strings; a global or computed argument is not that
        if resolved == ITEM_GETTER:
            return Shape(Severity.LOW, "itemgetter of literal keys")
        # The getter's arguments are not linked to the call: every string of the stream must
        # be a harmless attribute path, so a getter holding anything else stays a sink (E4, E5).
        if not (self._only_attribute_paths and self._strings_harmless(None)):
            return None
        if self._result_called(k):
            return None  # attrgetter("x")(obj) looks a name up on an object: E5
        return Shape(Severity.LOW, "holding attribute names that are no sinks")

    def _getattr(self, k: int, call: CallSite) -> Shape | None:
        if self._handed is not None and self._handed.has(call):
            judged = self._handed.getattr_as_global(k)
            if judged is None:
                return None  # a sink, or a name/owner not seen as a literal: stays a sink
            note = f"as getattr fetching {judged.name}, judged as that global"
            return Shape(Severity.LOW, note, (judged,))
        target = self._class_argument(call)
        if target is None or not self._strings_harmless(target):
            return None
        severity = Severity.LOW if self._strings_complete else Severity.SUSPICIOUS
        if self._result_called(k):
            attrs = self._safe_attributes(target)
            if attrs is None:
                return None
            severity = self._called_severity(target, call)
            return Shape(severity, f"as getattr({target.qualname}, {attrs!r}), then called")
        return Shape(severity, f"as getattr({target.qualname}, <name>) (enum member/classmethod)")

    def _partial(self, call: CallSite) -> Shape | None:
        shape = self._partial_by_name(call)
        if shape is None and self._handed is not None:
            note = self._handed.partial(call)
            shape = Shape(Severity.LOW, note) if note else None
        return shape

    def _partial_by_name(self, call: CallSite) -> Shape | None:
        index = call.first_arg_global
        if 0 <= call.first_arg_call < len(self._facts.calls):
            return self._partial_of_getattr(call)
        if call.first_arg_call >= 0 or not 0 <= index < len(self._classes):
            return None  # wraps a computed callable (or nothing we can see)
        wrapped = self._classes[index]
        if wrapped is None or wrapped.is_dangerous:
            return None
        name = self._facts.globals[index].qualname
        if wrapped.is_safe or wrapped.category == CALLBACK_DISPATCH:
            # a reviewed consumer (max, sorted) only calls what it is given, which is
            # classified where it is imported
            return Shape(Severity.LOW, f"wrapping {name}")
        if index_inert(wrapped):
            return Shape(Severity.LOW, f"wrapping {name}, which the index finds reaches no sink")
        return None  # a partial around an unreviewed callable stays a sink (novel sinks, E7)

    def _partial_of_getattr(self, call: CallSite) -> Shape | None:
        """partial(getattr(<class>, "<name>"), ...): graded as calling that getattr's result
        (the partial is there to be called), so `Class.name` must be allowlisted or inert."""
        producer = self._facts.calls[call.first_arg_call]
        if self._resolved(producer.callable_index) != GETATTR:
            return None
        target = self._class_argument(producer)
        if target is None or not self._strings_harmless(target):
            return None
        attrs = self._safe_attributes(target)
        if attrs is None:
            return None
        note = f"wrapping getattr({target.qualname}, {attrs!r})"
        return Shape(self._called_severity(target, producer), note)

    # -- helpers ------------------------------------------------------------------------------

    def _resolved(self, index: int) -> str:
        cls = self._classes[index] if 0 <= index < len(self._classes) else None
        return cls.resolved if cls is not None else ""

    def _class_argument(self, call: CallSite) -> GlobalRef | None:
        """The call's first argument when it is a class global: allowlisted, or unknown and
        spelled like a class (never a module, a sink, a dotted walk or a computed value)."""
        index = call.first_arg_global
        if call.first_arg_call >= 0 or not 0 <= index < len(self._classes):
            return None
        cls = self._classes[index]
        ref = self._facts.globals[index]
        if cls is None or cls.is_dangerous:
            return None
        if cls.is_safe and not cls.dotted and not cls.entry_id.endswith(":*"):
            return ref  # an exact allowlist entry: dict, int, datetime.datetime, ZoneInfo
        if cls.is_safe or cls.verdict_class == UNKNOWN:
            return ref if not cls.dotted and last_segment_is_class(ref.name) else None
        return None

    def _result_called(self, k: int) -> bool:
        """Whether any call's callable is call `k`'s result (or a result we cannot place)."""
        return k in self._called_producers or -1 in self._called_producers

    def _safe_attributes(self, target: GlobalRef) -> str | None:
        """An attribute string of the stream that makes `Class.attr` an allowlisted name."""
        key = (target.module, target.name)
        if key not in self._safe_attribute_memo:
            self._safe_attribute_memo[key] = next(
                (
                    text
                    for text in self._attribute_strings
                    if _safe_or_inert(self._rules.classify(target.module, f"{target.name}.{text}"))
                ),
                None,
            )
        return self._safe_attribute_memo[key]

    def _called_severity(self, target: GlobalRef, call: CallSite) -> Severity:
        """LOW when the getattr's name can only be a literal of the stream; SUSPICIOUS when a
        call between the class import and the getattr may have computed it (the tokenizer does
        not record the second argument), or strings were dropped."""
        if self._strings_complete and self._inert_between(target.offset, call.offset):
            return Severity.LOW
        return Severity.SUSPICIOUS

    def _inert_between(self, start: int, end: int) -> bool:
        """Every call between the class import and the getattr returns no string: another
        benign getattr, the classmethod it fetched, or a reviewed value class (a datetime)."""
        calls = self._facts.calls
        first = bisect.bisect_right(self._call_offsets, start)
        last = bisect.bisect_left(self._call_offsets, end)
        if last - first > _MAX_INERT_WINDOW:
            return False  # bounded work per getattr; a long window is not vouched for
        for c in calls[first:last]:
            if c.opcode in STATE_OPCODES:
                continue
            if c.callable_is_call:
                k = c.callable_call_index
                producer = calls[k] if 0 <= k < len(calls) else None
                if producer is None or not self._benign_getattr(producer):
                    return False
            elif self._resolved(c.callable_index) == _RECONSTRUCTOR:
                if not self._value_class(c.first_arg_global):
                    return False
            elif not self._benign_getattr(c) and not self._value_class(c.callable_index):
                return False
        return True

    def _benign_getattr(self, call: CallSite) -> bool:
        return self._resolved(call.callable_index) == GETATTR and (
            self._class_argument(call) is not None
        )

    def _value_class(self, index: int) -> bool:
        """An allowlisted class that cannot return a string (its instances are not str)."""
        cls = self._classes[index] if 0 <= index < len(self._classes) else None
        if cls is None or not cls.is_safe or cls.resolved in _STRING_TYPES:
            return False
        if cls.resolved in _CODECS_ENCODE:
            return not self._text_codec_named  # str -> bytes, unless a str -> str codec
        if cls.resolved in _NON_STRING_HELPERS:
            return True
        if cls.resolved.rsplit(".", 1)[-1].startswith("__pyx_unpickle_"):
            return True  # Cython's helper returns an instance of its own extension class
        return cls.resolved in _VALUE_TYPES or last_segment_is_class(cls.resolved)

    def _strings_harmless(self, target: GlobalRef | None) -> bool:
        """No attribute string of the stream is a sink name, generic or on `target`."""
        key = (target.module, target.name) if target is not None else None
        if key not in self._harmless_memo:
            self._harmless_memo[key] = self._no_sink_string(target)
        return self._harmless_memo[key]

    def _no_sink_string(self, target: GlobalRef | None) -> bool:
        for text in self._attribute_strings:
            if text in _SINK_ATTRIBUTES:
                return False
            if text in self._rules.knowledge.dangerous_attributes:
                return False  # __globals__, __subclasses__ and the other internals
            if target is not None and self._sink_on(target, text):
                return False
        return True

    def _sink_on(self, target: GlobalRef, attribute: str) -> bool:
        """`Class.attribute` is a reviewed sink (`Path.write_text`). The module wildcard an
        allowlisted class sits in (`http.*` around `HTTPStatus`) does not count: the class's
        own entry already says its members are values."""
        hit = self._rules.classify(target.module, f"{target.name}.{attribute}")
        return hit.is_dangerous and not hit.entry_id.endswith(":*")

    @cached_property
    def _calls_by_callable(self) -> dict[int, list[int]]:
        """Global index -> indexes of the calls that call it (BUILD aside)."""
        out: dict[int, list[int]] = {}
        for k, c in enumerate(self._facts.calls):
            if c.callable_index >= 0 and c.opcode not in STATE_OPCODES:
                out.setdefault(c.callable_index, []).append(k)
        return out

    @cached_property
    def _called_producers(self) -> frozenset[int]:
        return frozenset(c.callable_call_index for c in self._facts.calls if c.callable_is_call)

    @cached_property
    def _call_offsets(self) -> list[int]:
        return [c.offset for c in self._facts.calls]

    @cached_property
    def _attribute_strings(self) -> tuple[str, ...]:
        """Identifier strings that are not import operands (STACK_GLOBAL pushes those)."""
        operands: set[str] = set()
        for g in self._facts.globals:
            operands.add(g.module)
            operands.update(g.name.split("."))
        seen: dict[str, None] = {}
        for text in self._facts.strings:
            for part in text.split("."):  # attrgetter("a.b") walks each segment
                if part.isidentifier() and part not in operands:
                    seen[part] = None
        return tuple(seen)

    @cached_property
    def _only_attribute_paths(self) -> bool:
        """All strings were kept, and each is an import operand or an attribute path."""
        operands = {g.module for g in self._facts.globals} | {g.name for g in self._facts.globals}
        return self._strings_complete and all(
            text in operands or all(part.isidentifier() for part in text.split("."))
            for text in self._facts.strings
        )

    @cached_property
    def _text_codec_named(self) -> bool:
        return any(t.lower() in _TEXT_CODECS for t in self._facts.strings)

    @cached_property
    def _strings_complete(self) -> bool:
        f = self._facts
        return len(f.strings) + f.long_strings >= f.n_strings
