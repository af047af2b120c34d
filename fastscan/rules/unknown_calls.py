"""Call shapes of unlisted callables: object restoration versus function application.

A name no rule reviewed can be a user's class being rebuilt, or a function of some package run
on arguments the pickle chose (docs/threats.md J6: a third-party helper that runs its string
argument as a shell command). The loader tells the two apart by what it does with the name:

- **restoration**: NEWOBJ/NEWOBJ_EX (`cls.__new__(cls, *args)`, never a plain function), or
  REDUCE/INST/OBJ on a class-shaped name whose result then gets its state (BUILD) or its items
  (SETITEM(S), APPEND(S), ADDITEMS); `copyreg._reconstructor`/`__newobj__` restore an unlisted
  class that is only their argument (it is imported, not called).
- **application**: the result is thrown away (POP) or called; or a function-shaped name (not
  CamelCase) is applied to str or bytes (protocol <= 2 bytes are `_codecs.encode(text,
  "latin1")` calls: seen through here) or its result is another call's first argument.
- **construction**: anything else (a class-shaped name called on plain values and kept, a
  function of numbers kept in a container) stays for the classifier to judge.

`verdict.combine` lets a confident classifier settle unlisted globals (FS103, FS903); an
application is reported as FS112 instead, which nothing settles. What a name is known to do can
come from an index of package sources: `Knowledge` is the small interface this module needs
(`fastscan.index`'s `shipped_index()` fits it); without one every name is `UNKNOWN_NAME`.

Limits: only a call's first argument is linked to another call (`CallSite.first_arg_call`), so
a result passed further down an argument tuple counts as kept, not as fed to a call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Sequence
from operator import itemgetter
from typing import NamedTuple, Protocol

from .. import facts as F
from ..facts import ARG_BYTES, ARG_CALL, ARG_STR, CallSite, GlobalRef, StreamFacts
from .call_shapes import GETATTR, index_inert, last_segment_is_class
from .callsites import VALUE, Call, Data, Glob, Sites, Text, walk_values
from .kept import unlisted
from .knowledge import CALLBACK_DISPATCH, CODE_CONSTRUCTION, DECODER, UNKNOWN, Classification
from .literals import bytes_read_as_command, loadable, printable, reads_as_command
from .nested_loaders import graded_whole

RESTORATION = "restoration"
APPLICATION = "application"
CONSTRUCTION = "construction"

# What later opcodes did with a call's result (CallShape.uses, a mask); none of them = kept
# (stored in a container, memoised or returned, without state).
USE_DISCARDED, USE_CALLED, USE_ARGUMENT, USE_BUILT, USE_FILLED = 1, 2, 4, 8, 16
USES = (
    ("discarded", USE_DISCARDED), ("called", USE_CALLED), ("argument", USE_ARGUMENT),
    ("built", USE_BUILT), ("filled", USE_FILLED),
)  # fmt: skip

ARG_NAMES = (
    ("str", F.ARG_STR), ("bytes", F.ARG_BYTES), ("number", F.ARG_NUMBER), ("none", F.ARG_NONE),
    ("container", F.ARG_CONTAINER), ("global", F.ARG_GLOBAL), ("call", F.ARG_CALL),
    ("opaque", F.ARG_OPAQUE),
)  # fmt: skip

# How a name is spelled (CallShape.name_shape): `Outer.method` is a dotted attribute walk.
CLASS_NAME, FUNCTION_NAME, DOTTED_NAME = "class", "function", "dotted"

# What an index knows about a name (Knowledge): no load-time path to a sink, a path to one, or
# nothing (not indexed, or no index).
KNOWN_INERT, KNOWN_GADGET, UNKNOWN_NAME = "inert", "gadget", "unknown"

_NOT_CALLS = frozenset({"BUILD"})  # BUILD sets state; it calls no global
_RECENT: deque[StreamShapes] = deque(maxlen=4)  # StreamShapes.for_stream
_CALLABLE = itemgetter(CallSite._fields.index("callable_index"))
_RESTORING_OPCODES = frozenset({"NEWOBJ", "NEWOBJ_EX"})
# Helpers that rebuild an instance of the class given as their first argument.
RESTORING_HELPERS = frozenset(
    {"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__"}
)
# Argument kinds that can describe an object's state (`_reconstructs`); ARG_CALL is there for
# protocol <= 2 bytes and nested restored objects, whose own calls are judged on their own.
_STATE_KINDS = (
    ARG_STR | ARG_BYTES | F.ARG_NUMBER | F.ARG_NONE | F.ARG_CONTAINER | F.ARG_GLOBAL | ARG_CALL
)
# Inert text: nothing of it reads as a command, code, a path or a URL (literals.reads_as_command;
# dotted module names the stream imports are exempt).
_INERT_STRINGS_MAX = 100_000  # beyond this many strings the check is not worth its time: fail
# Protocol <= 2 bytes: `_codecs.encode("\xff...", "latin1")`.
_BYTES_MAKERS = frozenset({"_codecs.encode", "codecs.encode"})


class Symbol(Protocol):
    """A name an index knows: its kind (class, function, ...) and the sinks it reaches."""

    @property
    def kind(self) -> str: ...

    @property
    def reaches(self) -> Collection[object]: ...


class Knowledge(Protocol):
    """The part of an ecosystem index the call shapes use."""

    def lookup(self, module: str, qualname: str) -> Symbol | None: ...


def knowledge_of(index: Knowledge | None, module: str, name: str) -> str:
    """KNOWN_INERT, KNOWN_GADGET or UNKNOWN_NAME for `module.name` (UNKNOWN_NAME without index)."""
    if index is None:
        return UNKNOWN_NAME
    symbol = index.lookup(module, name)
    if symbol is None:
        return UNKNOWN_NAME
    return KNOWN_GADGET if symbol.reaches else KNOWN_INERT


class CallShape(NamedTuple):
    """How one call of an unlisted callable looks to the loader (a NamedTuple: one per call,
    built fast)."""

    call: int  # index into StreamFacts.calls
    callable_index: int  # index into StreamFacts.globals
    opcode: str
    name_shape: str  # CLASS_NAME | FUNCTION_NAME | DOTTED_NAME
    arg_kinds: int  # facts.ARG_* mask, protocol <= 2 bytes counted as ARG_BYTES
    uses: int  # USE_* mask; 0 = kept
    shape: str  # RESTORATION | APPLICATION | CONSTRUCTION

    @property
    def text_args(self) -> bool:
        return bool(self.arg_kinds & (ARG_STR | ARG_BYTES))


def name_shape(name: str) -> str:
    if "." in name:
        return DOTTED_NAME
    return CLASS_NAME if last_segment_is_class(name) else FUNCTION_NAME


class StreamShapes:
    """The shapes of the calls of one stream, each computed once, on first use. The rules and
    the features both ask about a stream's unlisted calls: `for_stream` shares one instance."""

    def __init__(self, facts: StreamFacts) -> None:
        self.facts = facts
        self._resolved = [g.qualname for g in facts.globals]  # helpers are matched by name
        # which calls call a global: one C-level pass, the rest is per call asked about
        self._callables = list(map(_CALLABLE, facts.calls))
        self._by_callable: dict[int, list[int]] = {}
        self._shapes: dict[int, CallShape] = {}
        self._names: dict[int, tuple[str, bool]] = {}  # global -> (name_shape, class-like)
        self._inert: bool | None = None  # inert_text(), computed on first need
        self._call_at: dict[int, int] | None = None  # call opcode offset -> call index
        self._graded: frozenset[int] | None = None  # graded_pickle(), computed on first need
        # calls a function-shaped name restores only by its argument kinds (`_reconstructs`):
        # with call sites, their own arguments decide (`application`)
        self._by_state: set[int] = set()
        # constructions by function-shaped names handed a call's result or a container:
        # applied when they hold a reviewed decoder's result (`application`)
        self.by_contents: set[int] = set()

    @classmethod
    def for_stream(cls, facts: StreamFacts) -> StreamShapes:
        """The instance of `facts` (the same object): the rules build it, the features reuse
        it. The last few are kept, and they keep their facts alive: a handful at most."""
        for kept in _RECENT:
            if kept.facts is facts:
                return kept
        shapes = cls(facts)
        _RECENT.append(shapes)
        return shapes

    def of(self, k: int) -> CallShape:
        """The shape of call `k`, whose callable is the global `calls[k].callable_index`."""
        shape = self._shapes.get(k)
        if shape is None:
            shape = self._shapes[k] = self._shape(k)
        return shape

    def _shape(self, k: int) -> CallShape:
        c = self.facts.calls[k]
        g = self.facts.globals[c.callable_index]
        kinds = c.arg_kinds
        if kinds & ARG_CALL and self._bytes_argument(c):
            kinds |= ARG_BYTES
        uses = self._uses(c)
        spelled = self._names.get(c.callable_index)
        if spelled is None:
            # `Outer.Inner` is a class; `Outer.method` is not
            spelled = self._names[c.callable_index] = (
                name_shape(g.name),
                last_segment_is_class(g.name),
            )
        shape_of_name, classy = spelled
        if uses & (USE_DISCARDED | USE_CALLED):
            shape = APPLICATION  # an object nobody keeps, or a callable: not a restoration
        elif (
            c.opcode in _RESTORING_OPCODES
            or (classy and uses & (USE_BUILT | USE_FILLED))
            or self._hands_a_class(c)
        ):
            shape = RESTORATION
        elif not classy and (uses & USE_ARGUMENT or kinds & (ARG_STR | ARG_BYTES)):
            shape = RESTORATION if self._reconstructs(c, kinds, uses) else APPLICATION
            if shape == RESTORATION:
                self._by_state.add(k)
        else:
            shape = CONSTRUCTION
            if not classy and kinds & (ARG_CALL | F.ARG_CONTAINER):
                # `exec(b64decode("..."))`, `f({"x": b64decode("...")})`: what the call is
                # handed decides (`application`)
                self.by_contents.add(k)
        return CallShape(k, c.callable_index, c.opcode, shape_of_name, kinds, uses, shape)

    def _reconstructs(self, c: CallSite, kinds: int, uses: int) -> bool:
        """A function-shaped reconstructor: its result is kept as restored data (stored, given
        state or items, returned), never fed to another call, and its arguments describe state
        (a handed global such as bitarray's `_bitarray_reconstructor(bitarray, b"..", "little")`,
        numbers, tuples, inert text). Bytes count only beside a handed global (bytes of the
        object it rebuilds): the tokenizer does not keep bytes, so a bare `f(b"...")` might be a
        command. Text counts only when every string of the stream is inert (`inert_text`)."""
        if uses & USE_ARGUMENT or kinds & ~_STATE_KINDS:
            return False
        if kinds & ARG_BYTES and not 0 <= c.first_arg_global < len(self.facts.globals):
            return False
        return not kinds & ARG_STR or self.inert_text()

    def inert_text(self) -> bool:
        """No string operand of the stream reads as a command, code, a path or a URL
        (`literals.reads_as_command`), and none was too long to have been kept."""
        if self._inert is None:
            strings = self.facts.strings
            # STACK_GLOBAL's operands are strings too: a name the stream imports is not text
            names = {part for g in self.facts.globals for part in (g.module, g.name)}
            self._inert = (
                not self.facts.long_strings
                and len(strings) <= _INERT_STRINGS_MAX
                and all(t in names or not reads_as_command(t) for t in strings)
            )
        return self._inert

    def graded_pickle(self, offset: int) -> bool:
        """The operand at `offset` is a raw pickle the tokenizer read whole as a nested pickle
        (any carrier), so the scan grades by its own findings whatever a loader would run from
        it, as for reviewed loaders (`nested_loaders`): loading it is no reason by itself."""
        if self._graded is None:
            self._graded = frozenset(n.offset for n in self.facts.nested if graded_whole(n))
        return offset in self._graded

    def _hands_a_class(self, c: CallSite) -> bool:
        """A helper handed the class it rebuilds as its first argument, its result kept: the
        reconstructor shape (numpy's `_reconstruct(ndarray, ...)`, Cython's
        `__pyx_unpickle_X(X, ...)`, bitarray's `_bitarray_reconstructor(bitarray, ...)`)."""
        first = c.first_arg_global
        if not 0 <= first < len(self.facts.globals):
            return False
        spelled = self._names.get(first)
        if spelled is None:
            name = self.facts.globals[first].name
            spelled = self._names[first] = (name_shape(name), last_segment_is_class(name))
        return spelled[1]

    def judged_by_arguments(self, shape: CallShape) -> bool:
        """A function-shaped call that the stream-wide shape calls an application, or a
        restoration by its argument kinds alone: its call site's arguments decide."""
        return (
            shape.shape == APPLICATION
            or shape.call in self._by_state
            or shape.call in self.by_contents
        )

    def of_callable(self, index: int) -> list[CallShape]:
        """Shapes of the calls (BUILD aside) of global `index`."""
        ks = self._by_callable.get(index)
        if ks is None:
            calls = self.facts.calls
            ks = [k for k, i in enumerate(self._callables) if i == index]
            ks = self._by_callable[index] = [k for k in ks if calls[k].opcode not in _NOT_CALLS]
        return [self.of(k) for k in ks]

    @staticmethod
    def describe(shape: CallShape) -> str:
        """`REDUCE on str arguments, result discarded`: what a finding says about a call."""
        kinds = [name for name, bit in ARG_NAMES if shape.arg_kinds & bit] or ["no arguments"]
        uses = [name for name, bit in USES if shape.uses & bit] or ["kept"]
        return f"{shape.opcode} on {'/'.join(kinds)}, result {'/'.join(uses)}"

    def restored_by_helper(self, indexes: Collection[int]) -> list[GlobalRef]:
        """Globals among `indexes` that a restoring helper (copyreg) rebuilds."""
        out: list[GlobalRef] = []
        if not RESTORING_HELPERS.intersection(self._resolved):
            return out  # protocols >= 2 restore with NEWOBJ: no helper in the stream
        globals_ = self.facts.globals
        for c in self.facts.calls:
            if c.first_arg_global in indexes and self._resolved_at(c.callable_index) in (
                RESTORING_HELPERS
            ):
                out.append(globals_[c.first_arg_global])
        return out

    @staticmethod
    def _uses(c: CallSite) -> int:
        used = c.result_use
        uses = USE_DISCARDED if c.discarded else 0
        uses |= USE_CALLED if used & F.USE_CALLED else 0
        uses |= USE_ARGUMENT if used & F.USE_ARGUMENT else 0
        uses |= USE_BUILT if used & F.USE_BUILT else 0
        return uses | (USE_FILLED if used & F.USE_FILLED else 0)

    def _bytes_argument(self, c: CallSite) -> bool:
        """The first argument is protocol <= 2 bytes (a `_codecs.encode` call's result)."""
        calls = self.facts.calls
        if not 0 <= c.first_arg_call < len(calls):
            return False
        return self._resolved_at(calls[c.first_arg_call].callable_index) in _BYTES_MAKERS

    def _resolved_at(self, index: int) -> str:
        return self._resolved[index] if 0 <= index < len(self._resolved) else ""

    resolved_at = _resolved_at

    def call_at(self, offset: int) -> int:
        """The index in StreamFacts.calls of the call opcode at `offset` (-1: none)."""
        if self._call_at is None:
            self._call_at = {c.offset: k for k, c in enumerate(self.facts.calls)}
        return self._call_at.get(offset, -1)


def application(
    shapes: StreamShapes,
    index: int,
    g: GlobalRef,
    classes: Sequence[Classification | None],
    knowledge: Knowledge | None,
    *,
    sites: Sites | None = None,
) -> str:
    """How unlisted global `index` is applied like a function ("" when it never is). A call on
    serialized code the stream builds itself (dill sets attributes of the functions it makes)
    is that code's construction, as for the reviewed setters (engine._serialized_code_helper).
    With the stream's call `sites` (weighed: `wanted.wanted_in`), a function-shaped call the
    stream-wide shape judged by argument kinds (`judged_by_arguments`) is judged by its own
    arguments instead (`restores_by_site`): a reconstruction settles, an application is FS112
    (also one the kinds alone took for a reconstruction: `f(handed_global, b"echo ...")`), and
    so is a construction handed a reviewed decoder's result (`exec(b64decode("..."))`)."""
    applied = [
        s
        for s in shapes.of_callable(index)
        if _applied(shapes, s, sites, classes)
        and not built_by_code_construction(
            shapes.facts.calls[s.call].first_arg_call, shapes.facts, classes
        )
    ]
    if knowledge_of(knowledge, g.module, g.name) == KNOWN_INERT:
        return ""
    if applied:
        return f"applied as a function ({shapes.describe(applied[0])})"
    return ""


def _applied(
    shapes: StreamShapes,
    s: CallShape,
    sites: Sites | None,
    classes: Sequence[Classification | None],
) -> bool:
    """Call `s` is applied like a function: by its shape alone without a recorded site, else
    by what it is handed (`application`)."""
    if not sites or shapes.facts.calls[s.call].offset not in sites:
        return s.shape == APPLICATION
    if s.call in shapes.by_contents:
        return _hands_decoded(shapes, s, sites, classes)
    return shapes.judged_by_arguments(s) and not restores_by_site(shapes, s, sites, classes)


def callbacks_handed(facts: StreamFacts) -> dict[int, str]:
    """Function-shaped globals (by index) handed as the first argument of a callable of another
    package beside text or bytes, with that callable's qualname: `ChainMap(subprocess.getoutput,
    "...")`, `defaultdict(os.system, "...")`. Restoration hands a constructor its state, and a
    package's own reconstructor its own class (`bitarray._bitarray_reconstructor(
    bitarray.bitarray, ...)`: same package, kept as construction); a function of another
    package handed with a string is a stored callback and its argument, the shape of
    callback-dispatch gadgets. One pass over the stream's calls (the engine asks per global)."""
    out: dict[int, str] = {}
    for call in facts.calls:
        index = call.first_arg_global
        if index < 0 or index in out or call.callable_index < 0:
            continue
        if not call.arg_kinds & (ARG_STR | ARG_BYTES):
            continue
        handed, caller = facts.globals[index], facts.globals[call.callable_index]
        if caller.qualname == GETATTR:
            continue  # an owner whose attribute is read, judged per call site (handed.py)
        if last_segment_is_class(handed.name):
            continue
        if caller.module.split(".")[0] != handed.module.split(".")[0]:
            out[index] = caller.qualname
    return out


def weighed_globals(facts: StreamFacts, classify: Callable[[str, str], Classification]) -> set[int]:
    """Offsets of unlisted globals (FS103 candidates) with a call the stream-wide shape judged by
    argument kinds: the call-site walk weighs their literal arguments (callsites `weigh`) and
    their calls' own arguments decide FS112 (`application`)."""
    out: set[int] = set()
    shapes: StreamShapes | None = None
    for i, g in enumerate(facts.globals):
        if not g.resolved:
            continue
        cls = classify(g.module, g.name)
        if cls.verdict_class != UNKNOWN or cls.entry_id:
            continue
        if shapes is None:
            shapes = StreamShapes.for_stream(facts)
        if any(shapes.judged_by_arguments(s) for s in shapes.of_callable(i)):
            out.add(g.offset)
    return out


def built_by_code_construction(
    call_index: int, facts: StreamFacts, classes: Sequence[Classification | None]
) -> bool:
    """Call `call_index` made an object with a code-construction global (a function, a code
    object, a class: dill/cloudpickle serialized code)."""
    made_by = _made_by(facts, call_index, classes)
    return made_by is not None and made_by.category == CODE_CONSTRUCTION


def _made_by(
    facts: StreamFacts, k: int, classes: Sequence[Classification | None]
) -> Classification | None:
    """The classification of call `k`'s callable (None: no such call, or a computed one)."""
    if not 0 <= k < len(facts.calls):
        return None
    i = facts.calls[k].callable_index
    return classes[i] if 0 <= i < len(classes) else None


_MAX_LEAVES = 10_000  # argument values looked at per call; past it the call stays FS112


def restores_by_site(
    shapes: StreamShapes,
    shape: CallShape,
    sites: Sites,
    classes: Sequence[Classification | None],
) -> bool:
    """Call `shape` rebuilds data from what this call alone is handed: its result is kept
    (stored, given state or items, returned; never discarded, called or fed to another call) and
    every argument is a number, None, a global, a container of those, another call's result (an
    unlisted call judged by its own arguments here; any other only when no string of the stream
    reads as a command: `inert_text`), text that does not read as a command, code, a path or a
    URL, bytes (literal, or protocol <= 2 `_codecs.encode(text, "latin1")`) that hold no pickle
    or archive a loader could open and are no command (`_state_bytes`), or a pickle the scan
    read whole (`graded_pickle`). Anything the walk did not see (no site, a long or undecodable
    string, an opaque value) keeps the application, and so does a reviewed decoder's result
    (`exec(b64decode(...))`). A result fed to another call counts as kept when every call it is
    the first argument of stores it (`_stored_by_consumers`)."""
    if shape.uses & (USE_DISCARDED | USE_CALLED) or (
        shape.uses & USE_ARGUMENT and not _stored_by_consumers(shapes, shape.call, classes)
    ):
        return False
    facts = shapes.facts
    site = sites.get(facts.calls[shape.call].offset)
    if site is None or site.named:  # a result imported by name is applied, not kept
        return False
    # handed the class it rebuilds (bitarray's `_bitarray_reconstructor(bitarray, b"...")`)
    rebuilds = bool(site.args) and isinstance(site.args[0], Glob)
    for v in walk_values(site.args, _MAX_LEAVES):
        if v is VALUE or isinstance(v, Glob):
            continue
        if isinstance(v, Text | Data) and shapes.graded_pickle(v.offset):
            continue  # a pickle graded by its own scan
        if isinstance(v, Text):
            if v.text is None or v.loads or reads_as_command(v.text):
                return False
        elif isinstance(v, Data):
            if v.loads or (v.command and (v.printable or not rebuilds)):
                return False
        elif isinstance(v, Call):
            if _decoded(shapes, v, classes):
                return False  # text a decoder turned into a payload: `exec(b64decode("..."))`
            encoded = _latin1_bytes(shapes, v, sites, rebuilds)
            # another call's result: text inside it (a `Cmd("echo ...")` handed on) is not
            # this call's to see, so the stream's text must be inert, as before, unless that
            # call is judged by its own arguments (FS112 there when they are not state)
            if encoded is False or (
                encoded is None
                and not _judged_alone(shapes, v, sites, classes)
                and not shapes.inert_text()
            ):
                return False
        else:
            return False  # OPAQUE, or anything the walk could not see
    return True


def _stored_by_consumers(
    shapes: StreamShapes, k: int, classes: Sequence[Classification | None]
) -> bool:
    """Every call handed call `k`'s result as its first argument keeps its own result (never
    discarded nor called) and is a class nobody listed (spaCy's `Tokenizer(unpickle_vocab(...))`:
    a restoration with its own FS103, its arguments the object's state), or a callable the rules
    allow or the index finds reaching no sink, that is no reconstructor (which would instantiate
    the result) nor dispatcher. Not an unlisted function: its own argument test sees a call
    result judged alone (`_judged_alone`), so `eval(b64decode("..."))` would pass on both sides;
    its producer stays FS112."""
    calls = shapes.facts.calls
    consumers = [j for j, c in enumerate(calls) if c.first_arg_call == k and c.opcode != "BUILD"]
    for j in consumers:
        c = calls[j]
        made = classes[c.callable_index] if 0 <= c.callable_index < len(classes) else None
        if (
            made is None
            or c.callable_is_call
            or made.is_dangerous
            or made.category == CALLBACK_DISPATCH
            or made.resolved in RESTORING_HELPERS
            or shapes.of(j).uses & (USE_DISCARDED | USE_CALLED)
        ):
            return False
        if not (made.is_safe or index_inert(made)):
            name = shapes.facts.globals[c.callable_index].name
            if not (unlisted(made) and last_segment_is_class(name)):
                return False
    return bool(consumers)


def _judged_alone(
    shapes: StreamShapes, v: Call, sites: Sites, classes: Sequence[Classification | None]
) -> bool:
    """Call `v` is an unlisted name's call judged by its own recorded arguments (`application`:
    `wanted.wanted_in` weighs exactly these)."""
    k = shapes.call_at(v.offset)
    if v.offset not in sites:
        return False
    made_by = _made_by(shapes.facts, k, classes)
    return (
        made_by is not None
        and made_by.verdict_class == UNKNOWN
        and not made_by.entry_id
        and shapes.judged_by_arguments(shapes.of(k))
    )


def _hands_decoded(
    shapes: StreamShapes, shape: CallShape, sites: Sites, classes: Sequence[Classification | None]
) -> bool:
    """A construction (`by_contents`) is handed a reviewed decoder's result, at any depth of its
    arguments: decoded text is what a runner runs (`exec(b64decode("..."))`). Its other values
    stay the classifier's, as before: prose in a container reads like a command line."""
    site = sites.get(shapes.facts.calls[shape.call].offset)
    if site is None:
        return False
    return any(
        isinstance(v, Call) and _decoded(shapes, v, classes)
        for v in walk_values(site.args, _MAX_LEAVES)
    )


def _decoded(shapes: StreamShapes, v: Call, classes: Sequence[Classification | None]) -> bool:
    """Call `v` is a reviewed decoder's (base64, zlib, binascii: `knowledge.DECODER`)."""
    made_by = _made_by(shapes.facts, shapes.call_at(v.offset), classes)
    return made_by is not None and made_by.category == DECODER


def _state_bytes(raw: bytes, rebuilds: bool) -> bool:
    """Bytes that pass as an object's state: no pickle or archive a loader could open, and no
    command (`literals.bytes_read_as_command`: a NUL byte rules one out). Beside the class the
    call rebuilds, binary bytes pass too (bitarray's buffers often hold no NUL byte; a runner
    handed junk after its command stays a limit); printable text that reads as one does not."""
    if loadable(raw):
        return False
    return not bytes_read_as_command(raw) or (rebuilds and not printable(raw))


def _latin1_bytes(shapes: StreamShapes, v: Call, sites: Sites, rebuilds: bool) -> bool | None:
    """For a call result handed as an argument: None when it is not a `_codecs.encode` (judged on
    its own), True when it is protocol <= 2 bytes that pass as state (`_state_bytes`), False
    otherwise."""
    k = shapes.call_at(v.offset)
    if k < 0 or shapes.resolved_at(shapes.facts.calls[k].callable_index) not in _BYTES_MAKERS:
        return None
    site = sites.get(v.offset)
    if site is None or not site.args:
        return False
    text = site.args[0]
    if isinstance(text, Text) and shapes.graded_pickle(text.offset):
        return True  # a pickle graded by its own scan
    if not isinstance(text, Text) or text.text is None or text.loads:
        return False
    try:
        raw = text.text.encode("latin-1")
    except UnicodeError:
        return False  # not latin-1: the encode call raises, nothing is rebuilt
    # `loadable` here, not Text.loads: that one misses protocol 0's UNICODE-carried bytes
    return _state_bytes(raw, rebuilds)
