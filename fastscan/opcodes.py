"""The pickle opcode table as data, derived once from CPython's `pickletools.opcodes`.

`native/gen_tables.py` writes `native/_opcodes.pxi` from `TABLE`; a test checks that the committed
file is fresh and that the compiled tokenizer reports the same argument layout for all 256 bytes.
"""

from __future__ import annotations

import hashlib
import pickletools
from dataclasses import dataclass

# How an opcode's argument is laid out after the opcode byte.
ARG_NONE = 0  # no argument
ARG_FIXED = 1  # `fixed_len` bytes
ARG_LINE = 2  # bytes up to and including b"\n"
ARG_LINE2 = 3  # two newline-terminated lines (GLOBAL, INST)
ARG_LEN1 = 4  # 1-byte length, then that many bytes
ARG_LEN4S = 5  # 4-byte signed little-endian length, then data (negative is an error)
ARG_LEN4U = 6  # 4-byte unsigned length, then data
ARG_LEN8U = 7  # 8-byte unsigned length, then data
ARG_INVALID = 255  # the byte is not an opcode

ARG_KIND_NAMES = {
    ARG_NONE: "none",
    ARG_FIXED: "fixed",
    ARG_LINE: "line",
    ARG_LINE2: "line2",
    ARG_LEN1: "len1",
    ARG_LEN4S: "len4s",
    ARG_LEN4U: "len4u",
    ARG_LEN8U: "len8u",
    ARG_INVALID: "invalid",
}

# Opcode roles (sets of names; the tokenizer's own roles live in its native code).
# Opcodes whose argument is raw payload (skipped, never copied; probed for nested pickles).
BYTES_OPCODES = frozenset({"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"})
# Opcodes the tokenizer records as call sites, in the order of the `call_op_*` feature columns.
CALL_OPCODES = ("REDUCE", "OBJ", "INST", "NEWOBJ", "NEWOBJ_EX", "BUILD")
# Call sites that call no global: BUILD sets the state of the object below it.
STATE_OPCODES = frozenset({"BUILD"})
# Opcodes that import a global.
IMPORT_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "EXT1", "EXT2", "EXT4"})
# Opcodes a real pickle can begin with (anything that pushes without needing a stack item).
# EXT1/2/4 are left out: a stream opening with one needs a populated copyreg registry (empty in
# CPython), and tensor bytes often start with 0x82-0x84 (an int64 element count of 130-1100).
START_OPCODES = frozenset(
    {
        "PROTO", "MARK", "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "EMPTY_SET", "NONE",
        "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
        "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
        "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
        "BYTEARRAY8", "NEXT_BUFFER", "GLOBAL", "PERSID",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class OpcodeInfo:
    name: str
    code: int  # the opcode byte
    arg_kind: int
    fixed_len: int  # for ARG_FIXED, else 0
    proto: int  # protocol that introduced it
    arg_name: str  # pickletools argument descriptor name ("" when none)


def _arg_layout(op: pickletools.OpcodeInfo) -> tuple[int, int]:
    arg = op.arg
    if arg is None:
        return ARG_NONE, 0
    if arg.name == "stringnl_noescape_pair":
        return ARG_LINE2, 0
    n = arg.n
    if n >= 0:
        return ARG_FIXED, n
    if n == pickletools.UP_TO_NEWLINE:
        return ARG_LINE, 0
    if n == pickletools.TAKEN_FROM_ARGUMENT1:
        return ARG_LEN1, 0
    if n == pickletools.TAKEN_FROM_ARGUMENT4:
        return ARG_LEN4S, 0
    if n == pickletools.TAKEN_FROM_ARGUMENT4U:
        return ARG_LEN4U, 0
    if n == pickletools.TAKEN_FROM_ARGUMENT8U:
        return ARG_LEN8U, 0
    raise ValueError(f"unknown argument layout {n} for {op.name}")


def _build_table() -> tuple[OpcodeInfo, ...]:
    rows = []
    for op in pickletools.opcodes:
        kind, fixed = _arg_layout(op)
        rows.append(
            OpcodeInfo(
                name=op.name,
                code=ord(op.code.encode("latin-1")),
                arg_kind=kind,
                fixed_len=fixed,
                proto=op.proto,
                arg_name=op.arg.name if op.arg is not None else "",
            )
        )
    return tuple(sorted(rows, key=lambda r: r.code))


TABLE: tuple[OpcodeInfo, ...] = _build_table()
BY_CODE: dict[int, OpcodeInfo] = {op.code: op for op in TABLE}
BY_NAME: dict[str, OpcodeInfo] = {op.name: op for op in TABLE}
# Opcode name per byte value ("" for bytes that are no opcode); used for listings and features.
NAMES: tuple[str, ...] = tuple(BY_CODE[b].name if b in BY_CODE else "" for b in range(256))
START_BYTES = frozenset(BY_NAME[name].code for name in START_OPCODES)


def codes(*names: str) -> frozenset[int]:
    """Byte values of the named opcodes (the rules' walks over the native listing compare bytes)."""
    return frozenset(BY_NAME[n].code for n in names)


# Roles the rules' opcode walks (rules/callsites.py, rules/fills.py) share, as byte values.
STRING_CODES = codes(
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
    "BINUNICODE8",
)  # fmt: skip
PUT_CODES = codes("PUT", "BINPUT", "LONG_BINPUT")
GET_CODES = codes("GET", "BINGET", "LONG_BINGET")


def arg_layout_by_byte() -> tuple[tuple[int, int], ...]:
    """(arg_kind, fixed_len) for every byte value, ARG_INVALID for non-opcodes."""
    return tuple(
        (BY_CODE[b].arg_kind, BY_CODE[b].fixed_len) if b in BY_CODE else (ARG_INVALID, 0)
        for b in range(256)
    )


def table_hash() -> str:
    """Stable digest of the table; recorded in manifests and Parquet metadata."""
    text = "\n".join(f"{o.code}:{o.name}:{o.arg_kind}:{o.fixed_len}:{o.proto}" for o in TABLE)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
