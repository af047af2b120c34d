"""What each call of a stream is handed: its arguments and the state BUILD gives its result.

The tokenizer links a call to its callable and its first argument only. Judging `getattr`,
`functools.partial`, a callback dispatcher or a class whose `__setstate__` runs a nested loader
by what the loader really passes needs every argument: `getattr(obj, "delaxes")` is a method of
the object `obj` some NEWOBJ built, `partial(f)` followed by a BUILD hands `f` the callables in
that state, and a loader reached through `__setstate__` loads only bytes found in the state.

`call_sites` walks the stream's opcodes symbolically (as `fills.py` does) once per stream, only
when it holds a global whose calls are judged that way (`wanted`), and records for those calls:
- `Site.args`: the argument values, snapshotted when the call runs (what the callee receives);
- `Site.states`: the state of each BUILD applied to the call's result (`__setstate__`'s input).
Values are immutable: `Glob` (a global, by opcode offset), `Text` (a literal str), `Data` (a
literal immutable bytes operand), `Call` (another call's result, by opcode offset), `Box`
(tuple/list/dict/set items), `VALUE` (a number, None, a bool) and `OPAQUE` (anything the walk
cannot see: a persistent id, a bad memo key, a mutable bytearray, a budget cut). Everything
unknown is OPAQUE, so a judge that needs to see all of a value fails closed on it.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..facts import StreamFacts
from ..opcodes import BY_NAME, GET_CODES, PUT_CODES, STRING_CODES
from ..opcodes import codes as _codes
from ..tokenizer import CARRIERS, opcode_bounds
from ..tokenizer import _carried_bytes as carried_bytes
from .literals import bytes_read_as_command, latin1_loadable, loadable, printable

MAX_OPS = 250_000  # opcodes walked per stream (~0.25 s at worst); past it no sites: as before
MAX_NODES = 200_000  # values snapshotted per stream; past it a snapshot is OPAQUE
_MAX_KEYS = 2 * 4096  # items of a BUILD dict whose names are listed (Keys)
MAX_TEXT = 4096  # longer literal strings are Text(None): the content is not needed, but ...
MAX_JUDGED_TEXT, MAX_JUDGED_TOTAL = 1 << 24, 1 << 26  # ... judged ones (per string, per walk)


class Glob(NamedTuple):
    offset: int  # offset of the importing opcode (GlobalRef.offset)


class Text(NamedTuple):
    text: str | None  # None when longer than MAX_TEXT (MAX_JUDGED_TEXT when judged), undecodable
    offset: int  # operand offset in the buffer (NestedPickle.offset of a carried pickle)
    loads: bool = False  # deep walks: its bytes could be something a loader runs (`loadable`)


class Data(NamedTuple):
    offset: int  # operand offset (NestedPickle.offset when it was read as a nested pickle)
    length: int
    loads: bool = False
    command: bool = False  # weighed walks: the bytes may be a command (`bytes_read_as_command`)
    printable: bool = False  # weighed walks: printable ASCII text only (`printable`)


class Call(NamedTuple):
    offset: int  # offset of the call opcode (CallSite.offset)


class Box(NamedTuple):
    items: tuple[Any, ...]
    kind: str = "tuple"  # tuple | list | dict | set | frozenset: the builtin type it is


class _Mark(NamedTuple):
    kind: str


VALUE = _Mark("value")
OPAQUE = _Mark("opaque")


@dataclass(slots=True)
class Site:
    args: tuple[Any, ...] = ()
    states: list[Any] = field(default_factory=list)
    named: bool = False  # its result is a STACK_GLOBAL operand: a name computed at load time


Sites = dict[int, Site]  # call offset -> what it was handed
# watched global offset -> offsets of the calls whose objects get it as state or items; a
# global handed to any call, hashed, filled or built, or not followed, is absent. A watched call
# offset (a partial object: rules/kept.py) is followed the same way, except that its own
# BUILD and fills are its class's business, not a use.
Stored = dict[int, frozenset[int]]
# call offset -> the instance-dict names the BUILDs of its result set (None: a state that is no
# dict, so any name); calls without a BUILD are absent. Kept for every call, recorded or not.
Keys = dict[int, frozenset[str] | None]


_STRINGS = STRING_CODES
_BYTES = _codes("SHORT_BINBYTES", "BINBYTES", "BINBYTES8")  # immutable bytes literals
_VALUES = _codes(
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "NONE", "NEWTRUE", "NEWFALSE",
)  # fmt: skip
_SKIP = _codes("PROTO", "FRAME")
_PUTS = PUT_CODES
_GETS = GET_CODES
_EMPTY = {BY_NAME[n].code: n[6:].lower() for n in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET")}
_NAMES = {info.code: info.name for info in BY_NAME.values()}
_QUOTED, _UNICODE = BY_NAME["STRING"].code, BY_NAME["UNICODE"].code
_UTF8_TEXT = _codes("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8")
_BYTES_CODE = BY_NAME["BYTEARRAY8"].code
_BYTES_LIKE = _BYTES | {_BYTES_CODE}
_LITERALS = _STRINGS | _BYTES
_MEMOIZE, _MARK = BY_NAME["MEMOIZE"].code, BY_NAME["MARK"].code
_TEXT_KEYS = _codes("PUT", "GET")  # protocol 0 memo keys are decimal text
_SMALL_TUPLES = {BY_NAME[f"TUPLE{n}"].code: n for n in (1, 2, 3)}
_APPEND, _SETITEM = BY_NAME["APPEND"].code, BY_NAME["SETITEM"].code
_FILL_CODES = _codes("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS")


def EVERY(offset: int) -> bool:
    """`wanted` for a deep walk: every call's site, and which literals a loader could run."""
    return True


def NONE(offset: int) -> bool:
    """`weigh` when no call's literals are weighed."""
    return False


def call_sites(
    data: Any,
    facts: StreamFacts,
    wanted: Callable[[int], bool],
    deep: bool = False,
    *,
    weigh: Callable[[int], bool] = NONE,
    watch: frozenset[int] = frozenset(),
) -> tuple[Sites, Keys, Stored]:
    """Sites of the calls whose callable is a global `wanted(global offset)` accepts, and of
    calls of a call result; empty when no global is wanted or the walk gave up. `deep`: every
    call, and Text/Data.loads filled. `weigh`: globals whose calls get Text/Data.loads and
    Data.command filled (their literal arguments judged: unknown_calls). `watch`: globals (and
    calls, by opcode offset) whose every use is followed (`Stored`)."""
    if not deep and not watch and not any(wanted(g.offset) for g in facts.globals):
        return {}, {}, {}
    view = memoryview(data).cast("B") if memoryview(data).format != "B" else memoryview(data)
    walk = _Walk(view, EVERY if deep else wanted)
    walk.deep = deep
    walk.weigh = weigh
    walk.watch = watch
    budget = MAX_OPS
    for start in facts.pickle_offsets:
        codes, offsets, arg_offsets, arg_lengths, _end, _status = opcode_bounds(
            view, start, budget + 1
        )
        budget -= len(codes)
        if budget < 0:
            return {}, {}, {}
        walk.run(codes, offsets, arg_offsets, arg_lengths)
    return walk.sites, walk.keys, walk.stored()


class _List:
    """A mutable container on the symbolic stack (list, dict, set, or a call's result that
    SETITEMS/APPENDS fill: only its items matter here)."""

    __slots__ = ("handed", "items", "kind")

    def __init__(self, kind: str) -> None:
        self.items: list[Any] = []
        self.kind = kind
        self.handed = False  # passed to a call or an object: later items are handed too


class _Lazy(NamedTuple):
    """A str/bytes operand on the symbolic stack, decoded only when a snapshot needs it."""

    offset: int
    length: int
    code: int


class _Walk:
    def __init__(self, view: memoryview, wanted: Callable[[int], bool]) -> None:
        self.view = view
        self.wanted = wanted
        self.sites: Sites = {}
        self.keys: dict[int, frozenset[str] | None] = {}  # call -> names its BUILDs set
        self.nodes = MAX_NODES
        self.memo: dict[Any, Any] = {}
        self.deep = False
        self.weigh: Callable[[int], bool] = NONE
        self._weighing = False  # snapshotting a weighed call's arguments
        self._decoded: dict[int, Any] = {}
        self._weighed: dict[int, Any] = {}  # literals decoded while weighing
        self.watch: frozenset[int] = frozenset()
        self._handed: set[int] = set()  # watched offsets that reach a call
        self._owners: dict[int, set[int]] = {}  # watched offset -> calls whose state holds it
        self._owned: dict[int, set[Glob | Call]] = {}  # the reverse: call -> what it holds
        self._touches = MAX_NODES  # values looked at for watched globals; past it all handed
        self._long_text = MAX_JUDGED_TOTAL  # characters of judged strings past MAX_TEXT left

    def snapshot(self, value: Any, depth: int = 0) -> Any:
        """An immutable copy of `value` as the callee sees it now (budgeted; OPAQUE past it)."""
        self.nodes -= 1
        if self.nodes < 0 or depth > 64:
            return OPAQUE
        if isinstance(value, _Lazy):
            return self.literal(value)
        if isinstance(value, _List):
            return Box(tuple(self.snapshot(v, depth + 1) for v in value.items), value.kind)
        if isinstance(value, _Result):
            return value.call
        if isinstance(value, _Bytearray):  # its bytes, unless a fill changed them (extend)
            return OPAQUE if value.changed else self.literal(value.data)
        if _plain(value):
            return Box(tuple(self.snapshot(v, depth + 1) for v in value))
        return value

    def literal(self, lazy: _Lazy) -> Text | Data:
        weighed = self._weighing and not self.deep
        cache = self._weighed if weighed else self._decoded
        done = cache.get(lazy.offset)
        if done is None:
            judged = self.deep or weighed
            if lazy.code in _BYTES_LIKE:
                raw = bytes(self.view[lazy.offset : lazy.offset + lazy.length])
                done = Data(
                    lazy.offset,
                    lazy.length,
                    judged and loadable(raw),
                    judged and bytes_read_as_command(raw),
                    judged and printable(raw),
                )
            else:
                done = self.text(lazy.offset, lazy.length, lazy.code, judged)
            cache[lazy.offset] = done
        return done

    def text(self, offset: int, length: int, code: int, judged: bool) -> Text:
        raw = bytes(self.view[offset : offset + length])
        loads = judged and (loadable(raw) or (code in _UTF8_TEXT and latin1_loadable(raw)))
        limit = max(MAX_TEXT, min(MAX_JUDGED_TEXT, self._long_text)) if judged else MAX_TEXT
        if length > limit * 4:
            return Text(None, offset, loads)
        try:
            if code in (_QUOTED, _UNICODE) and raw.endswith(b"\n"):
                raw = raw[:-1]  # the loader reads the line without its newline
            if code == _QUOTED:
                raw = raw.strip()
                if len(raw) >= 2 and raw[0] == raw[-1] and raw[:1] in (b"'", b'"'):
                    raw = raw[1:-1]
                text = codecs.escape_decode(raw)[0].decode("latin-1")
            elif code == _UNICODE:
                text = raw.decode("raw_unicode_escape")
            else:
                text = raw.decode("utf-8", "replace")
        except (ValueError, UnicodeError):
            return Text(None, offset, loads)
        if len(text) > limit:
            return Text(None, offset, loads)
        self._long_text -= len(text) if len(text) > MAX_TEXT else 0
        return Text(text, offset, loads)

    def call(self, offset: int, callable_: Any, args: Iterable[Any]) -> _Result:
        args = tuple(args)
        first = args[0] if args else None
        wanted = isinstance(callable_, _Result) or any(
            isinstance(v, Glob) and self.wanted(v.offset) for v in (callable_, first)
        )  # the first argument: the class a reconstructor or partial is handed
        if self.watch:
            self.touch((callable_, args), None)
        result = _Result(Call(offset))
        if wanted:
            self._weighing = isinstance(callable_, Glob) and self.weigh(callable_.offset)
            site = Site(tuple(self.snapshot(a) for a in args))
            self._weighing = False
            self.sites[offset] = site
            result.site = site
        return result

    def build(self, target: Any, state: Any) -> None:
        """BUILD: the state a recorded call's result gets, and the instance-dict names any
        call's result gets (None when the state is no dict, or a tuple of dicts)."""
        if self.watch:
            mine = isinstance(target, _Result) and not target.handed
            owner = target.call.offset if mine else None
            self.touch((target, state) if owner is None else state, owner)
        if not isinstance(target, _Result):
            return
        if target.site is not None:
            target.site.states.append(self.snapshot(state))
        parts = state if _plain(state) and len(state) == 2 else (state,)
        names: set[str] = set()
        for part in parts:
            if part is VALUE:  # None: no dict part
                continue
            if not (isinstance(part, _List) and part.kind == "dict") or len(part.items) > _MAX_KEYS:
                self.keys[target.call.offset] = None  # unseen or too big to list: any name
                return
            for k in part.items[::2]:
                text = self.literal(k) if isinstance(k, _Lazy) else None
                if not isinstance(text, Text) or text.text is None:
                    self.keys[target.call.offset] = None
                    return
                names.add(text.text)
        before = self.keys.get(target.call.offset, frozenset())
        if before is not None:
            self.keys[target.call.offset] = before | names

    def touch(self, value: Any, owner: int | None) -> None:
        """Watched globals inside `value` are handed to a call (`owner` None) or given, as
        state or items, to the object call `owner` made (its class's hooks get them)."""
        todo = [value]
        while todo:
            v = todo.pop()
            self._touches -= 1
            if self._touches < 0:
                self._handed |= self.watch  # too much to follow: fail closed
                self.watch = frozenset()
                return
            if isinstance(v, (Glob, Call)):  # Call: a watched result some object holds
                if v.offset in self.watch:
                    if owner is None:
                        self._handed.add(v.offset)
                    else:
                        self._owners.setdefault(v.offset, set()).add(owner)
                        self._owned.setdefault(owner, set()).add(v)
            elif isinstance(v, _Result):  # an object holding watched values, passed on
                if v.call.offset in self.watch:
                    todo.append(v.call)  # a watched call's own result (a partial object)
                if owner is None:
                    v.handed = True
                todo.extend(self._owned.get(v.call.offset, ()))
            elif isinstance(v, _List):
                v.handed = True
                todo.extend(v.items)
            elif _plain(v) or isinstance(v, list):  # a tuple, or items being added
                todo.extend(v)

    def fill(self, target: Any, items: list[Any]) -> None:
        """SETITEM(S)/APPEND(S)/ADDITEMS for watched globals: a plain dict's keys are hashed (a
        metaclass hook), a set's members too; an object's items reach its class's hooks."""
        if isinstance(target, _Result) and not target.handed:
            self.touch(items, target.call.offset)
        elif not isinstance(target, _List) or target.handed or target.kind == "set":
            self.touch((target, items), None)
        elif target.kind == "dict":
            self.touch(items[::2], None)

    def stored(self) -> Stored:
        """Watched globals never handed to a call: the calls whose objects hold them."""
        return {g: frozenset(self._owners.get(g, ())) for g in self.watch if g not in self._handed}

    def run(self, codes: bytes, offsets: Any, arg_offsets: Any, arg_lengths: Any) -> None:
        stack: list[Any] = []
        marks: list[int] = []
        memo = self.memo
        memo.clear()
        view = self.view

        def pop() -> Any:
            return stack.pop() if stack else OPAQUE

        def pop_mark() -> list[Any]:
            k = marks.pop() if marks else 0
            items = stack[k:]
            del stack[k:]
            return items

        def key(i: int, code: int) -> Any:
            a, n = arg_offsets[i], arg_lengths[i]
            if code in _TEXT_KEYS:
                try:
                    return int(bytes(view[a : a + n]).strip())
                except ValueError:
                    return None
            return int.from_bytes(view[a : a + n], "little")

        for i, code in enumerate(codes):
            if code == _MEMOIZE:
                if stack:
                    memo[len(memo)] = stack[-1]
            elif code in _PUTS:
                if stack:
                    memo[key(i, code)] = stack[-1]
            elif code in _LITERALS:
                stack.append(_Lazy(arg_offsets[i], arg_lengths[i], code))
            elif code in _GETS:
                got = memo.get(key(i, code), OPAQUE)
                if got is OPAQUE and self.watch:
                    # a memo entry this walk did not see (a joblib segment reads the memo of
                    # the one before): it may be a watched global, handed anywhere
                    self._handed |= self.watch
                stack.append(got)
            elif code in _VALUES:
                stack.append(VALUE)
            elif code == _MARK:
                marks.append(len(stack))
            elif code in _EMPTY:
                stack.append(_List(_EMPTY[code]))
            elif code in _SKIP:
                continue
            elif code in _SMALL_TUPLES:
                n = _SMALL_TUPLES[code]
                items = stack[-n:] if len(stack) >= n else [OPAQUE] * n
                del stack[-n:]
                stack.append(tuple(items))
            elif code in _FILL_CODES:
                if code == _APPEND:
                    items = [pop()]
                elif code == _SETITEM:
                    value = pop()
                    items = [pop(), value]
                else:
                    items = pop_mark()
                target = stack[-1] if stack else None
                if self.watch:
                    self.fill(target, items)
                if isinstance(target, _List):
                    target.items.extend(items)
                elif isinstance(target, _Bytearray):
                    target.changed = True
            elif self._rare(
                code, i, stack, marks, pop, pop_mark, offsets, arg_offsets, arg_lengths
            ):
                break

    def _rare(  # noqa: PLR0917
        self,
        code: int,
        i: int,
        stack: list[Any],
        marks: list[int],
        pop: Callable[[], Any],
        pop_mark: Callable[[], list[Any]],
        offsets: Any,
        arg_offsets: Any,
        arg_lengths: Any,
    ) -> bool:
        """The less frequent opcodes; True at STOP."""
        name = _NAMES.get(code, "")
        if name == "STOP":
            return True
        if name == "GLOBAL":
            stack.append(Glob(offsets[i]))
        elif name == "STACK_GLOBAL":
            for operand in (pop(), pop()):
                if isinstance(operand, _Result) and operand.site is not None:
                    operand.site.named = True
            stack.append(Glob(offsets[i]))
        elif name == "INST":
            stack.append(self.call(offsets[i], Glob(offsets[i]), pop_mark()))
        elif name == "OBJ":
            items = pop_mark()
            stack.append(self.call(offsets[i], items[0] if items else OPAQUE, items[1:]))
        elif name == "REDUCE":
            args, f = pop(), pop()
            stack.append(self.call(offsets[i], f, args if _plain(args) else (OPAQUE,)))
        elif name in ("NEWOBJ", "NEWOBJ_EX"):
            kwargs = pop() if name == "NEWOBJ_EX" else None
            args, cls = pop(), pop()
            passed: tuple[Any, ...] = args if _plain(args) else (OPAQUE,)
            if kwargs is not None:
                passed = (*passed, kwargs)
            stack.append(self.call(offsets[i], cls, passed))
        elif name == "BUILD":
            state = pop()
            self.build(stack[-1] if stack else None, state)
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("LIST", "DICT", "FROZENSET"):
            box = _List(name.lower())
            box.items = pop_mark()
            if self.watch and name != "LIST":  # keys and members are hashed
                self.touch(box.items[::2] if name == "DICT" else box.items, None)
            stack.append(box)
        elif name == "POP":
            if marks and len(stack) == marks[-1]:
                marks.pop()
            else:
                pop()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1] if stack else OPAQUE)
        elif name in ("BINPERSID", "PERSID"):
            if name == "BINPERSID":
                pid = pop()
                if self.watch:
                    self.touch(pid, None)  # persistent_load(pid) is a call
            stack.append(OPAQUE)
        elif name == "BYTEARRAY8":
            stack.append(_Bytearray(_Lazy(arg_offsets[i], arg_lengths[i], _BYTES_CODE)))
        elif name != "READONLY_BUFFER":  # EXT*, NEXT_BUFFER, unknown: not seen into
            stack.append(OPAQUE)
        return False


def _plain(value: Any) -> bool:
    """A tuple the pickle built (TUPLE*), not one of this module's value records."""
    return isinstance(value, tuple) and not hasattr(value, "_fields")


class _Bytearray:
    """A BYTEARRAY8 literal: mutable, so SETITEMS/APPENDS on it (extend) change its bytes."""

    __slots__ = ("changed", "data")

    def __init__(self, data: _Lazy) -> None:
        self.data = data
        self.changed = False


class _Result:
    """A call's result on the symbolic stack; `site` is set when the call was recorded."""

    __slots__ = ("call", "handed", "site")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.site: Site | None = None
        self.handed = False  # passed to a call: state or items it gets later are handed too


def walk_values(
    values: Iterable[Any], limit: int = 100_000, into: Container[str] | None = None
) -> Iterable[Any]:
    """Every leaf value inside `values` (Box items flattened), at most `limit` of them; an
    OPAQUE is yielded when the limit cuts the walk. `into`: the Box kinds whose items are
    walked (None: every kind); a Box of another kind is skipped whole."""
    todo = list(values)
    while todo:
        v = todo.pop()
        limit -= 1
        if limit < 0:
            yield OPAQUE
            return
        if isinstance(v, Box):
            if into is None or v.kind in into:
                todo.extend(v.items)
        else:
            yield v


class StreamSites(NamedTuple):
    """A stream's sites and those of the nested pickles the walk could read (by index into
    StreamFacts.nested)."""

    sites: Sites
    nested: dict[int, StreamSites]
    keys: Keys
    stored: Stored = {}  # noqa: RUF012  (never mutated)

    @staticmethod
    def of(
        sites: StreamSites | None, outer: StreamFacts, nested: StreamFacts
    ) -> StreamSites | None:
        """The sites of `nested`, one of `outer`'s nested pickles (None when not walked)."""
        if sites is None:
            return None
        k = next((k for k, n in enumerate(outer.nested) if n.facts is nested), -1)
        return sites.nested.get(k)


_READABLE_CARRIERS = frozenset({"", "bytes"})  # the nested buffer is the operand's own bytes
_ENCODINGS = {name: enc for enc, name in CARRIERS.items() if name not in _READABLE_CARRIERS}


class Wanted(NamedTuple):
    """What `call_sites` records for one stream (its arguments, in order)."""

    wanted: Callable[[int], bool]
    deep: bool = False
    weigh: Callable[[int], bool] = NONE
    watch: frozenset[int] = frozenset()


def stream_sites(
    data: Any, facts: StreamFacts, wanted_in: Callable[[StreamFacts], Wanted]
) -> StreamSites:
    """`call_sites` of a stream and, recursively, of its raw nested pickles (the bytes of a
    `_codecs.encode` latin-1 text too); `wanted_in(facts)` gives each stream's predicate."""
    want = wanted_in(facts)
    sites, keys, stored = call_sites(
        data, facts, want.wanted, want.deep, weigh=want.weigh, watch=want.watch
    )
    nested: dict[int, StreamSites] = {}
    if facts.nested:
        view = memoryview(data).cast("B") if memoryview(data).format != "B" else memoryview(data)
        for k, n in enumerate(facts.nested):
            if n.encoding != "raw":
                continue
            buf: Any = None
            if n.carrier in _READABLE_CARRIERS:
                buf = view[n.offset : n.offset + n.length]
            elif n.carrier in _ENCODINGS:  # the bytes the tokenizer made of the text
                buf = carried_bytes(view, n.offset, n.length, _ENCODINGS[n.carrier])
            if buf is not None:
                nested[k] = stream_sites(buf, n.facts, wanted_in)
    return StreamSites(sites, nested, keys, stored)


__all__ = [
    "EVERY",
    "NONE",
    "OPAQUE",
    "VALUE",
    "Box",
    "Call",
    "Data",
    "Glob",
    "Keys",
    "Site",
    "Sites",
    "Stored",
    "StreamSites",
    "Text",
    "Wanted",
    "call_sites",
    "stream_sites",
    "walk_values",
]
