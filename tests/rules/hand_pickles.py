"""Hand-written protocol-2 opcodes for the rules' tests: names, text, tuples and calls assembled
byte by byte, so no fixture ever imports or pickles what it names."""

from __future__ import annotations

import struct


def g(module: str, name: str) -> bytes:
    """GLOBAL module.name."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def s(text: str) -> bytes:
    """BINUNICODE text."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def t(*items: bytes) -> bytes:
    """MARK items TUPLE."""
    return b"(" + b"".join(items) + b"t"


def call(f: bytes, *args: bytes) -> bytes:
    """f(*args) by REDUCE."""
    return f + t(*args) + b"R"


def pkl(body: bytes) -> bytes:
    """A protocol-2 pickle of `body`."""
    return b"\x80\x02" + body + b"."
