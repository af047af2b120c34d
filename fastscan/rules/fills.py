"""Which objects a stream's SETITEM(S)/APPEND(S)/ADDITEMS fill, for the index's container hooks.

The tokenizer does not attribute those opcodes to an object, and the loader only runs
`__setitem__`/`append`/`extend`/`add` when the target is an object some call made (on a literal
dict/list/set they fill it in place). This is a lean symbolic walk over the opcode listing
(`tokenizer.opcode_bounds`): stack entries are only what attribution needs (globals, call results
and which globals made them, tuples' first element, literal containers, strings for
STACK_GLOBAL); everything else is None. `render.py` walks the same semantics to produce text;
this one is kept small because it runs on the scan path (only when a reach could fire).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence
from typing import Any

from ..facts import StreamFacts
from ..opcodes import BY_NAME, GET_CODES, PUT_CODES, STRING_CODES
from ..opcodes import codes as _codes
from ..tokenizer import opcode_bounds
from .indexed import ATTRIBUTION_MAX_OPS, CONTAINER_HOOKS, FILL_HOOKS, RECONSTRUCTORS, Targets
from .knowledge import Classification
from .resolve import py3_spelling

_STRINGS = STRING_CODES
_SKIP = _codes("PROTO", "FRAME", "READONLY_BUFFER")
_QUOTED = BY_NAME["STRING"].code
_PUTS = PUT_CODES
_GETS = GET_CODES
_LITERAL = {BY_NAME["EMPTY_LIST"].code: "list", BY_NAME["EMPTY_DICT"].code: "dict"}
_LITERAL[BY_NAME["EMPTY_SET"].code] = "set"
_NAMES = {info.code: info.name for info in BY_NAME.values()}


class _Call:
    __slots__ = ("made_by",)

    def __init__(self, made_by: tuple[int, ...]) -> None:
        self.made_by = made_by  # offsets of the globals whose hooks a fill of this object runs


def attribute_containers(
    data: Any, facts: StreamFacts, classes: Sequence[Classification | None]
) -> Targets | None:
    """Which objects the stream's SETITEMS/APPENDS/ADDITEMS fill, found by a symbolic walk of
    its bytes (container_targets), only when a container-hook reach could fire: the
    tokenizer does not attribute those opcodes. None: not needed, or the walk gave up."""
    if not any(facts.opcode_counts[BY_NAME[name].code] for name in FILL_HOOKS):
        return None
    if not any(
        c and not (c.pinned or c.is_dangerous) and any(r.hook in CONTAINER_HOOKS for r in c.reaches)
        for c in classes
    ):
        return None
    return container_targets(data, facts.pickle_offsets, RECONSTRUCTORS, ATTRIBUTION_MAX_OPS)


def container_targets(
    data: Any, starts: Iterable[int], reconstructors: frozenset[str], max_ops: int
) -> dict[int, frozenset[str]] | None:
    """Offset of the global whose call made a filled object (or the class a reconstructor in
    `reconstructors` instantiated) -> hooks the loader runs on it. None when the walk passed
    `max_ops` opcodes (the caller then assumes every hook, failing closed)."""
    view = memoryview(data).cast("B") if memoryview(data).format != "B" else memoryview(data)
    out: dict[int, set[str]] = {}
    for start in starts:
        codes, offsets, arg_offsets, arg_lengths, _end, _status = opcode_bounds(
            view, start, max_ops + 1
        )
        max_ops -= len(codes)
        if max_ops < 0:
            return None
        _walk(view, codes, offsets, arg_offsets, arg_lengths, reconstructors, out)
    return {k: frozenset(v) for k, v in out.items()}


def _walk(  # noqa: PLR0917
    view: memoryview,
    codes: bytes,
    offsets: Any,
    arg_offsets: Any,
    arg_lengths: Any,
    reconstructors: frozenset[str],
    out: dict[int, set[str]],
) -> None:
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[Any, Any] = {}

    def pop() -> Any:
        return stack.pop() if stack else None

    def pop_mark() -> list[Any]:
        k = marks.pop() if marks else 0
        items = stack[k:]
        del stack[k:]
        return items

    def text(item: Any) -> str | None:
        if not (isinstance(item, tuple) and item[0] == "u"):
            return None
        raw = bytes(view[item[1] : item[1] + item[2]])
        if item[3] == _QUOTED:  # STRING: a quoted repr on one line
            raw = codecs.escape_decode(raw.strip()[1:-1])[0]
        return raw.decode("utf-8", "replace")

    def made(callable_: Any, first: Any) -> _Call:
        if not (isinstance(callable_, tuple) and callable_[0] == "g"):
            return _Call(())
        by = [callable_[1]]
        if callable_[2] in reconstructors and isinstance(first, tuple) and first[0] == "g":
            by.append(first[1])
        return _Call(tuple(by))

    for i, code in enumerate(codes):
        name = _NAMES.get(code, "")
        if code in _STRINGS:  # decoded only if a STACK_GLOBAL takes it
            stack.append(("u", arg_offsets[i], arg_lengths[i], code))
        elif code in _LITERAL:
            stack.append([_LITERAL[code]])
        elif name == "MARK":
            marks.append(len(stack))
        elif name == "STOP":
            break
        elif code in _SKIP:
            continue
        elif code in _PUTS or name == "MEMOIZE":
            if stack:
                key = (
                    len(memo)
                    if name == "MEMOIZE"
                    else _key(view, name, arg_offsets[i], arg_lengths[i])
                )
                memo[key] = stack[-1]
        elif code in _GETS:
            stack.append(memo.get(_key(view, name, arg_offsets[i], arg_lengths[i])))
        elif name in ("GLOBAL", "INST"):
            raw = bytes(view[arg_offsets[i] : arg_offsets[i] + arg_lengths[i]])
            module, _, attr = raw.decode("utf-8", "replace").partition("\n")
            g = ("g", offsets[i], ".".join(py3_spelling(module.strip(), attr.strip())))
            if name == "GLOBAL":
                stack.append(g)
            else:
                args = pop_mark()
                stack.append(made(g, args[0] if args else None))
        elif name == "STACK_GLOBAL":
            qual_text, module_text = text(pop()), text(pop())
            qual = ""
            if module_text and qual_text:
                qual = ".".join(py3_spelling(module_text, qual_text))
            stack.append(("g", offsets[i], qual) if qual else None)
        elif name == "REDUCE":
            args, f = pop(), pop()
            first = args[1] if isinstance(args, tuple) and args[0] == "t" else None
            stack.append(made(f, first))
        elif name in ("NEWOBJ", "NEWOBJ_EX"):
            if name == "NEWOBJ_EX":
                pop()
            pop()
            stack.append(made(pop(), None))
        elif name == "OBJ":
            items = pop_mark()
            stack.append(made(items[0] if items else None, None))
        elif name in ("TUPLE", "FROZENSET", "LIST", "DICT"):
            items = pop_mark()
            stack.append(("t", items[0] if items else None) if name == "TUPLE" else None)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            items = [pop() for _ in range(int(name[-1]))][::-1]
            stack.append(("t", items[0]))
        elif name == "EMPTY_TUPLE":
            stack.append(("t", None))
        elif name in FILL_HOOKS:
            if name in ("APPEND", "SETITEM"):
                for _ in range(1 if name == "APPEND" else 2):
                    pop()
            else:
                pop_mark()
            target = stack[-1] if stack else None
            if isinstance(target, _Call):
                for by in target.made_by:
                    out.setdefault(by, set()).update(FILL_HOOKS[name])
        elif name in ("POP", "BUILD", "BINPERSID"):
            if name == "POP" and marks and len(stack) == marks[-1]:
                marks.pop()
            else:
                pop()
            if name == "BINPERSID":
                stack.append(None)
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1] if stack else None)
        else:  # numbers, bytes, None/True/False, PERSID, EXT*, NEXT_BUFFER: plain values
            stack.append(None)


def _key(view: memoryview, name: str, offset: int, length: int) -> int | None:
    """The memo key a PUT/GET names: decimal text (protocol 0) or a little-endian integer."""
    raw = bytes(view[offset : offset + length])
    if name in ("PUT", "GET"):
        try:
            return int(raw.strip())
        except ValueError:
            return None
    return int.from_bytes(raw, "little")
