"""A pickle opcode writer for hand-assembled test streams, plus a splicer for its output.

`Ops` emits opcodes byte by byte in the forms CPython's pickler uses for a given protocol (or
forced forms a technique needs), so a stream holds exactly the technique under test and nothing
is ever pickled from a live object or executed. `G` and `Call` describe imports and calls as
data; `Ops.value` turns them into GLOBAL/STACK_GLOBAL and REDUCE/INST/OBJ/NEWOBJ sequences and
records every import it writes in `Ops.globals`.
"""

from __future__ import annotations

import pickle
import pickletools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Call", "G", "Ops", "as_snippet", "norm_qualname"]


@dataclass(frozen=True)
class G:
    """A global reference: emitted as GLOBAL or STACK_GLOBAL (or INST/OBJ operand)."""

    module: str
    name: str


@dataclass(frozen=True)
class Call:
    """`fn(*args)` through one of pickle's call opcodes."""

    fn: Any  # G or another expression
    args: tuple[Any, ...] = ()
    via: str = "reduce"  # reduce | obj | inst | newobj | newobj_ex
    kwargs: dict[str, Any] = field(default_factory=dict)


def norm_qualname(module: str, name: str) -> str:
    """`module.name` spelled like `GlobalRef.qualname` (`__builtin__` read as `builtins`)."""
    return f"{'builtins' if module == '__builtin__' else module}.{name}"


class Ops:
    """A byte writer that emits opcodes in the forms CPython's pickler uses for `protocol`."""

    def __init__(self, protocol: int, *, memo: bool = True, stack_global: bool | None = None):
        self.protocol = protocol
        self.body = bytearray()
        self.memo_on = memo
        self.memo_next = 0
        # Protocol 4+ picklers use STACK_GLOBAL; older ones GLOBAL.
        self.stack_global = protocol >= 4 if stack_global is None else stack_global
        self.globals: list[str] = []
        self.newline = b"\n"  # protocol-0 INT/PUT/GET also accept b"\r\n" (C7)
        self.text_kind = pickle.UNICODE  # protocol-0 strings: UNICODE or STRING

    # -- primitives -------------------------------------------------------------------------
    def raw(self, data: bytes) -> Ops:
        self.body += data
        return self

    def op(self, code: bytes, arg: bytes = b"") -> Ops:
        return self.raw(code + arg)

    def put(self) -> int:
        index = self.memo_next
        self.memo_next += 1
        if self.protocol >= 4:
            self.op(pickle.MEMOIZE)
        elif self.protocol >= 1:
            self.op(*_indexed(pickle.BINPUT, pickle.LONG_BINPUT, index))
        else:
            self.op(pickle.PUT, b"%d" % index + self.newline)
        return index

    def put_at(self, index: int) -> Ops:
        """PUT at an explicit memo index (slot reuse, gaps), whatever the protocol."""
        if self.protocol >= 1:
            return self.op(*_indexed(pickle.BINPUT, pickle.LONG_BINPUT, index))
        return self.op(pickle.PUT, b"%d" % index + self.newline)

    def get(self, index: int) -> Ops:
        if self.protocol >= 1:
            return self.op(*_indexed(pickle.BINGET, pickle.LONG_BINGET, index))
        return self.op(pickle.GET, b"%d" % index + self.newline)

    def _maybe_put(self) -> None:
        if self.memo_on:
            self.put()

    def integer(self, n: int) -> Ops:
        if self.protocol == 0:
            return self.op(pickle.INT, b"%d" % n + self.newline)
        if 0 <= n < 256:
            return self.op(pickle.BININT1, bytes([n]))
        if 0 <= n < 65536:
            return self.op(pickle.BININT2, struct.pack("<H", n))
        if -(2**31) <= n < 2**31:
            return self.op(pickle.BININT, struct.pack("<i", n))
        if self.protocol >= 2:
            enc = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
            return self.op(pickle.LONG1, bytes([len(enc)]) + enc)
        return self.op(pickle.LONG, b"%dL\n" % n)

    def text(self, s: str, kind: bytes | None = None) -> Ops:
        """Push a str; `kind` forces an opcode (STRING/BINSTRING/SHORT_BINSTRING/UNICODE…)."""
        if kind is None:
            if self.protocol == 0:
                kind = self.text_kind
            elif self.protocol >= 4 and len(s.encode()) < 256:
                kind = pickle.SHORT_BINUNICODE
            else:
                kind = pickle.BINUNICODE
        if kind == pickle.UNICODE:
            text = s.replace("\\", "\\u005c").replace("\n", "\\u000a").replace("\r", "\\u000d")
            self.op(kind, text.encode("raw-unicode-escape") + b"\n")
        elif kind == pickle.STRING:
            self.op(kind, repr(s).encode("ascii") + b"\n")
        else:
            enc = s.encode("utf-8" if kind in _UNICODE_KINDS else "latin-1")
            size = {b"U": "<B", b"\x8c": "<B", b"T": "<I", b"X": "<I", b"\x8d": "<Q"}[kind]
            self.op(kind, struct.pack(size, len(enc)) + enc)
        self._maybe_put()
        return self

    def blob(self, b: bytes, kind: bytes | None = None) -> Ops:
        if kind is None:
            kind = pickle.SHORT_BINBYTES if len(b) < 256 else pickle.BINBYTES
        size = {b"C": "<B", b"B": "<I", b"\x8e": "<Q", b"\x96": "<Q"}[kind]
        self.op(kind, struct.pack(size, len(b)) + b)
        self._maybe_put()
        return self

    def glob(self, module: str, name: str, *, stack: bool | None = None) -> Ops:
        self.globals.append(norm_qualname(module, name))
        if self.stack_global if stack is None else stack:
            self.text(module).text(name).op(pickle.STACK_GLOBAL)
        else:
            self.op(pickle.GLOBAL, module.encode() + b"\n" + name.encode() + b"\n")
        self._maybe_put()
        return self

    # -- values -----------------------------------------------------------------------------
    def value(self, v: Any) -> Ops:
        """Emit any supported value: literals, containers, G, Call, or a callable(Ops)."""
        if callable(v) and not isinstance(v, (G, Call, type)):
            v(self)
        elif isinstance(v, G):
            self.glob(v.module, v.name)
        elif isinstance(v, Call):
            self.call(v)
        elif v is None:
            self.op(pickle.NONE)
        elif isinstance(v, bool):
            if self.protocol >= 2:
                self.op(pickle.NEWTRUE if v else pickle.NEWFALSE)
            else:
                self.op(pickle.INT, b"01\n" if v else b"00\n")
        elif isinstance(v, int):
            self.integer(v)
        elif isinstance(v, float):
            if self.protocol == 0:
                self.op(pickle.FLOAT, repr(v).encode() + b"\n")
            else:
                self.op(pickle.BINFLOAT, struct.pack(">d", v))
        elif isinstance(v, str):
            self.text(v)
        elif isinstance(v, bytes):
            self.blob(v)
        elif isinstance(v, tuple):
            self.tuple_of(v)
        elif isinstance(v, list):
            self.list_of(v)
        elif isinstance(v, dict):
            self.dict_of(v)
        else:
            raise TypeError(f"cannot emit {type(v).__name__}")
        return self

    def tuple_of(self, items: Sequence[Any]) -> Ops:
        if not items and self.protocol >= 1:
            return self.op(pickle.EMPTY_TUPLE)
        if self.protocol >= 2 and len(items) <= 3:
            for item in items:
                self.value(item)
            self.op((pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3)[len(items) - 1])
        else:
            self.op(pickle.MARK)
            for item in items:
                self.value(item)
            self.op(pickle.TUPLE)
        self._maybe_put()
        return self

    def list_of(self, items: Sequence[Any]) -> Ops:
        if self.protocol == 0:
            self.op(pickle.MARK + pickle.LIST)
            self._maybe_put()
            for item in items:
                self.value(item).op(pickle.APPEND)
            return self
        self.op(pickle.EMPTY_LIST)
        self._maybe_put()
        if len(items) == 1:
            self.value(items[0]).op(pickle.APPEND)
        elif items:
            self.op(pickle.MARK)
            for item in items:
                self.value(item)
            self.op(pickle.APPENDS)
        return self

    def dict_of(self, items: dict[Any, Any]) -> Ops:
        if self.protocol == 0:
            self.op(pickle.MARK + pickle.DICT)
            self._maybe_put()
            for key, val in items.items():
                self.value(key).value(val).op(pickle.SETITEM)
            return self
        self.op(pickle.EMPTY_DICT)
        self._maybe_put()
        if items:
            self.op(pickle.MARK)
            for key, val in items.items():
                self.value(key).value(val)
            self.op(pickle.SETITEMS)
        return self

    def call(self, c: Call) -> Ops:
        if c.via == "inst":
            self.globals.append(norm_qualname(c.fn.module, c.fn.name))
            self.op(pickle.MARK)
            for arg in c.args:
                self.value(arg)
            self.op(pickle.INST, c.fn.module.encode() + b"\n" + c.fn.name.encode() + b"\n")
        elif c.via == "obj":
            self.op(pickle.MARK).value(c.fn)
            for arg in c.args:
                self.value(arg)
            self.op(pickle.OBJ)
        elif c.via == "newobj":
            self.value(c.fn).tuple_of(c.args).op(pickle.NEWOBJ)
        elif c.via == "newobj_ex":
            self.value(c.fn).tuple_of(c.args).dict_of(c.kwargs).op(pickle.NEWOBJ_EX)
        else:
            self.value(c.fn).tuple_of(c.args).op(pickle.REDUCE)
        self._maybe_put()
        return self

    def finish(self, *, stop: bool = True, frame: bool = True) -> bytes:
        body = bytes(self.body) + (pickle.STOP if stop else b"")
        head = b""
        if self.protocol >= 2:
            head = pickle.PROTO + bytes([self.protocol])
        if frame and self.protocol >= 4 and len(body) >= 4:
            head += pickle.FRAME + struct.pack("<Q", len(body))
        return head + body


_UNICODE_KINDS = (pickle.SHORT_BINUNICODE, pickle.BINUNICODE, pickle.BINUNICODE8)


def _indexed(short: bytes, long: bytes, index: int) -> tuple[bytes, bytes]:
    if index < 256:
        return short, bytes([index])
    return long, struct.pack("<I", index)


def as_snippet(data: bytes, memo_base: int = 1 << 16) -> bytes:
    """Turn one well-formed pickle into stack-neutral opcodes (payload, then POP).

    PROTO/FRAME/STOP are dropped and memo indices moved to `memo_base…` so the snippet can be
    spliced between any two opcodes of a benign stream without disturbing its memo.
    """
    ops = [(info, arg, pos or 0) for info, arg, pos in pickletools.genops(data)]
    if ops[-1][0].name != "STOP" or ops[-1][2] + 1 != len(data):
        raise ValueError("not a single well-formed pickle")
    out = bytearray()
    memo_count = 0
    for i, (info, arg, pos) in enumerate(ops[:-1]):
        end = ops[i + 1][2]
        name = info.name
        if name in ("PROTO", "FRAME"):
            continue
        if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            index = memo_count if name == "MEMOIZE" else int(str(arg))
            memo_count += 1
            out += pickle.LONG_BINPUT + struct.pack("<I", memo_base + index)
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            out += pickle.LONG_BINGET + struct.pack("<I", memo_base + int(str(arg)))
        elif name == "STOP":
            raise ValueError("more than one pickle")
        else:
            out += data[pos:end]
    return bytes(out + pickle.POP)
