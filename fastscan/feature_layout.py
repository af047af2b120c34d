"""The feature layout, the model's contract: every feature name in row order, the schema
version, the vocabulary of each block and the slot tables and block offsets `features.extract`
writes by, and the Arrow schema of feature batches.

`FEATURE_NAMES` and `FEATURE_SCHEMA_VERSION` are what a trained model is bound to (its manifest
repeats the names, and `fastscan.model` refuses a mismatch). Changing, adding or reordering a
feature means bumping the version and retraining.

Blocks (prefix: meaning):
- `op_<group>` / `opf_<group>`: opcode counts grouped by role (rare opcodes share a group), raw
  and as a fraction of all opcodes; every stream of the file plus nested pickles.
- `call_*`: call sites by opcode, resolved/unresolved/discarded, the class of their callable,
  first/last call position relative to the stream length, calls before a parse failure.
- `glob_*` / `cat_*`: distinct globals by rule class and by behaviour category.
- `ghash_NN`: feature hashing (crc32) of the distinct tokens `module` and `module.name`.
- `depth_*`: dotted-name depth of names and modules.
- `str_*`: string operands: counts, lengths, entropy, shell/URL/base64/hex/code/path patterns.
- `nested_*`: pickles found inside bytes or string operands, by encoding, and their depth.
- `anom_<code>`: tokenizer anomaly counts (facts.ANOMALY_CODES); `stat_*`, `proto_*`, `memo_*`,
  sizes: parse status, pickles, protocols, memo traffic, junk and payload bytes.
- `fmt_*`, `cstat_*`, `wrap_*`, `canom_*`, `kind_*`, `ext_*`: container format, status,
  compression wrappers, container anomalies, stream kinds and the (untrusted) file extension.
- `unk_stdlib_*`: unlisted standard-library callables; `shape_*` / `know_*`: how unlisted
  callables are called (restoration or application, name shape, argument kinds, what became of
  the result) and what an index knows about them (fastscan/shape_features.py).
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa

from . import _features as _native
from .containers import anomalies as container_anomalies
from .containers import formats
from .facts import ANOMALY_CODES, STREAM_STATUSES
from .opcodes import BY_NAME, CALL_OPCODES, TABLE
from .rules import knowledge
from .shape_features import SHAPE_NAMES

# 2: unk_stdlib_* (unlisted standard-library callables); 3: shape_*/know_* (call shapes);
# 4: listed names the rules judged inert at every call site count as safe, and index-inert
#    standard-library names leave unk_stdlib_* (features.extract's `judged`, issue #15)
FEATURE_SCHEMA_VERSION = 4

# Opcodes grouped by role; each opcode belongs to exactly one group (checked at import).
OPCODE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("global", ("GLOBAL",)),
    ("stack_global", ("STACK_GLOBAL",)),
    ("inst", ("INST",)),
    ("ext", ("EXT1", "EXT2", "EXT4")),
    ("reduce", ("REDUCE",)),
    ("obj", ("OBJ",)),
    ("newobj", ("NEWOBJ",)),
    ("newobj_ex", ("NEWOBJ_EX",)),
    ("build", ("BUILD",)),
    ("persid", ("PERSID", "BINPERSID")),
    ("memo_put", ("PUT", "BINPUT", "LONG_BINPUT")),
    ("memoize", ("MEMOIZE",)),
    ("memo_get", ("GET", "BINGET", "LONG_BINGET")),
    ("mark", ("MARK",)),
    ("pop", ("POP",)),
    ("pop_mark", ("POP_MARK",)),
    ("dup", ("DUP",)),
    ("proto", ("PROTO",)),
    ("frame", ("FRAME",)),
    ("stop", ("STOP",)),
    ("str_text", ("STRING",)),
    ("str_bin", ("BINSTRING", "SHORT_BINSTRING")),
    ("unicode_text", ("UNICODE",)),
    ("unicode_bin", ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8")),
    ("bytes", ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8")),
    ("buffer", ("NEXT_BUFFER", "READONLY_BUFFER")),
    ("int_text", ("INT", "LONG")),
    ("int_bin", ("BININT", "BININT1", "BININT2", "LONG1", "LONG4")),
    ("float", ("FLOAT", "BINFLOAT")),
    ("const", ("NONE", "NEWTRUE", "NEWFALSE")),
    ("tuple", ("EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3")),
    ("list", ("EMPTY_LIST", "LIST")),
    ("dict", ("EMPTY_DICT", "DICT")),
    ("set", ("EMPTY_SET", "FROZENSET", "ADDITEMS")),
    ("append", ("APPEND", "APPENDS")),
    ("setitem", ("SETITEM", "SETITEMS")),
)
RULE_CLASSES = ("safe", "unknown", "dangerous")
# Behaviour categories of the knowledge base (rules/knowledge.py); others -> *_other.
CATEGORIES = knowledge.CATEGORIES
HASH_BUCKETS = 64
# (name, regex, literals one of which must occur for the regex to be worth running)
STRING_PATTERNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "shell",  # a command word followed by an argument, or shell control syntax
        r"\b(?:sh|bash|zsh|curl|wget|nc|ncat|rm|chmod|echo|touch|true|python3?|perl|whoami|uname"
        r"|powershell|cmd(?:\.exe)?)[ \t]+[-\w/$'\"]|[;&|`]\s*\w|\$\(",
        (" ", "\t", ";", "&", "|", "`", "$("),
    ),
    ("url", r"\b(?:https?|ftp|file)://", ("://",)),
    ("ip", r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", (".",)),
    ("base64", r"(?m)^[A-Za-z0-9+/]{32,}={0,2}$", ()),
    ("hex", r"(?m)^(?:[0-9a-fA-F]{2}){16,}$", ()),
    (
        "code",
        r"__import__|\bimport[ \t]+\w|\blambda\b|\bexec\s*\(|\beval\s*\(|\bos\.\w|subprocess",
        ("import", "lambda", "exec", "eval", "os.", "subprocess"),
    ),
    ("path", r"(?:^|[\s'\"=])(?:/tmp/|/etc/|/bin/|/dev/|~/|\.\./)", ("/", "~")),
    ("dunder", r"__\w+__", ("__",)),
)
NESTED_ENCODINGS = ("raw", "base64", "hex", "frame_divergence")
PROTOCOLS = (-1, 0, 1, 2, 3, 4, 5)
FORMATS = formats.FEATURE_FORMATS  # containers/formats.py: one home
CONTAINER_STATUSES = ("complete", "partial", "unsupported", "encrypted", "error")
WRAPPERS = formats.FEATURE_WRAPPERS
CONTAINER_ANOMALIES = container_anomalies.FEATURE_SLOTS  # containers/anomalies.py: one home
STREAM_KINDS = formats.FEATURE_STREAM_KINDS
EXTENSION_GROUPS: dict[str, str] = {
    **dict.fromkeys(("pt", "pth", "bin", "ckpt", "tar", "mar"), "torch"),
    **dict.fromkeys(("pkl", "pickle", "p", "dat", "data"), "pickle"),
    **dict.fromkeys(("joblib", "jbl", "z", "gz", "bz2", "xz", "lzma", "lz4"), "joblib"),
    **dict.fromkeys(("npy", "npz"), "numpy"),
}
EXTENSION_CLASSES = ("torch", "pickle", "joblib", "numpy", "none", "other")

_CALL_NAMES = (
    "total", "resolved", "unresolved", "discarded", "on_call_result",
    "to_safe", "to_unknown", "to_dangerous", "first_pos", "last_pos",
    "before_failure", "dangerous_before_failure",
)  # fmt: skip
_GLOBAL_NAMES = (
    "total", "distinct", "safe", "unknown", "dangerous", "unknown_frac", "unresolved",
    "via_memo", "ext", "dotted", "through_allowlisted", "modules_distinct",
)  # fmt: skip
_STRING_NAMES = (
    "total", "kept", "long", "len_mean", "len_max", "entropy_mean", "entropy_max",
    "high_entropy", "nonprintable",
)  # fmt: skip
_STRUCT_NAMES = (
    "streams", "pickles", "pickles_max", "opcodes", "incomplete", "first_error_pos",
    "budget_hit", "proto_max", "proto_distinct", "memo_puts", "memo_gets", "memo_get_put_ratio",
    "max_stack_depth", "junk_bytes", "junk_frac", "payload_bytes_log", "bytes_log",
    "payload_frac", "opcodes_per_kb",
)  # fmt: skip
_CONTAINER_NAMES = ("members_total", "wrappers", "budget_hit", "bytes_read_log")


def _names() -> tuple[str, ...]:
    out: list[str] = []
    out += [f"op_{g}" for g, _ in OPCODE_GROUPS]
    out += [f"opf_{g}" for g, _ in OPCODE_GROUPS]
    out += [f"call_op_{op.lower()}" for op in CALL_OPCODES]
    out += [f"call_{n}" for n in _CALL_NAMES]
    out += [f"glob_{n}" for n in _GLOBAL_NAMES]
    out += [f"cat_{c}" for c in CATEGORIES] + ["cat_dangerous_other", "cat_unknown_other"]
    out += [f"ghash_{i:02d}" for i in range(HASH_BUCKETS)]
    out += ["depth_name_max", "depth_name_mean", "depth_module_max"]
    out += [f"str_{n}" for n in _STRING_NAMES] + [f"str_pat_{p}" for p, _, _ in STRING_PATTERNS]
    out += ["nested_total", "nested_depth_max"] + [f"nested_{e}" for e in NESTED_ENCODINGS]
    out += [f"anom_{c}" for c in ANOMALY_CODES]
    out += [f"stat_{s}" for s in STREAM_STATUSES]
    out += [f"proto_{'none' if p < 0 else p}" for p in PROTOCOLS]
    out += [f"struct_{n}" for n in _STRUCT_NAMES]
    out += [f"fmt_{f}" for f in FORMATS]
    out += [f"cstat_{s}" for s in CONTAINER_STATUSES]
    out += [f"wrap_{w}" for w in WRAPPERS]
    out += [f"canom_{a}" for a in CONTAINER_ANOMALIES]
    out += [f"kind_{k}" for k in STREAM_KINDS]
    out += [f"ext_{e}" for e in EXTENSION_CLASSES]
    out += [f"container_{n}" for n in _CONTAINER_NAMES]
    out += ["unk_stdlib_distinct", "unk_stdlib_calls"]
    out += SHAPE_NAMES
    return tuple(out)


FEATURE_NAMES: tuple[str, ...] = _names()
N_FEATURES = len(FEATURE_NAMES)

# How wrapping a payload in benign content (more tensors, more objects) can move each feature.
# PADDING_SHIFTED: sizes, ratios, means, positions and the protocol (the padding's own), which
#   padding moves either way at will.
# CATEGORICAL: one-hots of format, status, stream kind and extension (padding inside a stream
#   does not change them). Every other feature is a count or a maximum that padding can only
#   raise. The classifier is monotone in those and blind to PADDING_SHIFTED, so padding can
#   never lower its score (see fastscan.train.fit.classifier_constraints).
PADDING_SHIFTED = frozenset(
    [n for n in FEATURE_NAMES if n.startswith("opf_")]
    + ["glob_unknown_frac", "call_first_pos", "call_last_pos", "depth_name_mean"]
    + ["str_total", "str_kept", "str_len_mean", "str_entropy_mean"]
    + [f"struct_{n}" for n in ("opcodes", "first_error_pos", "memo_puts", "memo_gets")]
    + [f"struct_{n}" for n in ("memo_get_put_ratio", "max_stack_depth", "junk_frac")]
    + [f"struct_{n}" for n in ("payload_bytes_log", "bytes_log", "payload_frac")]
    + ["struct_opcodes_per_kb", "container_bytes_read_log", "struct_proto_max"]
    + ["struct_proto_distinct"]
    + [n for n in FEATURE_NAMES if n.startswith("proto_")]
    # residual call shapes: wrapping the payload (a POP after it) moves its calls out of them
    + ["shape_res_kept", "shape_restoration", "shape_construction"]
)
CATEGORICAL = frozenset(
    n
    for n in FEATURE_NAMES
    if n.startswith(("fmt_", "cstat_", "kind_", "ext_", "stat_")) or n == "container_members_total"
)
_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
ARROW_SCHEMA = pa.schema(
    [pa.field(n, pa.float32(), nullable=False) for n in FEATURE_NAMES],
    metadata={"fastscan.feature_schema_version": str(FEATURE_SCHEMA_VERSION)},
)

ARROW_SCHEMA_WITH_PATH = ARROW_SCHEMA.insert(0, pa.field("path", pa.string(), nullable=False))


def _block(prefix: str) -> int:
    return _INDEX[prefix]


# Start offsets of each block: scalar features are written as `row[_X + k]`.
_OP, _OPF = _block(f"op_{OPCODE_GROUPS[0][0]}"), _block(f"opf_{OPCODE_GROUPS[0][0]}")
_CALL_OP, _CALL = _block("call_op_reduce"), _block("call_total")
_GLOB, _CAT = _block("glob_total"), _block(f"cat_{CATEGORIES[0]}")
_HASH, _DEPTH = _block("ghash_00"), _block("depth_name_max")
_STR, _PAT = _block("str_total"), _block(f"str_pat_{STRING_PATTERNS[0][0]}")
_NESTED, _ANOM = _block("nested_total"), _block(f"anom_{ANOMALY_CODES[0]}")
_STAT, _PROTO, _STRUCT = _block("stat_ok"), _block("proto_none"), _block("struct_streams")
_FMT, _CSTAT = _block("fmt_raw_pickle"), _block("cstat_complete")
_WRAP, _CANOM = _block(f"wrap_{WRAPPERS[0]}"), _block(f"canom_{CONTAINER_ANOMALIES[0]}")
_KIND, _EXT, _CONT = _block("kind_pickle"), _block("ext_torch"), _block("container_members_total")
_UNK_STDLIB = _block("unk_stdlib_distinct")
_SHAPE = _block(SHAPE_NAMES[0])

# Unlisted globals split by where they live: a user's own classes (what benign whole-model saves
# are full of) versus standard-library callables outside the allowlist (the gadget space of a
# family the denylist does not know yet). Fixed across Python versions: the running
# interpreter's list plus modules removed since 3.11.
_REMOVED_SINCE_311 = (
    "aifc asynchat asyncore audioop cgi cgitb chunk crypt distutils imghdr imp lib2to3 mailcap "
    "msilib nis nntplib ossaudiodev pipes smtpd sndhdr spwd sunau telnetlib uu xdrlib"
)
STDLIB_MODULES = frozenset(sys.stdlib_module_names) | frozenset(_REMOVED_SINCE_311.split())


def _group_of_opcode() -> np.ndarray:
    """Opcode byte -> index of its group in OPCODE_GROUPS, -1 for bytes that are no opcode."""
    group_of = np.full(256, -1, dtype=np.intc)
    seen: set[str] = set()
    for g, (_, names) in enumerate(OPCODE_GROUPS):
        for name in names:
            if group_of[BY_NAME[name].code] != -1:
                raise RuntimeError(f"opcode {name} is in two groups")
            group_of[BY_NAME[name].code] = g
            seen.add(name)
    missing = {op.name for op in TABLE} - seen
    if missing:
        raise RuntimeError(f"opcode groups must cover every opcode once; missing {sorted(missing)}")
    return group_of


_GROUP_OF = _group_of_opcode()
_CALL_SLOT = {name: i for i, name in enumerate(CALL_OPCODES)}
_CLASS_SLOT = {c: i for i, c in enumerate(RULE_CLASSES)}
_CAT_SLOT = {c: i for i, c in enumerate(CATEGORIES)}
_ANOM_SLOT = {c: i for i, c in enumerate(ANOMALY_CODES)}
_STATUS_SLOT = {s: i for i, s in enumerate(STREAM_STATUSES)}
_PROTO_SLOT = {p: i for i, p in enumerate(PROTOCOLS)}
_FMT_SLOT = {f: i for i, f in enumerate(FORMATS)}
_CSTAT_SLOT = {s: i for i, s in enumerate(CONTAINER_STATUSES)}
_WRAP_SLOT = {w: i for i, w in enumerate(WRAPPERS)}
_CANOM_SLOT = {a: i for i, a in enumerate(CONTAINER_ANOMALIES)}
_CANOM_SLOT_OF_CODE = {k.code: _CANOM_SLOT[k.slot] for k in container_anomalies.BY_CODE.values()}
_CANOM_OTHER = _CANOM_SLOT[container_anomalies.OTHER_SLOT]
_KIND_SLOT = {k: i for i, k in enumerate(STREAM_KINDS)}
_ENC_SLOT = {e: i for i, e in enumerate(NESTED_ENCODINGS)}
if tuple(p for _, p, _ in STRING_PATTERNS) != _native.PATTERN_SOURCES:
    raise RuntimeError("STRING_PATTERNS differ from the regexes fastscan._features implements")
