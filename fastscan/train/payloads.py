"""Hand-assembled MALICIOUS pickles, one builder per docs/threats.md technique (sections C–I).

Nothing here calls `pickle.dumps` on a hostile object: every stream is written opcode by opcode
with `Ops`, so the bytes are exactly the technique under test and nothing is ever executed.
Payload arguments are harmless (`echo fastscan-test`, `touch /tmp/fastscan-…`). Builders take a
seeded `random.Random` and vary protocol, padding, position and argument strings.

This module is the public face and the registry; the code lives in
- `opwriter`: the opcode writer `Ops`, `G`/`Call` expressions, `as_snippet`;
- `payload_kit`: `Sample`, `FAMILIES`, harmless arguments and helpers shared by builders;
- `threats_stream` (C, D), `threats_names` (E, F), `threats_evasion` (G, H, I): the builders.
"""

from __future__ import annotations

import random

from fastscan.train.opwriter import Call, G, Ops, as_snippet
from fastscan.train.payload_kit import FAMILIES, Builder, Sample, harmless_command
from fastscan.train.threats_evasion import G_BUILDERS, H_BUILDERS, I_BUILDERS
from fastscan.train.threats_names import E_BUILDERS, F_BUILDERS
from fastscan.train.threats_stream import C_BUILDERS, D_BUILDERS

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

# Same key order as when every builder lived in this file (F, then C to I): listings, test ids
# and INJECTABLE follow it. Each builder's bytes depend only on its own rng, not on this order.
PAYLOADS: dict[str, Builder] = {
    **F_BUILDERS,
    **C_BUILDERS,
    **D_BUILDERS,
    **E_BUILDERS,
    **G_BUILDERS,
    **H_BUILDERS,
    **I_BUILDERS,
}


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
