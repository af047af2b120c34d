"""Typed view over what the tokenizer saw in one pickle buffer.

The native tokenizer returns flat arrays of offsets into the buffer; `tokenizer.tokenize` turns
them into these immutable records (per-opcode ones are NamedTuples: a checkpoint has one call
site per tensor, and tuples build ~4x faster than frozen dataclasses). Everything downstream
(rules, features, explain) reads only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

# Terminal state of one buffer. STREAM_STATUSES is the order of the `stat_*` feature columns;
# NATIVE_STATUSES the native walker's status enum, by value (native/_tokenizer STATUS_NAMES).
STATUS_OK = "ok"  # every pickle found ended with STOP
STATUS_TRUNCATED = "truncated"  # ran out of bytes inside an opcode or before STOP
STATUS_BAD_OPCODE = "bad_opcode"  # a byte that is no opcode, where an opcode was expected
STATUS_BUDGET = "budget"  # a ScanLimits budget stopped the walk
STATUS_EMPTY = "empty"  # zero bytes
STATUS_NOT_PICKLE = "not_pickle"  # no pickle could be parsed at all
NATIVE_STATUSES = (STATUS_OK, STATUS_TRUNCATED, STATUS_BAD_OPCODE, STATUS_BUDGET)
STREAM_STATUSES = (*NATIVE_STATUSES, STATUS_EMPTY, STATUS_NOT_PICKLE)


class AnomalyCode(NamedTuple):
    code: str
    native: int  # its value in the native tokenizer's anomaly enum; -1: reported by tokenizer.py
    counted: bool  # has an `anom_*` feature column (ANOMALY_CODES); later codes do not
    description: str


# Anomaly codes the tokenizer reports (each with the offset where it happened), in the order of
# the `anom_*` feature columns; the rule each raises is in rules/structure.ANOMALY_RULES.
ANOMALY_TABLE: dict[str, AnomalyCode] = {}


def _anomaly(code: str, native: int, description: str, *, counted: bool = True) -> str:
    if code in ANOMALY_TABLE:
        raise ValueError(f"duplicate tokenizer anomaly code {code}")
    if native >= 0 and any(a.native == native for a in ANOMALY_TABLE.values()):
        raise ValueError(f"tokenizer anomaly {code}: native value {native} is taken")
    ANOMALY_TABLE[code] = AnomalyCode(code, native, counted, description)
    return code


STACK_UNDERFLOW = _anomaly("stack_underflow", 0, "an opcode popped more than was pushed")
MARK_MISSING = _anomaly("mark_missing", 1, "an opcode needed a MARK that is not on the stack")
BAD_MEMO_GET = _anomaly("bad_memo_get", 2, "GET of a key never PUT (D3)")
MEMO_TYPE_CONFUSION = _anomaly(
    "memo_type_confusion", 3, "memo slot used as a string that holds something else (D4)"
)
MEMO_BUDGET = _anomaly("memo_budget", 4, "memo budget hit: later GETs resolve to unknown")
MISPLACED_PROTO = _anomaly("misplaced_proto", 5, "PROTO not the first opcode of its pickle (C14)")
DUPLICATE_PROTO = _anomaly("duplicate_proto", 6, "more than one PROTO in one pickle (C14)")
FRAME_VIOLATION = _anomaly("frame_violation", 7, "an opcode crosses the end of its FRAME (C5)")
FRAME_IN_OLD_PROTOCOL = _anomaly(
    "frame_in_old_protocol", 8, "FRAME in a pickle declaring protocol < 4"
)
FRAME_OVERRUN = _anomaly("frame_overrun", 9, "a FRAME declares more bytes than the buffer holds")
NEW_FRAME_INSIDE_FRAME = _anomaly(
    "new_frame_inside_frame", 10, "FRAME before the previous frame was consumed"
)
EXT_CODE = _anomaly("ext_code", 11, "EXT1/2/4: callable via the copyreg registry (C11)")
NON_UTF8_NAME = _anomaly(
    "non_utf8_name", -1, "GLOBAL/INST/STACK_GLOBAL name bytes that do not decode (C13)"
)
STACK_GLOBAL_NON_STRING = _anomaly(
    "stack_global_non_string", 12, "STACK_GLOBAL operand is not a literal string (D6)"
)
BUILD_ON_GLOBAL = _anomaly(
    "build_on_global", 13, "BUILD applied directly to an imported module/class (D7, D8)"
)
SETITEM_ON_GLOBAL = _anomaly("setitem_on_global", 14, "SETITEM(S) into an imported object (D9)")
TRAILING_JUNK = _anomaly("trailing_junk", 15, "bytes after the last STOP that are no pickle (C2)")
JUNK_BETWEEN = _anomaly("junk_between", 16, "bytes skipped between two pickles (C4)")
STOP_WITH_STACK = _anomaly("stop_with_stack", 17, "STOP with more than one item on the stack")
NEGATIVE_LENGTH = _anomaly("negative_length", 18, "a signed length operand that is negative")
NESTED_BUDGET = _anomaly(
    "nested_budget", -1, "nested pickle candidates beyond the depth budget were not read"
)
BAD_MEMO_KEY = _anomaly("bad_memo_key", 19, "PUT/GET with a text key that is not a decimal")
RESYNC_BUDGET = _anomaly(
    "resync_budget", 20, "the search for later pickles gave up (ScanLimits.max_resync_opcodes)"
)
# Added after the model's feature contract was fixed: features count ANOMALY_CODES only
# (FEATURE_NAMES must not move), rules judge every code.
BAD_TEXT_OPERAND = _anomaly(
    "bad_text_operand",
    21,
    "INT/LONG/FLOAT/STRING/UNICODE text the loader raises on (G1)",
    counted=False,
)

ANOMALY_CODES = tuple(a.code for a in ANOMALY_TABLE.values() if a.counted)
LATER_ANOMALY_CODES = tuple(a.code for a in ANOMALY_TABLE.values() if not a.counted)
ALL_ANOMALY_CODES = ANOMALY_CODES + LATER_ANOMALY_CODES
# The native tokenizer's anomaly enum, by value (its ANOMALY_NAMES).
NATIVE_ANOMALY_CODES = tuple(
    a.code for a in sorted(ANOMALY_TABLE.values(), key=lambda a: a.native) if a.native >= 0
)
if [ANOMALY_TABLE[c].native for c in NATIVE_ANOMALY_CODES] != list(
    range(len(NATIVE_ANOMALY_CODES))
):
    raise ValueError("native tokenizer anomaly values must be 0..n-1 without gaps")


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Explicit budgets for one tokenizer run; hitting one gives STATUS_BUDGET or an anomaly."""

    max_opcodes: int = 200_000_000
    max_stack: int = 1_000_000
    # 16 bytes per dense entry (measured: 16M entries add ~245 MB, 8M ~125 MB), so 8M covers
    # a real tokenizer vocabulary's pickle within the worker's memory; past it, a GET of a
    # dropped entry is what can hide something (engine: FS206 only then).
    max_memo: int = 8_000_000
    max_globals: int = 100_000
    max_calls: int = 1_000_000
    max_strings: int = 4096  # short strings kept for features
    max_string_len: int = 4096  # longer strings are counted, not kept
    max_nesting: int = 3  # recursion into bytes operands that are pickles
    max_nested: int = 64  # nested candidates read per buffer
    max_resync_opcodes: int = 5_000_000  # trial parses while searching for the next pickle

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 0:
                raise ValueError(f"ScanLimits.{name} must be >= 0")


class GlobalRef(NamedTuple):
    """A callable or class the stream imports, as the loader would resolve it."""

    module: str  # normalised: __builtin__ -> builtins; '?' when unresolvable
    name: str  # may be a dotted attribute path ("serialization.os.system")
    opcode: str  # GLOBAL | STACK_GLOBAL | INST | EXT1 | EXT2 | EXT4
    offset: int  # offset of the importing opcode in the buffer
    pickle_index: int  # which pickle of the buffer (0-based)
    resolved: bool  # False when the operands were not literal strings (D6, EXT codes)
    via_memo: bool = False  # an operand came through the memo (D1)

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


# CallSite.arg_kinds bits (native/_tokenizer.pyx AK_*). Protocol <= 2 writes bytes as a call
# of `_codecs.encode`: that argument is ARG_CALL here (fastscan.shapes sees through it).
ARG_STR = 1  # str (also a Python 2 BINSTRING)
ARG_BYTES = 2  # bytes, bytearray, out-of-band buffer
ARG_NUMBER = 4
ARG_NONE = 8  # None, True, False
ARG_CONTAINER = 16  # tuple, list, dict, set
ARG_GLOBAL = 32  # an imported name
ARG_CALL = 64  # another call's result
ARG_OPAQUE = 128  # something the walk cannot see into (a persistent id, a bad memo GET)
# CallSite.result_use bits (native/_tokenizer.pyx USE_*); a POP is `discarded`.
USE_BUILT = 1  # BUILD set the result's state
USE_FILLED = 2  # SETITEM(S), APPEND(S) or ADDITEMS stored items into the result
USE_CALLED = 4  # the result is a later call's callable
USE_ARGUMENT = 8  # the result is a later REDUCE/NEWOBJ/NEWOBJ_EX's first argument


class CallSite(NamedTuple):
    """An opcode that calls or instantiates (REDUCE, OBJ, INST, NEWOBJ, NEWOBJ_EX, BUILD)."""

    opcode: str
    offset: int
    pickle_index: int
    callable_index: int  # index into StreamFacts.globals, -1 when not resolvable
    discarded: bool = False  # the result was POPped without use (C10)
    callable_is_call: bool = False  # the callable is itself the result of a call (getattr chains)
    callable_call_index: int = -1  # index into StreamFacts.calls of that producing call, or -1
    first_arg_global: int = -1  # the first argument is this global (index into globals), or -1
    first_arg_call: int = -1  # the first argument is this call's result (index into calls), or -1
    arg_kinds: int = 0  # ARG_* mask of the kinds of all arguments (0: none; BUILD: 0)
    result_use: int = 0  # USE_* mask: what later opcodes did with the result


class Anomaly(NamedTuple):
    code: str  # one of ALL_ANOMALY_CODES
    offset: int
    pickle_index: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class NestedPickle:
    """A bytes/string operand that itself parses as a pickle (H1, H2)."""

    offset: int  # offset of the operand's first byte in the outer buffer
    length: int
    encoding: str  # raw | base64 | hex | frame_divergence (the bytes after a straddled frame end)
    facts: StreamFacts
    # what held the bytes when they are not the operand's own (tokenizer.CARRIERS): "" for a
    # bytes operand that starts like a pickle; bytes, latin1_text, escaped_string,
    # raw_unicode_text for an operand a loader turns into importing pickle bytes
    carrier: str = ""


@dataclass(frozen=True, slots=True)
class StreamFacts:
    """Everything the tokenizer learned from one buffer (one container member)."""

    status: str
    error: str = ""
    error_offset: int = -1
    length: int = 0
    n_pickles: int = 0
    n_opcodes: int = 0
    protocols: tuple[int, ...] = ()  # declared PROTO per pickle (-1 when absent)
    pickle_offsets: tuple[int, ...] = ()  # start offset of each pickle
    opcode_counts: tuple[int, ...] = (0,) * 256  # indexed by opcode byte
    globals: tuple[GlobalRef, ...] = ()
    calls: tuple[CallSite, ...] = ()
    strings: tuple[str, ...] = ()  # short string operands, decoded with replacement
    n_strings: int = 0  # all string operands, kept or not
    long_strings: int = 0  # strings longer than ScanLimits.max_string_len
    nested: tuple[NestedPickle, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    memo_puts: int = 0
    memo_gets: int = 0
    max_stack_depth: int = 0
    junk_bytes: int = 0  # bytes skipped between or after pickles
    payload_bytes: int = 0  # bytes in BINBYTES/BYTEARRAY8/... operands (skipped, not copied)
    budget: str = ""  # name of the budget hit, if any
    limits: ScanLimits = field(default_factory=ScanLimits)

    @property
    def complete(self) -> bool:
        return self.status == STATUS_OK

    def anomaly_count(self, code: str) -> int:
        return sum(1 for a in self.anomalies if a.code == code)

    def walk(self) -> list[StreamFacts]:
        """This buffer's facts followed by every nested pickle's, depth first."""
        out = [self]
        for n in self.nested:
            out.extend(n.facts.walk())
        return out
