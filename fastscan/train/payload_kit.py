"""What every payload builder shares: the `Sample` record, families, harmless arguments.

Builders take a seeded `random.Random` and vary protocol, padding, position and argument
strings; every argument is harmless (`echo fastscan-test`, `touch /tmp/fastscan-…`). A
builder's bytes depend only on its seed and on the order of its `rng` draws, including the draws
made inside these helpers: changing that order changes every generated sample.

`Sample.globals` lists the imports a static reader sees in the stream (including pickles nested
in bytes operands), spelled like `GlobalRef.qualname` (`__builtin__` normalised to `builtins`).
`Sample.hidden` names the dangerous callable reached at load time when it is not spelled out.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastscan.train.opwriter import Call, G, Ops

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
    threat: str  # docs/threats.md row id, e.g. "C7"
    family: str  # one of FAMILIES
    globals: tuple[str, ...]  # literal imports a static reader must report
    hidden: tuple[str, ...] = ()  # dangerous targets reached only at load time (EXT, computed…)
    oracle_sees_all: bool = True  # a genops walk (all pickles, nested bytes) finds every global
    key: str = ""  # registry key (threat id plus variant)


Builder = Callable[[random.Random], Sample]


def register(table: dict[str, Builder], key: str) -> Callable[[Builder], Builder]:
    """File a builder under its registry key (docs/threats.md row id plus variant) in `table`."""

    def deco(fn: Builder) -> Builder:
        table[key] = fn
        return fn

    return deco


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


def harmless_code(rng: random.Random, tag: str) -> str:
    cmd = harmless_command(rng, tag)
    return rng.choice(
        [
            f"__import__('os').system({cmd!r})",
            f"import os; os.system({cmd!r})",
            f"print('fastscan-test {rng.randrange(999)}')",
        ]
    )


def harmless_path(rng: random.Random, tag: str) -> str:
    return f"/tmp/fastscan-{tag}-{rng.randrange(10_000)}"


def benign_value(rng: random.Random) -> dict[str, Any]:
    return {
        "epoch": rng.randrange(100),
        "lr": round(rng.uniform(1e-5, 1e-1), 6),
        "name": rng.choice(["resnet", "mlp", "bert-tiny", "lstm"]),
        "layers": [rng.randrange(1, 512) for _ in range(rng.randrange(1, 5))],
    }


def random_protocol(rng: random.Random, lo: int = 0, hi: int = 5) -> int:
    return rng.randint(lo, hi)


def random_ops(rng: random.Random, protocol: int) -> Ops:
    """A writer that memoizes like the pickler most of the time, and sometimes not at all."""
    return Ops(protocol, memo=rng.random() < 0.7)


def embed(rng: random.Random, payload: Any) -> Any:
    """Place the payload at a random spot of an ordinary-looking top-level object."""
    shape = rng.randrange(4)
    if shape == 0:
        return payload
    if shape == 1:
        entries = benign_value(rng)
        keys = list(entries)
        keys.insert(rng.randrange(len(keys) + 1), rng.choice(["state", "extra", "meta", "hook"]))
        return {k: entries.get(k, payload) for k in keys}
    items: list[Any] = [rng.randrange(1000) for _ in range(rng.randrange(0, 4))]
    items.insert(rng.randrange(len(items) + 1), payload)
    return items if shape == 2 else tuple(items)


def make_sample(key: str, family: str, ops: Ops, data: bytes, **kw: Any) -> Sample:
    """Wrap finished bytes; the globals are those `ops` wrote (plus `extra_globals`)."""
    names = tuple(dict.fromkeys(ops.globals + list(kw.pop("extra_globals", ()))))
    threat = key.split(":", maxsplit=1)[0].split(".", maxsplit=1)[0]
    return Sample(data=data, threat=threat, family=family, globals=names, key=key, **kw)


def simple_sample(
    key: str, family: str, rng: random.Random, payload: Any, *, lo: int = 0
) -> Sample:
    """`payload` embedded in an ordinary object, at a random protocol of at least `lo`."""
    ops = random_ops(rng, random_protocol(rng, lo))
    ops.value(embed(rng, payload))
    return make_sample(key, family, ops, ops.finish(frame=rng.random() < 0.8))


def system_call(rng: random.Random, tag: str) -> Call:
    return Call(G("os", "system"), (harmless_command(rng, tag),))


def inner_pickle(rng: random.Random, tag: str) -> tuple[bytes, list[str]]:
    """A complete malicious pickle to nest in a bytes operand, and the globals it holds."""
    ops = random_ops(rng, random_protocol(rng, 2))
    ops.value(system_call(rng, tag))
    return ops.finish(), ops.globals


def add_globals(sample: Sample, extra: Sequence[str]) -> Sample:
    return dataclasses.replace(sample, globals=tuple(dict.fromkeys((*sample.globals, *extra))))


def dangerous_target(rng: random.Random, tag: str) -> tuple[str, str, tuple[Any, ...]]:
    """A dangerous (module, name, args) for techniques that hide *how* it is reached."""
    cmd = harmless_command(rng, tag)
    return rng.choice(
        [
            ("os", "system", (cmd,)),
            ("subprocess", "getoutput", (cmd,)),
            ("builtins", "exec", (harmless_code(rng, tag),)),
            ("posix", "system", (cmd,)),
        ]
    )


_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def rot13(text: str) -> str:
    return text.translate(
        str.maketrans(
            _ALPHABET, _ALPHABET[13:26] + _ALPHABET[:13] + _ALPHABET[39:] + _ALPHABET[26:39]
        )
    )
