"""A pickle rendered as the Python the loader would run, for `fastscan explain`.

A symbolic walk over the opcode listing (`tokenizer.iter_opcodes`): the stack holds descriptions
of values, never values; globals are names, calls are text. Nothing is imported, called or
unpickled. The loader's semantics per opcode are `pickle._Unpickler`'s load_* methods:
REDUCE `f(*args)`, NEWOBJ `cls.__new__(cls, *args)`, OBJ/INST `cls(*args)`, BUILD
`obj.__setstate__(state)`, SETITEM(S) `obj[k] = v`, APPENDS `obj.extend(items)`, ADDITEMS
`obj.add(x)`, (BIN)PERSID `persistent_load(pid)`, EXT* the copyreg extension registry.

A call's result is written inline where it is used once; it becomes a variable (`obj1 = ...`)
when the pickle uses it twice or mutates it, and a bare statement when nothing uses it. Long
strings, bytes and containers are elided with counts; the text shows each container's final
state (a container filled after a call received it shows the filled state).
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .opcodes import BY_CODE
from .tokenizer import Op, iter_opcodes

MAX_STR = 60  # characters of a string shown
MAX_BYTES = 16  # bytes of a bytes operand shown
MAX_ITEMS = 6  # container items shown
MAX_DEPTH = 5  # nesting shown
MAX_STATEMENTS = 40  # statements per pickle
MAX_OPS = 500_000  # opcodes walked per pickle (~5 s); the rest is not rendered

# The literal each container opcode fills in place; on anything else it calls a method.
_FILLS = {"APPEND": "list", "APPENDS": "list", "SETITEM": "dict", "SETITEMS": "dict"}
_FILLS["ADDITEMS"] = "set"


@dataclass(eq=False)
class _V:
    """A symbolic value: `kind` says how `text` and `items` render."""

    kind: str  # const | global | call | list | dict | tuple | set | frozenset | text
    text: str = ""  # const/global/text: the rendering; call: the call expression's head
    items: list[Any] = field(default_factory=list)  # elements, or (key, value) for dicts
    uses: int = 0  # times consumed by another opcode (a call result used twice is a variable)
    mutated: bool = False  # BUILD/SETITEM(S)/APPENDS/ADDITEMS applied to a call result
    var: str = ""  # assigned variable name
    value: Any = None  # const: the decoded value (STACK_GLOBAL reads its operands from it)


def _const(value: Any) -> _V:
    return _V("const", _short(value), value=value)


def _text(raw: bytes) -> str | bytes:
    """STRING/BINSTRING operands: Python 3's loader decodes them as ASCII by default."""
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw


def _short(value: Any) -> str:
    """repr, cut to about MAX_STR characters of text with the full size noted."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits
        return f"<int of {value.bit_length()} bits>"
    if len(text) <= MAX_STR + 2:
        return text
    if isinstance(value, (str, bytes)):
        size = f"{len(value)} {'chars' if isinstance(value, str) else 'bytes'}"
    else:
        size = f"{len(text)} digits"
    return f"{text[: MAX_STR + 1]}…({size})"


class _Renderer:
    def __init__(self, view: memoryview, names: dict[str, tuple[str, str, str]]) -> None:
        self.view = view
        self.stack: list[_V] = []
        self.marks: list[int] = []
        self.memo: dict[int, _V] = {}
        self.statements: list[tuple[str, _V, Any]] = []
        self.notes: list[str] = []
        self.names = names  # qualified -> (module, name, rendering), shared by a file's pickles
        self.taken = {text for _m, _n, text in names.values()}
        self.vars = 0

    # -- stack ----------------------------------------------------------------------------------

    def push(self, v: _V) -> None:
        self.stack.append(v)

    def pop(self, at: int) -> _V:
        if not self.stack:
            self.notes.append(f"# offset {at}: stack underflow (the loader raises here)")
            return _V("text", "<?>")
        v = self.stack.pop()
        v.uses += 1
        return v

    def pop_mark(self, at: int) -> list[_V]:
        if not self.marks:
            self.notes.append(f"# offset {at}: no MARK (the loader raises here)")
            items, self.stack = self.stack, []
        else:
            k = self.marks.pop()
            items = self.stack[k:]
            del self.stack[k:]  # in place: a deep stack under the mark is not copied
        for v in items:
            v.uses += 1
        return items

    # -- operands -------------------------------------------------------------------------------

    def raw(self, op: Op, limit: int = 1 << 16) -> bytes:
        return bytes(self.view[op.arg_offset : op.arg_offset + min(op.arg_length, limit)])

    def line(self, op: Op) -> str:
        return self.raw(op).rstrip(b"\r\n").decode("utf-8", "replace")

    def global_(self, module: str, name: str) -> _V:
        qualified = f"{module}.{name}"
        short = name.rsplit(".", 1)[-1]
        klass = short.lstrip("_")[:1].isupper()
        if qualified not in self.names:
            taken = self.taken
            text = short if klass and "." not in name and short not in taken else qualified
            self.names[qualified] = (module, name, text)
            taken.add(text)
        return _V("global", self.names[qualified][2])

    # -- the walk -------------------------------------------------------------------------------

    def step(self, op: Op) -> bool:
        """Apply one opcode; False at STOP."""
        name, at = op.name, op.offset
        if name == "STOP":
            top = self.pop(at)
            self.statements.append(("result", top, None))
            return False
        if name == "MARK":
            self.marks.append(len(self.stack))
        elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
            pass
        elif name == "POP":
            if self.marks and len(self.stack) == self.marks[-1]:
                self.marks.pop()  # the loader's POP of an empty frame drops its MARK
            else:
                self.pop(at)
        elif name == "POP_MARK":
            self.pop_mark(at)
        elif name == "DUP":
            self.push(self.stack[-1] if self.stack else _V("text", "<?>"))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            key = len(self.memo) if name == "MEMOIZE" else self.int_arg(op)
            if self.stack:
                self.memo[key] = self.stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            key = self.int_arg(op)
            self.push(self.memo.get(key) or _V("text", f"<memo {key} never stored>"))
        elif name in ("GLOBAL", "INST"):
            module, _, attr = self.raw(op).decode("utf-8", "replace").partition("\n")
            g = self.global_(module.rstrip("\r"), attr.rstrip("\r\n"))
            if name == "GLOBAL":
                self.push(g)
            else:
                self.call("INST", g, _V("tuple", items=self.pop_mark(at)))
        elif name == "STACK_GLOBAL":
            qual, mod = self.pop(at), self.pop(at)
            if (
                mod.kind == qual.kind == "const"
                and isinstance(mod.value, str)
                and isinstance(qual.value, str)
            ):
                self.push(self.global_(mod.value, qual.value))
            else:
                self.push(_V("text", f"getattr(import_module({self.expr(mod)}), …)"))
        elif name in ("EXT1", "EXT2", "EXT4"):
            self.push(_V("text", f"copyreg_extension({self.int_arg(op)})"))
        elif name in ("PERSID", "BINPERSID"):
            pid = _const(self.line(op)) if name == "PERSID" else self.pop(at)
            self.push(_V("call", "persistent_load", [pid]))
        elif name == "REDUCE":
            args, f = self.pop(at), self.pop(at)
            self.call(name, f, args)
        elif name in ("NEWOBJ", "NEWOBJ_EX"):
            kwargs = self.pop(at) if name == "NEWOBJ_EX" else None
            args, cls = self.pop(at), self.pop(at)
            self.call(name, cls, args, kwargs)
        elif name == "OBJ":
            items = self.pop_mark(at)
            cls = items[0] if items else _V("text", "<?>")
            self.call(name, cls, _V("tuple", items=items[1:]))
        else:
            self.data_op(op)
        return True

    def data_op(self, op: Op) -> None:
        name, at = op.name, op.offset
        if name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "EMPTY_TUPLE"):
            self.push(_V(name[6:].lower()))
        elif name in ("LIST", "TUPLE", "FROZENSET"):
            self.push(_V(name.lower(), items=self.pop_mark(at)))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = [self.pop(at) for _ in range(n)][::-1]
            self.push(_V("tuple", items=items))
        elif name == "DICT":
            flat = self.pop_mark(at)
            self.push(_V("dict", items=list(zip(flat[::2], flat[1::2], strict=False))))
        elif name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS"):
            if name in ("APPEND", "SETITEM"):
                n = 1 if name == "APPEND" else 2
                items = [self.pop(at) for _ in range(n)][::-1]
            else:
                items = self.pop_mark(at)
            target = self.stack[-1] if self.stack else _V("text", "<?>")
            pairs: list[Any] = items
            if name.startswith("SETITEM"):
                pairs = list(zip(items[::2], items[1::2], strict=False))
            if target.kind == _FILLS[name]:
                target.items.extend(pairs)
            else:
                target.mutated = True
                self.statements.append((name, target, pairs))
        elif name == "BUILD":
            state = self.pop(at)
            obj = self.stack[-1] if self.stack else _V("text", "<?>")
            obj.mutated = True
            self.statements.append(("BUILD", obj, state))
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            self.push(_V("const", {"NONE": "None", "NEWTRUE": "True", "NEWFALSE": "False"}[name]))
        elif name == "NEXT_BUFFER":
            self.push(_V("text", "<out-of-band buffer>"))
        else:
            self.push(self.value(op))

    def value(self, op: Op) -> _V:
        """Scalar operands: numbers, strings, bytes."""
        name, raw = op.name, self.raw(op, MAX_BYTES if "BYTES" in op.name else 1 << 16)
        try:
            if name in ("BININT", "BININT1", "BININT2"):
                return _const(int.from_bytes(raw, "little", signed=name == "BININT"))
            if name in ("LONG1", "LONG4"):
                return _const(int.from_bytes(raw, "little", signed=True))
            if name == "BINFLOAT":
                return _const(struct.unpack(">d", raw)[0])
            if name in ("INT", "LONG", "FLOAT"):
                text = raw.strip().rstrip(b"L").decode("ascii")
                if name == "INT" and text in ("00", "01"):
                    return _V("const", "True" if text == "01" else "False")
                return _const(float(text) if name == "FLOAT" else int(text))
            if name == "STRING":
                return _const(_text(codecs.escape_decode(raw.strip()[1:-1])[0]))
            if name == "UNICODE":
                return _const(raw.rstrip(b"\r\n").decode("raw_unicode_escape"))
            if name in ("BINSTRING", "SHORT_BINSTRING"):
                return _const(_text(raw))
            if name in ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"):
                return _const(raw.decode("utf-8", "surrogatepass"))
            if "BYTES" in name:
                text = repr(raw) + (f"…({op.arg_length} bytes)" if op.arg_length > len(raw) else "")
                return _V("const", f"bytearray({text})" if name == "BYTEARRAY8" else text)
        except (ValueError, UnicodeDecodeError, struct.error):
            pass
        return _V("text", f"<{name} operand not decodable>")

    def int_arg(self, op: Op) -> int:
        raw = self.raw(op)
        if BY_CODE[op.code].arg_kind in (2, 3):  # newline-terminated decimal
            try:
                return int(raw.strip())
            except ValueError:
                return -1
        return int.from_bytes(raw, "little", signed=op.name == "EXT4")

    def call(self, opcode: str, f: _V, args: _V, kwargs: _V | None = None) -> None:
        v = _V("call", opcode, [f, args, kwargs])
        self.statements.append(("call", v, None))
        self.push(v)

    # -- text -----------------------------------------------------------------------------------

    def expr(self, v: _V, depth: int = 0) -> str:
        if v.var:
            return v.var
        if depth > MAX_DEPTH:
            return "…"
        if v.kind in ("const", "global", "text"):
            return v.text
        if v.kind == "call":
            return self.call_text(v, depth)
        if v.kind == "dict":
            shown = [
                f"{self.expr(k, depth + 1)}: {self.expr(x, depth + 1)}"
                for k, x in v.items[:MAX_ITEMS]
            ]
            return "{" + ", ".join(shown + _more(v.items)) + "}"
        shown = [self.expr(x, depth + 1) for x in v.items[:MAX_ITEMS]] + _more(v.items)
        if v.kind == "tuple":
            return "(" + ", ".join(shown) + ("," if len(v.items) == 1 else "") + ")"
        if v.kind == "list":
            return "[" + ", ".join(shown) + "]"
        body = ", ".join(shown)
        if v.kind == "set":
            return "{" + body + "}" if v.items else "set()"
        return f"frozenset({{{body}}})" if v.items else "frozenset()"

    def call_text(self, v: _V, depth: int) -> str:
        opcode = v.text
        f, args, kwargs = [*v.items, None, None, None][:3]
        if opcode == "persistent_load":
            return f"persistent_load({self.expr(f, depth + 1)})"
        head = self.expr(f, depth + 1)
        if args is None or args.kind != "tuple":
            arg_text = [f"*{self.expr(args, depth + 1)}"] if args is not None else []
        else:
            arg_text = [self.expr(a, depth + 1) for a in args.items[:MAX_ITEMS]] + _more(args.items)
        if kwargs is not None:
            arg_text.append(f"**{self.expr(kwargs, depth + 1)}")
        if opcode in ("NEWOBJ", "NEWOBJ_EX"):
            return f"{head}.__new__({', '.join([head, *arg_text])})"
        return f"{head}({', '.join(arg_text)})"

    def lines(self) -> Iterator[str]:
        shown = 0
        for kind, v, extra in self.statements:
            if shown >= MAX_STATEMENTS:
                yield f"# … {len(self.statements) - shown} more statements"
                break
            text = self.statement(kind, v, extra)
            if text:
                shown += 1
                yield from text
        yield from self.notes

    def statement(self, kind: str, v: _V, extra: Any) -> list[str]:
        if kind == "call":
            if v.mutated or v.uses > 1:
                self.vars += 1
                text = self.call_text(v, 0)
                v.var = f"obj{self.vars}"
                return [f"{v.var} = {text}"]
            return [self.call_text(v, 0)] if v.uses == 0 else []
        target = self.expr(v)
        if kind == "result":
            return [f"result = {target}"]
        if kind == "BUILD":
            return [f"{target}.__setstate__({self.expr(extra)})"]
        if kind in ("SETITEM", "SETITEMS"):
            out = [f"{target}[{self.expr(k)}] = {self.expr(x)}" for k, x in extra[:MAX_ITEMS]]
            return out + [f"# {m}" for m in _more(extra)]
        if kind == "APPEND":
            return [f"{target}.append({self.expr(extra[0])})"]
        if kind == "APPENDS":
            return [f"{target}.extend({self.expr(_V('list', items=extra))})"]
        return [f"{target}.add({self.expr(x)})" for x in extra[:MAX_ITEMS]] + [
            f"# {m}" for m in _more(extra)
        ]


def _more(items: list[Any]) -> list[str]:
    return [f"… (+{len(items) - MAX_ITEMS} more)"] if len(items) > MAX_ITEMS else []


def render_pickles(data: Any, starts: list[int] | tuple[int, ...]) -> list[str]:
    """The pickles of one buffer (one per start offset) as Python, with an import header."""
    names: dict[str, tuple[str, str, str]] = {}
    bodies: list[list[str]] = []
    view = memoryview(data).cast("B") if memoryview(data).format != "B" else memoryview(data)
    for start in starts:
        r = _Renderer(view, names)
        ops = 0
        stopped = False
        for op in iter_opcodes(view, start, MAX_OPS):
            ops += 1
            if not r.step(op):
                stopped = True
                break
        body = list(r.lines())
        if not stopped and ops >= MAX_OPS:
            body.append(f"# rendering stopped after {ops} opcodes; the pickle goes on")
        elif not stopped:
            body.append(f"# the pickle ends without STOP after {ops} opcodes (the loader raises)")
        bodies.append(body)
    header = sorted(_imports(names.values()))
    out: list[str] = [*header]
    for i, body in enumerate(bodies):
        if len(bodies) > 1:
            out.append(f"# pickle {i} at offset {starts[i]}")
        out.extend(body)
    return out


def _imports(names: Any) -> Iterator[str]:
    for module, name, text in names:
        if text == name:
            yield f"from {module} import {name}"
    yield from {f"import {module}" for module, name, text in names if text != name}
