"""Nested loaders over visible content: `loader(b"...")` judged by what the bytes hold.

`torch.storage._load_from_bytes(b)` is how plain `pickle` writes every tensor (skorch,
sentence-transformers, any pickled nn.Module): the loader runs `torch.load` on bytes the stream
carries as a literal operand. When that operand is the call's only argument and the tokenizer
read it whole as nested pickles (torch's legacy format is five of them), the nested scan sees
everything the loader will load, so the call is judged by that content (engine: low when the
nested findings hold nothing malicious). An operand that is an archive (`torch.save`'s zip)
is opened and scanned as a file by the composer (`open_archives`: scan.py owns the containers)
and judged by that scan. Anything else fails closed and stays malicious: an argument that is
computed, memoised, carried through `_codecs.encode`, an archive that is malicious, truncated or
past a budget, or a loader global used other than by those calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from ..facts import STATUS_OK, StreamFacts
from ..findings import Finding
from ..opcodes import STATE_OPCODES
from .callsites import OPAQUE, VALUE, Call, Data, Glob, Sites, Text, walk_values
from .indexed import RECONSTRUCTORS, split_origin
from .knowledge import NESTED_LOADER
from .literals import archive

if TYPE_CHECKING:
    from ..index import Reach
    from .knowledge import Classification
    from .ruleset import RuleSet

# Bytes opcodes whose operand the tokenizer reads as a nested pickle: opcode -> length size.
_BYTES_HEADERS = {b"C"[0]: 1, b"B"[0]: 4, 0x8E: 8}  # SHORT_BINBYTES, BINBYTES, BINBYTES8
_MEMOIZE, _BINPUT, _LONG_BINPUT, _TUPLE1 = 0x94, b"q"[0], b"r"[0], 0x85
_REDUCE = "REDUCE"

Visible = Mapping[int, int]  # call offset -> index into StreamFacts.nested of its sole argument


def _operand_whole(data: memoryview, offset: int, length: int) -> bool:
    """The nested pickle at `offset` is the entire payload of a bytes opcode just before it."""
    for op, size in _BYTES_HEADERS.items():
        start = offset - 1 - size
        if start < 0 or data[start] != op:
            continue
        raw = bytes(data[start + 1 : offset])
        if int.from_bytes(raw, "little") == length:
            return True
    return False


def _only_tuple1(data: memoryview, start: int, end: int) -> bool:
    """data[start:end] is memo puts around one TUPLE1: the operand becomes `(operand,)`."""
    i, tuples = start, 0
    while i < end:
        op = data[i]
        if op == _MEMOIZE:
            i += 1
        elif op == _BINPUT:
            i += 2
        elif op == _LONG_BINPUT:
            i += 5
        elif op == _TUPLE1:
            tuples += 1
            i += 1
        else:
            return False
    return i == end and tuples == 1


def visible_operands(data: object, facts: StreamFacts) -> Visible:
    """Per REDUCE whose argument tuple is exactly one literal bytes operand read as nested
    pickles: the index of that nested pickle. Empty when the stream has none."""
    if not facts.nested:
        return {}
    view = memoryview(data).cast("B")  # type: ignore[arg-type]
    reduces = {c.offset for c in facts.calls if c.opcode == _REDUCE}
    out: dict[int, int] = {}
    for k, n in enumerate(facts.nested):
        if n.encoding != "raw" or n.carrier or n.facts.status != STATUS_OK:
            continue
        end = n.offset + n.length
        if not _operand_whole(view, n.offset, n.length):
            continue
        # the REDUCE follows within a few memo puts and the TUPLE1 (at most 12 bytes)
        for call_at in range(end + 1, min(end + 13, len(view))):
            if call_at in reduces:
                if _only_tuple1(view, end, call_at):
                    out[call_at] = k
                break
    return out


def visible_loader_calls(
    index: int,
    facts: StreamFacts,
    dangerous_categories: Sequence[str],
    visible: Visible,
    archives: Archives | None = None,
) -> list[int] | None:
    """Nested pickles holding every argument of nested-loader global `index`, or None when
    one is not visible. `dangerous_categories` (per global, "" when not dangerous) fails this
    closed when the stream also holds a non-loader sink that could hand the loader other
    bytes (a dispatcher, getattr); a reference to the loader other than as a callable (its
    use as a first argument) fails it too. A call whose literal operand is an archive the
    scan opened and found clean (`archives`, by call offset) needs no nested pickle."""
    if any(cat not in ("", NESTED_LOADER) for cat in dangerous_categories):
        return None
    held: list[int] = []
    opened = 0
    for c in facts.calls:
        if c.first_arg_global == index:
            return None
        if c.callable_index != index or c.opcode in STATE_OPCODES:
            continue
        if archives and archives.get(c.offset) is True:
            opened += 1
            continue
        k = visible.get(c.offset, -1) if c.opcode == _REDUCE else -1
        if k < 0:
            return None
        held.append(k)
    return held if held or opened else None


def benign_content(
    index: int,
    facts: StreamFacts,
    dangerous_categories: Sequence[str],
    visible: Visible | None,
    clean: Callable[[StreamFacts], bool],
    *,
    archives: Archives | None = None,
) -> str:
    """Why nested loader `index` is benign here: every call of it loads literal bytes whose
    nested scan (`clean`: complete, nothing malicious) passes, read as nested pickles or
    opened as an archive (`archives`); "" otherwise (stays malicious)."""
    if not visible and not archives:
        return ""
    held = visible_loader_calls(index, facts, dangerous_categories, visible or {}, archives)
    if held is None or not all(clean(facts.nested[k].facts) for k in held):
        return ""
    parts = [f"{len(held)} visible operand(s) whose nested scan holds nothing malicious"]
    opened = (
        sum(c.callable_index == index and archives.get(c.offset) is True for c in facts.calls)
        if archives
        else 0
    )
    if opened:
        parts = [p for p in parts if held] + [f"{opened} archive operand(s) opened, scanned clean"]
    return " and ".join(parts)


# A loader call's literal archive operand, opened and scanned by the composer (scan.py, which
# owns the containers): call offset -> True when the scan is complete and holds nothing
# malicious, False otherwise. Only calls with such an operand are present.
Archives = Mapping[int, bool]


class Opened(NamedTuple):
    """A stream's archive operands, opened: their judgement per loader call, and the findings
    of their content (reported in the file, at the loader call's offset)."""

    archives: Archives
    findings: tuple[Finding, ...] = ()


def open_archives(
    data: Any,
    facts: StreamFacts,
    sites: Sites,
    loaders: Sequence[bool],
    scan: Callable[[bytes, str], tuple[bool, list[Finding]]],
) -> Opened:
    """Open every archive a nested loader call is handed as its literal operand
    (`archive_operands`) with `scan(raw, name)`: the composer's own scan of those bytes as a
    file (containers, tokenizer, these rules; never a load), which says whether the content is
    complete and holds nothing malicious, and keeps the budgets (False past them)."""
    operands = archive_operands(facts, sites, loaders)
    if not operands:
        return Opened({})
    view = memoryview(data).cast("B") if memoryview(data).format != "B" else memoryview(data)
    judged: dict[int, bool] = {}
    found: list[Finding] = []
    for offset, d in sorted(operands.items()):
        raw = bytes(view[d.offset : d.offset + d.length])
        if not archive(raw):
            continue  # not an archive: a loader of it is judged as before (`loadable`)
        clean, findings = scan(raw, f"archive@{d.offset}")
        judged[offset] = clean
        where = f" (in the archive a nested loader opens at offset {d.offset})"
        found.extend(replace(f, message=f.message + where, offset=offset) for f in findings)
    return Opened(judged, tuple(found))


def archive_operands(facts: StreamFacts, sites: Sites, loaders: Sequence[bool]) -> dict[int, Data]:
    """Loader calls (`loaders`: per global, a nested loader) whose sole argument is a literal
    bytes operand the tokenizer did not read as a nested pickle, by call offset: an archive
    there is what `torch.load(BytesIO(b))` would open."""
    read = {n.offset for n in facts.nested}
    out: dict[int, Data] = {}
    for c in facts.calls:
        i = c.callable_index
        if c.opcode != _REDUCE or not (0 <= i < len(loaders) and loaders[i]):
            continue
        site = sites.get(c.offset)
        if site is None or len(site.args) != 1 or site.states:
            continue
        arg = site.args[0]
        if isinstance(arg, Data) and arg.offset not in read:
            out[c.offset] = arg
    return out


# -- loaders reached through a class's hooks, and loaders over `_codecs.encode` bytes ---------

_LATIN1 = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1"})
_CODECS_ENCODE = frozenset({"_codecs.encode", "codecs.encode"})
_NESTED_LOADER = "nested_loader"
_MAX_STATE_CALLS = 100_000  # calls followed through one class's state before giving up


def visible_sites(facts: StreamFacts, sites: Sites, resolved: Sequence[str]) -> dict[int, int]:
    """`visible_operands` for loader calls whose sole argument is `_codecs.encode(<literal
    text>, "latin1")` (protocol <= 2 bytes) or a memoised literal bytes operand, when the
    tokenizer read those exact bytes as a nested pickle (`resolved`: per global, its name)."""
    carried = {n.offset: k for k, n in enumerate(facts.nested) if _whole(n)}
    if not carried:
        return {}
    by_offset = {c.offset: c for c in facts.calls}
    out: dict[int, int] = {}
    for offset, site in sites.items():
        if len(site.args) != 1 or site.states:
            continue
        arg = site.args[0]
        if isinstance(arg, Data) and arg.offset in carried:
            out[offset] = carried[arg.offset]
        elif isinstance(arg, Call):
            text = _latin1_text(arg, by_offset, sites, resolved)
            if text is not None and text.offset in carried:
                out[offset] = carried[text.offset]
    return out


def read_whole(facts: StreamFacts) -> bool:
    """The tokenizer read this nested pickle, and every pickle nested in it, to the end."""
    return all(f.status == STATUS_OK and not f.anomaly_count("nested_budget") for f in facts.walk())


def graded_whole(n: Any) -> bool:
    """A raw nested pickle read whole: the scan grades what a loader would run from it by its
    own findings (FS210 is a low note; an unlisted function handed it is not FS112 for it)."""
    return n.encoding == "raw" and read_whole(n.facts)


def _whole(n: Any) -> bool:
    return n.encoding == "raw" and n.facts.status == STATUS_OK  # any carrier: its loader bytes


def _latin1_text(
    value: Call, by_offset: Mapping[int, Any], sites: Sites, resolved: Sequence[str]
) -> Text | None:
    """The literal text of `_codecs.encode(text, "latin1")` when `value` is that call."""
    c = by_offset.get(value.offset)
    site = sites.get(value.offset)
    if c is None or site is None or c.callable_is_call or not 0 <= c.callable_index < len(resolved):
        return None
    if resolved[c.callable_index] not in _CODECS_ENCODE or len(site.args) != 2:
        return None
    text, codec = site.args
    if not (isinstance(codec, Text) and codec.text and codec.text.lower() in _LATIN1):
        return None
    return text if isinstance(text, Text) else None


# Allowlisted callables that make bytes or text out of other values (ints, other text).
_BYTES_MAKERS = (
    frozenset({"builtins.bytes", "builtins.bytearray", "builtins.str", "builtins.memoryview"})
    | _CODECS_ENCODE
)
_PARTIAL = "functools.partial"


def _keeps_bytes(
    c: Any, site: Any, classes: Sequence[Classification | None], global_at: Mapping[int, int]
) -> bool:
    """A call whose result holds no bytes but those among its own arguments and state (which
    the caller checks in turn): `_codecs.encode(text, "latin1")` (the text's latin-1 bytes),
    `copyreg._reconstructor(cls, object, ...)`, `cls.__new__(cls)` without arguments, a
    partial, a nested loader (its input is followed), or an allowlisted callable that makes
    no bytes from other values (numpy's `_reconstruct`). A function nobody reviewed, or a
    bytes subclass built from ints, may decode anything."""
    made = classes[c.callable_index] if 0 <= c.callable_index < len(classes) else None
    if c.callable_is_call or made is None:
        return False
    if made.resolved in _CODECS_ENCODE:
        codec = site.args[1] if len(site.args) == 2 else None
        return isinstance(codec, Text) and (codec.text or "").lower() in _LATIN1
    if made.resolved in RECONSTRUCTORS:
        # _reconstructor(cls, base, state) is base.__new__(cls) (+ base.__init__(obj, state)):
        # bytes only when base is a bytes/str type
        base = site.args[1] if len(site.args) > 1 else None
        if made.resolved != "copyreg._reconstructor":
            return False
        i = global_at.get(base.offset, -1) if isinstance(base, Glob) else -1
        base_class = classes[i] if i >= 0 else None
        return (
            base_class is not None
            and base_class.is_safe
            and (base_class.resolved not in _BYTES_MAKERS)
        )
    if c.opcode in ("NEWOBJ", "NEWOBJ_EX") and not site.args:
        return True
    if made.resolved == _PARTIAL or made.category == _NESTED_LOADER:
        # a partial object; what a loader loads comes from its own arguments, followed too
        return True
    return made.is_safe and made.resolved not in _BYTES_MAKERS


def loader_on_path(rules: RuleSet, reach: Reach) -> str:
    """The first step of `reach` that is a reviewed nested loader (torch.load, pickle.loads),
    "" when the path runs through none."""
    index = rules.index
    if index is None:
        return ""
    for step in reach.path[1:]:
        if rules.classify(*split_origin(index, step)).category == _NESTED_LOADER:
            return step
    return ""


def loads_through_hooks(rules: RuleSet, cls: Classification, hooks_run: frozenset[str]) -> str:
    """The nested loader every reach of `cls` that this pickle's hooks run passes through (a
    class whose __setstate__ torch.loads its state); "" when some reach avoids loaders."""
    found = ""
    for r in cls.reaches:
        if r.hook not in hooks_run:
            continue
        step = loader_on_path(rules, r)
        if not step:
            return ""
        found = found or step
    return found


def state_content(
    index: int,
    facts: StreamFacts,
    classes: Sequence[Classification | None],
    sites: Sites,
    clean: Callable[[StreamFacts], bool],
) -> str:
    """Why class global `index`, whose hooks reach a nested loader, loads nothing malicious:
    every object of it is built (NEWOBJ, REDUCE, a reconstructor) from arguments and BUILD
    state whose bytes, followed through every call that made them, are nested pickles the
    tokenizer read whole and found clean, or literals no loader can run; "" otherwise."""
    starts: list[tuple[int, int]] = []  # (call, arguments to skip)
    for k, c in enumerate(facts.calls):
        if c.opcode == "BUILD":
            continue
        if c.callable_index == index:
            starts.append((k, 0))
        elif c.first_arg_global == index:
            made = classes[c.callable_index] if 0 <= c.callable_index < len(classes) else None
            if made is None or made.resolved not in RECONSTRUCTORS:
                return ""  # handed to something that may build it from anything
            starts.append((k, 1))
    if not starts:
        return ""  # only referenced: whatever instantiates it is not visible here
    nested = {n.offset: n for n in facts.nested}
    by_offset = {c.offset: c for c in facts.calls if c.opcode != "BUILD"}
    global_at = {g.offset: i for i, g in enumerate(facts.globals)}
    todo: list[Any] = []
    for k, skip in starts:
        site = sites.get(facts.calls[k].offset)
        if site is None:
            return ""
        todo.extend((*site.args[skip:], *site.states))
    seen: set[int] = set()
    scanned = 0
    values = todo
    while values:
        nxt: list[Any] = []
        for leaf in walk_values(values):
            if leaf is OPAQUE:
                return ""
            if isinstance(leaf, Glob):
                i = global_at.get(leaf.offset, -1)
                known = classes[i] if i >= 0 else None
                if known is None or known.kind == "constant":
                    return ""  # a module's bytes constant: not seen here
                continue  # a class or function is judged where it is imported
            if leaf is VALUE:
                continue
            if isinstance(leaf, (Text, Data)):
                n = nested.get(leaf.offset)
                if n is not None:
                    if not (_whole(n) and clean(n.facts)):
                        return ""
                    scanned += 1
                elif leaf.loads:
                    return ""  # bytes a loader could run that the scan did not read whole
                continue
            if isinstance(leaf, Call):
                if leaf.offset in seen:
                    continue
                seen.add(leaf.offset)
                site = sites.get(leaf.offset)
                maker = by_offset.get(leaf.offset)
                if site is None or maker is None or len(seen) > _MAX_STATE_CALLS:
                    return ""
                if not _keeps_bytes(maker, site, classes, global_at):
                    return ""  # its result may be bytes made from something else
                nxt.extend((*site.args, *site.states))
                continue
            return ""
        values = nxt
    if not scanned:
        return ""  # the loader's bytes are not in this state: they come from elsewhere
    return f"{scanned} nested pickle(s) read whole and clean, no other loadable bytes"


__all__ = [
    "Archives",
    "Opened",
    "Visible",
    "archive_operands",
    "benign_content",
    "graded_whole",
    "loader_on_path",
    "loads_through_hooks",
    "open_archives",
    "read_whole",
    "state_content",
    "visible_loader_calls",
    "visible_operands",
    "visible_sites",
]
