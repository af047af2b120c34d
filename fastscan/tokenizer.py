"""Pickle buffer -> StreamFacts, through the native (Cython) walker.

There is no pure-Python twin: gcc is on every target machine and a twin would be ~70x slower, so
importing fastscan without its extension is an error rather than a silent slowdown.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .facts import (
    BAD_TEXT_OPERAND,
    MARK_MISSING,
    NATIVE_ANOMALY_CODES,
    NATIVE_STATUSES,
    NESTED_BUDGET,
    NON_UTF8_NAME,
    STACK_UNDERFLOW,
    STATUS_BAD_OPCODE,
    STATUS_BUDGET,
    STATUS_EMPTY,
    STATUS_NOT_PICKLE,
    STATUS_OK,
    STATUS_TRUNCATED,
    Anomaly,
    CallSite,
    GlobalRef,
    NestedPickle,
    ScanLimits,
    StreamFacts,
)
from .opcodes import IMPORT_OPCODES, NAMES

try:
    from . import _bytescan
    from . import _tokenizer as _native
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "fastscan's native tokenizer is not built; reinstall with `pip install .` "
        "(needs a C++ compiler and Cython)"
    ) from exc

IMPLEMENTATION = "native"
DEFAULT_LIMITS = ScanLimits()

_STATUS = NATIVE_STATUSES  # native status value -> name
_ANOMALY_NAMES = NATIVE_ANOMALY_CODES  # native anomaly value -> code
# anomalies at which the loader raises, by code and by native anomaly value
_LOADER_RAISES = frozenset({STACK_UNDERFLOW, MARK_MISSING})
_NATIVE_LOADER_RAISES = tuple(
    NATIVE_ANOMALY_CODES.index(code) for code in (STACK_UNDERFLOW, MARK_MISSING)
)
_ENC_UTF8, _ENC_BYTES, _ENC_QUOTED, _ENC_RAW_UNICODE = range(4)
# Why the walker queued a region (its NEST_* codes): NEST_TEXT + ENC_* is an operand whose
# loader-made bytes import within their first opcodes, checked here by `starts_like_pickle`.
_NEST_RAW, _NEST_FRAME, _NEST_TEXT = range(3)
CARRIERS = {
    _ENC_BYTES: "bytes",  # BINBYTES/BINSTRING/BYTEARRAY8 ... without a pickle-like start
    _ENC_UTF8: "latin1_text",  # BINUNICODE family: _codecs.encode(text, "latin1")
    _ENC_QUOTED: "escaped_string",  # protocol-0 STRING: escape-decoded bytes
    _ENC_RAW_UNICODE: "raw_unicode_text",  # protocol-0 UNICODE, then latin-1
}

# An encoded inner pickle: base64 of b"\x80\x0N" starts with "gA", hex with "800N".
_IMPORTABLE = re.compile(rb"^[A-Za-z_][\w.]*\r?$")
_B64_PICKLE = re.compile(r"^\s*gA[A-Z][A-Za-z0-9+/=\s]{8,}$")
_HEX_PICKLE = re.compile(r"^\s*80(0[0-5])[0-9a-fA-F]{6,}\s*$")


def byte_view(data: Any) -> memoryview:
    """A flat unsigned-byte view of any buffer, what the native walkers take (a copy only for a
    non-contiguous one)."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1 or not view.c_contiguous:
        view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    return view


def _decode(raw: bytes, enc: int) -> tuple[str, bool]:
    """Decode a string operand the way the loader would; returns (text, decoded_cleanly).

    A STRING's escapes decode to bytes the loader turns into str with its `encoding`: UTF-8
    here, else latin-1 (what encoding="latin1" loaders, numpy's and py2 ports, build).
    """
    try:
        if enc == _ENC_QUOTED:
            data = _escape_decode(raw)
            try:
                return data.decode("utf-8"), True
            except UnicodeDecodeError:
                return data.decode("latin-1"), False
        if enc == _ENC_RAW_UNICODE:
            return raw.decode("raw_unicode_escape"), True
        return raw.decode("utf-8"), True
    except (UnicodeDecodeError, ValueError):
        return raw.decode("utf-8", errors="replace"), False


def _escape_decode(raw: bytes) -> bytes:
    """STRING's escapes, as _pickle decodes them (ValueError where it raises). Quietly: an
    unknown escape is a DeprecationWarning the scanned file must not print."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return codecs.escape_decode(raw)[0]


def _rejected_texts(view: memoryview, walker: Any) -> list[Anomaly]:
    """The queued INT/LONG/FLOAT/STRING/UNICODE operands the loader raises on.

    The walk checked the plain ones itself; these are judged by the functions CPython's
    unpickler calls. Where _pickle and pickle.py differ (I010 is 8 for one and an error for the
    other), _pickle decides. The walk goes on past them: the loader stops there, so what
    follows is over-reported, never missed.
    """
    out = []
    for op_start, pidx, op, off, length in walker.text_checks():
        raw = bytes(view[off : off + length])
        name = NAMES[op]
        if name in ("STRING", "UNICODE"):
            try:
                _escape_decode(raw) if name == "STRING" else raw.decode("raw_unicode_escape")
                rejected = False
            except (UnicodeDecodeError, ValueError):
                rejected = True
        else:
            rejected = _native.loader_rejects_number(op, raw)
        if rejected:
            out.append(Anomaly(BAD_TEXT_OPERAND, op_start, pidx, name))
    return out


def _normalise_module(module: str) -> str:
    # Protocols <= 2 write Python 2 names; the loader maps them (fix_imports).
    if module == "__builtin__":
        return "builtins"
    if module == "copy_reg":
        return "copyreg"
    return module


def tokenize(data: Any, limits: ScanLimits | None = None, *, _depth: int = 0) -> StreamFacts:
    """Walk every pickle in `data` (bytes, memoryview or mmap) and return what was seen."""
    limits = limits or DEFAULT_LIMITS
    view = byte_view(data)
    if len(view) == 0:
        return StreamFacts(status=STATUS_EMPTY, limits=limits)
    walker = _native.Walker(
        view,
        max_opcodes=limits.max_opcodes,
        max_stack=limits.max_stack,
        max_memo=limits.max_memo,
        max_globals=limits.max_globals,
        max_calls=limits.max_calls,
        max_strings=limits.max_strings,
        max_string_len=limits.max_string_len,
        max_nested=limits.max_nested,
        max_resync_opcodes=limits.max_resync_opcodes,
        max_str_digits=sys.get_int_max_str_digits(),
    ).run()

    anomalies = [
        Anomaly(_ANOMALY_NAMES[code], offset, pidx, str(detail) if detail else "")
        for code, offset, pidx, detail in walker.anomaly_list()
    ]
    anomalies += _rejected_texts(view, walker)
    globals_: list[GlobalRef] = []
    for (
        offset,
        pidx,
        opcode,
        resolved,
        via_memo,
        mod_off,
        mod_len,
        mod_enc,
        name_off,
        name_len,
        name_enc,
        ext_code,
    ) in walker.global_list():
        opname = NAMES[opcode]
        if opname.startswith("EXT"):
            globals_.append(
                GlobalRef("?", f"ext:{ext_code}", opname, offset, pidx, False, bool(via_memo))
            )
            continue
        module, ok_m = (
            walker.text(mod_off, mod_len, mod_enc, _decode) if mod_off >= 0 else ("?", True)
        )
        name, ok_n = (
            walker.text(name_off, name_len, name_enc, _decode) if name_off >= 0 else ("?", True)
        )
        if not (ok_m and ok_n):
            anomalies.append(Anomaly(NON_UTF8_NAME, offset, pidx, f"{module!r} {name!r}"))
        globals_.append(
            GlobalRef(
                _normalise_module(module),
                name,
                opname,
                offset,
                pidx,
                bool(resolved),
                bool(via_memo),
            )
        )

    calls = tuple(walker.call_list(NAMES, CallSite))
    # decoded natively in one pass; `_decode` only sees the rare encodings and undecodable bytes
    strings: tuple[str, ...] = walker.string_texts(_decode)
    pickles = walker.pickle_list()
    status = _STATUS[walker.status] if pickles else STATUS_NOT_PICKLE
    nested = _nested(view, walker, strings, limits=limits, depth=_depth, anomalies=anomalies)

    return StreamFacts(
        status=status,
        error="" if status == STATUS_OK else _error_text(status, walker),
        error_offset=walker.error_offset,
        length=len(view),
        n_pickles=len(pickles),
        n_opcodes=walker.n_ops,
        protocols=tuple(proto for _, proto in pickles),
        pickle_offsets=tuple(off for off, _ in pickles),
        opcode_counts=walker.opcode_counts(),
        globals=tuple(globals_),
        calls=calls,
        strings=strings,
        n_strings=walker.n_strings,
        long_strings=walker.long_strings,
        nested=tuple(nested),
        anomalies=tuple(anomalies),
        memo_puts=walker.memo_puts,
        memo_gets=walker.memo_gets,
        max_stack_depth=walker.max_depth,
        junk_bytes=walker.junk_bytes,
        payload_bytes=walker.payload_bytes,
        budget=walker.budget,
        limits=limits,
    )


def _error_text(status: str, walker: Any) -> str:
    if status == STATUS_NOT_PICKLE:
        return "no pickle opcode stream found"
    if status == STATUS_BUDGET:
        return f"scan budget {walker.budget} exceeded"
    if status == STATUS_TRUNCATED:
        return f"pickle truncated at offset {walker.error_offset}"
    return f"invalid opcode at offset {walker.error_offset}"


def _nested(
    view: memoryview,
    walker: Any,
    strings: tuple[str, ...],
    *,
    limits: ScanLimits,
    depth: int,
    anomalies: list[Anomaly],
) -> list[NestedPickle]:
    """Tokenize operands that are themselves pickles (H1, H2, J1): bytes, the latin-1 bytes of
    a string (`_codecs.encode`), a STRING's escaped bytes, base64 or hex text."""
    candidates: list[tuple[int, int, str, Any, str]] = []
    queued = walker.nested_list()
    frames = {off for off, _, why in queued if why == _NEST_FRAME}  # read there already
    for off, length, why in queued:
        if why < _NEST_TEXT:
            kind = "frame_divergence" if why == _NEST_FRAME else "raw"
            candidates.append((off, length, kind, view[off : off + length], ""))
            continue
        if off in frames:
            continue
        enc = why - _NEST_TEXT
        # bytes are probed in place: a tensor's bytes can pass the walker's pre-filter
        inner = (
            view[off : off + length]
            if enc == _ENC_BYTES
            else _carried_bytes(view, off, length, enc)
        )
        # a string that decodes to bytes importing a loadable name; one that imports
        # nothing runs nothing, and names or prose rarely parse that far
        if inner is not None and _window_kind(byte_view(inner), 20_000) == "import":
            candidates.append((off, length, "raw", inner, CARRIERS[enc]))
    # the walker pre-filters the kept strings (a superset of those the regexes can match)
    maybe_encoded = walker.encoded_candidates()
    if maybe_encoded:
        spans = walker.string_list()
        for i in maybe_encoded:
            encoded = _decode_encoded_pickle(strings[i])
            if encoded is not None:
                candidates.append((spans[i][0], spans[i][1], encoded[0], encoded[1], ""))
    over = walker.nested_dropped + max(0, len(candidates) - limits.max_nested)
    if over:  # candidates left unread: the verdict must not rest on the ones read
        anomalies.append(Anomaly(NESTED_BUDGET, 0, 0, f"{over} candidates over max_nested"))
    if not candidates:
        return []
    if depth >= limits.max_nesting:
        anomalies.append(Anomaly(NESTED_BUDGET, candidates[0][0], 0, f"depth {depth}"))
        return []
    out = []
    for off, length, encoding, buf, carrier in candidates[: limits.max_nested]:
        facts = tokenize(buf, limits, _depth=depth + 1)
        headed = len(buf) >= 2 and buf[0] == 0x80 and buf[1] <= 5
        if (carrier or not headed) and encoding == "raw" and not _runs_something(buf, facts):
            continue
        if facts.n_pickles and (facts.globals or facts.status == STATUS_OK):
            out.append(NestedPickle(off, length, encoding, facts, carrier))
    return out


def _runs_something(buf: Any, facts: StreamFacts) -> bool:
    r"""A headerless or carried candidate counts when the loader imports (no missing MARK or
    stack underflow first) and then calls or reaches a STOP: text such as "cuda\ncpu\n" or
    "intro\nnumpy\n" parses as an import, not as a pickle a loader would run."""
    if not facts.globals:
        return False
    first = min(g.offset for g in facts.globals)
    if any(a.code in _LOADER_RAISES and a.offset <= first for a in facts.anomalies):
        return False
    return any(c.callable_index >= 0 for c in facts.calls) or pickle_end(buf) is not None


def _carried_bytes(view: memoryview, off: int, length: int, enc: int) -> bytes | None:
    """The bytes a loader makes of a string operand: a STRING's escapes decoded, or the text
    encoded to latin-1; None when that raises."""
    raw = bytes(view[off : off + length])
    try:
        if enc == _ENC_QUOTED:
            return _escape_decode(raw)
        text = raw.decode("utf-8") if enc == _ENC_UTF8 else raw.decode("raw_unicode_escape")
        return text.encode("latin-1")
    except (UnicodeError, ValueError):
        return None


def _decode_encoded_pickle(text: str) -> tuple[str, bytes] | None:
    if len(text) < 12:
        return None
    try:
        if _B64_PICKLE.match(text):
            return "base64", base64.b64decode("".join(text.split()), validate=False)
        if _HEX_PICKLE.match(text):
            return "hex", bytes.fromhex(text.strip())
    except (binascii.Error, ValueError):
        return None
    return None


def find(data: Any, needle: bytes, start: int = 0) -> int:
    """`bytes.find` over any buffer (bytes, memoryview, mmap) without copying it."""
    return int(_bytescan.find(byte_view(data), needle, start))


def pickle_end(data: Any, start: int = 0, max_ops: int = 200_000_000) -> int | None:
    """Offset just past the STOP of the pickle at `start`, or None when it breaks first."""
    view = byte_view(data)
    *_lists, end, status = _bytescan.list_opcodes(view, start, max_ops, False)
    return int(end) if status == STATUS_OK else None


def starts_like_pickle(data: Any, max_opcodes: int = 20_000) -> bool:
    """Whether `data` starts like a pickle a loader would run (used to sniff container members).

    True when the first pickle reaches STOP, imports something, or parses a long clean prefix
    (a member cut short by the caller's read window).
    """
    view = byte_view(data)
    if _short_break(view):
        return False
    # Most real pickles import a class within their first bytes; that decision cannot change
    # with more bytes (everything before the first import is already seen), so try a short
    # window before walking the whole prefix (which the tokenizer then walks again). A PROTO
    # header followed by a window of clean opcodes is a pickle too (a 50k-entry vocabulary
    # imports nothing): random bytes do not parse that long, and the tokenizer reports a
    # pickle that breaks further on. Bytes that break in the window before any import are
    # not a pickle however long the walk.
    if len(view) > _FIRST_IMPORT_BYTES and _window_kind(view[:_FIRST_IMPORT_BYTES], 64) == "import":
        return True  # a checkpoint's first bytes import its first class
    short = len(view) <= _QUICK_PROBE_BYTES
    quick = _window_kind(view[:_QUICK_PROBE_BYTES], max_opcodes if short else 1024)
    if quick == "import" or (quick == "clean" and _has_proto_header(view)):
        return True
    if quick == _BROKEN or short:
        return quick not in ("", _BROKEN)
    return _window_kind(view, max_opcodes) not in ("", _BROKEN)


_IMPORT_CODES = frozenset(code for code, name in enumerate(NAMES) if name in IMPORT_OPCODES)


def breaks_before_import(data: Any) -> bool:
    """Whether the bytes break before any import: an invalid opcode within their first window,
    or (without a PROTO header) an invalid opcode or an operand running past their end within
    the first `_FIRST_PICKLE_MIN_OPS` opcodes.

    Then no loader runs anything, `starts_like_pickle` says no, and the tokenizer rejects such a
    first pickle, so a whole-buffer walk cannot take them for a pickle either (`parses_as_pickle`
    needs a pickle at offset 0): a cheap exit for the tensor storages that happen to start with
    an opcode byte.
    """
    view = byte_view(data)
    if _short_break(view):
        return True
    codes, _offsets, _, _, _end, status = _bytescan.list_opcodes(view[:_QUICK_PROBE_BYTES], 0, 1024)
    return _breaks(codes, status)


# The tokenizer keeps a broken first pickle only when it imported, had a PROTO header or ran
# this many opcodes (`Walker.run_nogil`); `starts_like_pickle` needs as many for a cut-off prefix.
_FIRST_PICKLE_MIN_OPS = 8


def _short_break(view: memoryview) -> bool:
    if len(view) >= 2 and view[0] == 0x80 and view[1] <= 5:
        return False
    codes, _offsets, _, _, _end, status = _bytescan.list_opcodes(view, 0, _FIRST_PICKLE_MIN_OPS)
    return (
        status in (STATUS_BAD_OPCODE, STATUS_TRUNCATED)
        and len(codes) < _FIRST_PICKLE_MIN_OPS
        and _IMPORT_CODES.isdisjoint(codes)
    )


def _breaks(codes: bytes, status: str) -> bool:
    return status == STATUS_BAD_OPCODE and _IMPORT_CODES.isdisjoint(codes)


_BROKEN = "broken"


def _has_proto_header(view: memoryview) -> bool:
    return view[0] == 0x80 and 2 <= view[1] <= 5


_QUICK_PROBE_BYTES = 4096
_FIRST_IMPORT_BYTES = 256


def _window_kind(view: memoryview, max_opcodes: int) -> str:
    """ "import" (an importable name after a clean start), "clean" (parses cleanly), "broken"
    (an invalid opcode before any import: see `breaks_before_import`) or ""."""
    if len(view) < 2:
        return ""
    codes, _offsets, _, _, _end, status = _bytescan.list_opcodes(view, 0, max_opcodes)
    if not codes:
        return ""
    if _breaks(codes, status):
        return _BROKEN
    walker = _native.Walker(view, max_opcodes=max_opcodes, max_resync_opcodes=0).run()
    # Imports of any pickle of the buffer count: torch's legacy format (what
    # `torch.storage._load_from_bytes` loads) is five pickles, and only the third imports.
    first_globals = walker.global_list()
    # The loader raises at a stack underflow or missing MARK; before the first import nothing
    # can have run (float tensor bytes that happen to end in b"." parse as a "complete" pickle).
    first_import = min((g[0] for g in first_globals), default=None)
    raises = [a[1] for a in walker.anomaly_list() if a[0] in _NATIVE_LOADER_RAISES]
    if any(first_import is None or offset < first_import for offset in raises):
        return ""
    # An import counts only when a loader could resolve it: tensor bytes often decode as an EXT
    # opcode or a GLOBAL with binary operands, and Python source as "c" + "lass X(...):".
    for g in first_globals:
        if NAMES[g[2]] in ("GLOBAL", "STACK_GLOBAL", "INST"):
            module = bytes(view[g[5] : g[5] + g[6]]) if g[5] >= 0 else b""
            name = bytes(view[g[8] : g[8] + g[9]]) if g[8] >= 0 else b""
            if _IMPORTABLE.match(module) and _IMPORTABLE.match(name):
                return "import"
    # without an importable name, any stack underflow or missing MARK means the loader raises,
    # so random bytes that happen to parse are not taken for a pickle
    clean = not raises
    if status == STATUS_OK:
        return "clean" if len(codes) >= 2 and clean else ""
    return (
        "clean" if status in (STATUS_TRUNCATED, STATUS_BUDGET) and len(codes) >= 8 and clean else ""
    )


@dataclass(frozen=True, slots=True)
class Op:
    """One opcode of a listing (explain, differential tests)."""

    offset: int
    code: int
    name: str
    arg_offset: int
    arg_length: int


def iter_opcodes(data: Any, start: int = 0, max_ops: int = 10_000_000) -> Iterator[Op]:
    """Opcodes of the single pickle at `start`, up to its STOP or the first error."""
    view = byte_view(data)
    codes, offsets, arg_offsets, arg_lengths, _end, _status = _bytescan.list_opcodes(
        view, start, max_ops
    )
    for code, off, aoff, alen in zip(codes, offsets, arg_offsets, arg_lengths, strict=True):
        yield Op(off, code, NAMES[code], aoff, alen)


def opcode_bounds(
    data: Any, start: int = 0, max_ops: int = 10_000_000
) -> tuple[bytes, list[int], list[int], list[int], int, str]:
    """The raw native listing behind `list_opcodes`: (codes, offsets, arg offsets, arg lengths,
    end, status), no per-opcode objects (for readers that decode only some operands)."""
    return _bytescan.list_opcodes(byte_view(data), start, max_ops)


def list_opcodes(data: Any, start: int = 0, max_ops: int = 10_000_000) -> tuple[list[Op], int, str]:
    """Like iter_opcodes, plus the end offset and the status (ok/truncated/bad_opcode/budget)."""
    view = byte_view(data)
    codes, offsets, arg_offsets, arg_lengths, end, status = _bytescan.list_opcodes(
        view, start, max_ops
    )
    ops = [
        Op(off, code, NAMES[code], aoff, alen)
        for code, off, aoff, alen in zip(codes, offsets, arg_offsets, arg_lengths, strict=True)
    ]
    return ops, end, status
