"""Stage 5: facts -> one fixed-length numeric vector per file, and Arrow batches of them.

    vec = features.extract(container, streams)  # streams: list[(PickleStream, StreamFacts)]
    batch = features.to_batch([vec, ...])        # pyarrow.RecordBatch, columns = FEATURE_NAMES
    X = features.batch_to_matrix(batch)          # (n, len(FEATURE_NAMES)) float32, for the model

`extract` returns a float32 numpy row (never NaN, never inf) laid out as `FEATURE_NAMES`; that
order and `FEATURE_SCHEMA_VERSION` are the contract with a trained model (its manifest repeats
the names, and `fastscan.model` refuses a mismatch). Changing, adding or reordering a feature
means bumping the version and retraining.

Globals are classified with the shipped default ruleset unless another is passed: the model was
trained on default classifications, so user allow-lists must not shift its inputs.

The layout (names, order, block vocabularies, slots, the Arrow schema) is feature_layout.py;
this module computes rows by it and converts them to matrices and Arrow batches.

Speed: the hot loops (string statistics and patterns, the opcode histogram, call sites, the
float32 conversion) run in the native helper `fastscan._features` (native/_features.pyx), which
reproduces the original Python/numpy computation bit for bit, since the model was trained on its
rows: tests/specs/string_stats.py is that computation for the string block, and
tests/features/test_features_native_equals_spec.py holds the native code to it and to digests of
reference rows.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from . import _features as _native
from .containers import formats
from .facts import STATUS_OK, STREAM_STATUSES, GlobalRef, StreamFacts

# the layout's names callers reach as `features.NAME`
from .feature_layout import (
    _ANOM,
    _ANOM_SLOT,
    _CALL,
    _CALL_OP,
    _CALL_SLOT,
    _CANOM,
    _CANOM_OTHER,
    _CANOM_SLOT_OF_CODE,
    _CAT,
    _CAT_SLOT,
    _CLASS_SLOT,
    _CONT,
    _CONTAINER_NAMES,
    _CSTAT,
    _CSTAT_SLOT,
    _DEPTH,
    _ENC_SLOT,
    _EXT,
    _FMT,
    _FMT_SLOT,
    _GLOB,
    _GROUP_OF,
    _HASH,
    _KIND,
    _KIND_SLOT,
    _NESTED,
    _OP,
    _OPF,
    _PAT,
    _PROTO,
    _PROTO_SLOT,
    _SHAPE,
    _STAT,
    _STATUS_SLOT,
    _STR,
    _STRUCT,
    _STRUCT_NAMES,
    _UNK_STDLIB,
    _WRAP,
    _WRAP_SLOT,
    ARROW_SCHEMA,
    ARROW_SCHEMA_WITH_PATH,
    CATEGORICAL,
    CATEGORIES,
    CONTAINER_ANOMALIES,
    EXTENSION_CLASSES,
    EXTENSION_GROUPS,
    FEATURE_NAMES,
    FEATURE_SCHEMA_VERSION,
    FORMATS,
    HASH_BUCKETS,
    N_FEATURES,
    OPCODE_GROUPS,
    PADDING_SHIFTED,
    RULE_CLASSES,
    STDLIB_MODULES,
    STREAM_KINDS,
    STRING_PATTERNS,
    WRAPPERS,
)
from .findings import Finding, Severity
from .opcodes import CALL_OPCODES
from .rules import RuleSet, default_ruleset
from .rules.unknown_calls import KNOWN_INERT, knowledge_of
from .shape_features import SHAPE_NAMES, shape_block

if TYPE_CHECKING:
    from .containers.base import Container, PickleStream
    from .rules.unknown_calls import Knowledge

# The row's computation, and the layout's names its callers read as `features.NAME`.
__all__ = [
    "ARROW_SCHEMA",
    "ARROW_SCHEMA_WITH_PATH",
    "CALL_OPCODES",
    "CATEGORICAL",
    "CATEGORIES",
    "CONTAINER_ANOMALIES",
    "FEATURE_NAMES",
    "FEATURE_SCHEMA_VERSION",
    "FORMATS",
    "HASH_BUCKETS",
    "N_FEATURES",
    "OPCODE_GROUPS",
    "PADDING_SHIFTED",
    "STREAM_KINDS",
    "STREAM_STATUSES",
    "STRING_PATTERNS",
    "WRAPPERS",
    "batch_to_matrix",
    "empty_row",
    "extract",
    "to_batch",
    "to_matrix",
]

_FINITE_MAX = 3.0e38  # NaN -> 0 and +-inf -> +-_FINITE_MAX in the float32 row
_HASH_CACHE: dict[str, int] = {}
_HASH_CACHE_LIMIT = 200_000  # hostile corpora must not grow it without bound


def _bucket(token: str) -> int:
    b = _HASH_CACHE.get(token)
    if b is None:
        # crc32 is stable across processes and Python versions (hash() is salted).
        b = zlib.crc32(token.encode("utf-8", "surrogatepass")) % HASH_BUCKETS
        if len(_HASH_CACHE) < _HASH_CACHE_LIMIT:
            _HASH_CACHE[token] = b
    return b


def _walk(top: Iterable[StreamFacts]) -> list[tuple[StreamFacts, int]]:
    """Every stream and nested pickle with its nesting depth (0 = a container stream)."""
    streams = list(top)
    if not any(f.nested for f in streams):  # the usual case, without the stack
        return [(f, 0) for f in streams]
    out: list[tuple[StreamFacts, int]] = []
    stack = [(f, 0) for f in reversed(streams)]
    while stack:
        facts, depth = stack.pop()
        out.append((facts, depth))
        stack.extend((n.facts, depth + 1) for n in reversed(facts.nested))
    return out


def extract(
    container: Container | None,
    streams: Sequence[tuple[PickleStream, StreamFacts]],
    ruleset: RuleSet | None = None,
    *,
    knowledge: Knowledge | None = None,
    judged: Collection[str] = (),
) -> np.ndarray:
    """One file's feature row: float32, shape (N_FEATURES,), order FEATURE_NAMES, no NaN/inf.

    `knowledge`: an ecosystem index for the know_* block (rules.unknown_calls.Knowledge);
    None counts every unlisted name as unknown. `judged`: listed names whose every use the
    rules judged at its call site to run nothing (`judged_at_call_sites` of the file's rule
    findings); they count as safe, not dangerous."""
    rules = ruleset or default_ruleset()
    # A list, not an array, while the blocks fill it: a numpy element or slice write costs
    # 0.2-2 us, a list write ~30 ns. Values are Python ints and float64s, so converting once at
    # the end gives the same float32 row as float64 numpy arithmetic would.
    row: list[float] = [0.0] * N_FEATURES
    top = [facts for _, facts in streams]
    walked = _walk(top)

    _opcode_block(row, walked)
    _global_and_call_block(row, walked, rules, knowledge, judged)
    _string_block(row, walked)
    _structure_block(row, top, walked)
    _container_block(row, container, [s for s, _ in streams])
    out: np.ndarray = _native.float32_row(row, _FINITE_MAX)
    return out


def _opcode_block(row: list[float], walked: list[tuple[StreamFacts, int]]) -> None:
    if not walked:
        return
    _native.opcode_groups(
        [facts.opcode_counts for facts, _ in walked], _GROUP_OF, row, _OP, _OPF, len(OPCODE_GROUPS)
    )


def _global_and_call_block(
    row: list[float],
    walked: list[tuple[StreamFacts, int]],
    rules: RuleSet,
    knowledge: Knowledge | None,
    judged: Collection[str],
) -> None:
    if not any(facts.globals or facts.calls for facts, _ in walked):  # the block is zeros
        row[_CALL + 8] = row[_CALL + 9] = -1.0  # call_first_pos, call_last_pos: no call
        return
    # Counts live in Python ints and lists until the end: a numpy element update costs ~5x more.
    distinct: dict[str, str] = {}  # qualname -> rule class
    # names of the unknown rule class with a reviewed entry (code construction): listed, so
    # not for the shape and unk_stdlib blocks (the rules' unknown_calls skips them too)
    reviewed: set[str] = set()
    index_inert: set[str] = set()  # unlisted names the index read as inert
    modules: set[str] = set()
    # dotted, through_allowlisted, module depth max (of distinct globals)
    tally = [0, 0, 0]
    categories = [0] * (len(CATEGORIES) + 3)  # + dangerous_other, unknown_other, uncounted
    hashes = [0] * HASH_BUCKETS
    name_depths: list[int] = []

    def first_sight(g: GlobalRef, qual: str, is_ext: bool) -> str:
        """Classify and count a global the first time its qualname shows up in the file."""
        if g.resolved and not is_ext:
            c = rules.classify(g.module, g.name)
            if c.denied_by is not None and qual not in judged:
                # a wildcard that yielded to the index, restored by the rules above low (the
                # pickle constructs the class: rules.indexed.CONSTRUCTING)
                c = c.denied_by
            cls = c.verdict_class
            if cls == "dangerous" and qual in judged:
                # the rules saw every use of it run nothing the pickle chose (a getattr of an
                # allowlisted method, a setter building serialized code, a name only
                # referenced): the classifier learns that behaviour, not the name
                cls = "safe"
                categories[-1] += 1  # the uncounted slot
            else:
                categories[_category_slot(c.category, cls)] += 1
            tally[0] += c.dotted
            tally[1] += c.through_allowlisted
            if cls == "unknown" and c.entry_id:
                reviewed.add(qual)
            elif cls == "unknown" and knowledge_of(knowledge, g.module, g.name) == KNOWN_INERT:
                index_inert.add(qual)
        else:
            cls = "unknown"  # operands not literal: the loader still imports something
        distinct[qual] = cls
        modules.add(g.module)
        name_depths.append(g.name.count(".") + 1)
        tally[2] = max(tally[2], g.module.count(".") + 1)
        hashes[_bucket(g.module)] += 1
        hashes[_bucket(qual)] += 1
        return cls

    # total, unresolved, via_memo, ext (filled by _native.global_counts)
    global_totals = [0] * 4
    slot_cache: dict[str, dict[str, int]] = {}  # module -> name -> class slot (native's cache)
    calls_total = 0
    # discarded, on_call_result, resolved, to_safe/unknown/dangerous, before_failure,
    # dangerous_before_failure (filled by _native.call_counts)
    call_totals = [0] * 8
    call_ops = [0] * len(CALL_OPCODES)
    first_pos, last_pos = 2.0, -1.0
    for facts, _ in walked:
        # the loops over globals and calls are hot for tensor-heavy files: native code
        classes = _native.global_counts(
            facts.globals, distinct, _CLASS_SLOT, first_sight, global_totals, slot_cache
        )
        calls = facts.calls
        if not calls:
            continue
        failed_at = (
            facts.error_offset if facts.status != STATUS_OK and facts.error_offset >= 0 else -1
        )
        _native.call_counts(calls, classes, failed_at, _CALL_SLOT, call_ops, call_totals)
        calls_total += len(calls)
        length = max(facts.length, 1)
        first_pos = min(first_pos, calls[0].offset / length)  # calls come in stream order
        last_pos = max(last_pos, calls[-1].offset / length)
    total, unresolved, via_memo, ext = global_totals
    dotted, through_allowlisted, module_depth = tally
    row[_CALL_OP : _CALL_OP + len(CALL_OPCODES)] = call_ops
    classes_seen = list(distinct.values())
    counts = [classes_seen.count(k) for k in RULE_CLASSES]
    unknown_frac = counts[1] / len(distinct) if distinct else 0.0
    row[_GLOB : _GLOB + 12] = (
        total, len(distinct), *counts, unknown_frac, unresolved, via_memo, ext, dotted,
        through_allowlisted, len(modules),
    )  # fmt: skip
    row[_CAT : _CAT + len(CATEGORIES) + 2] = categories[:-1]
    row[_HASH : _HASH + HASH_BUCKETS] = hashes
    positions = (first_pos, last_pos) if calls_total else (-1.0, -1.0)
    discarded, on_call, resolved, *by_class, before_fail, dangerous_before_fail = call_totals
    row[_CALL : _CALL + 12] = (
        calls_total, resolved, calls_total - resolved, discarded, on_call, *by_class,
        *positions, before_fail, dangerous_before_fail,
    )  # fmt: skip
    _unknown_stdlib_block(row, walked, distinct, reviewed | index_inert)
    if counts[1]:  # some unlisted global: the shapes of its calls
        unlisted = (
            {q: c for q, c in distinct.items() if q not in reviewed} if reviewed else distinct
        )
        shapes = shape_block([facts for facts, _ in walked], unlisted, knowledge)
        row[_SHAPE : _SHAPE + len(SHAPE_NAMES)] = shapes
    if name_depths:
        row[_DEPTH : _DEPTH + 3] = (
            max(name_depths), sum(name_depths) / len(name_depths), module_depth,
        )  # fmt: skip


def _unknown_stdlib_block(
    row: list[float],
    walked: list[tuple[StreamFacts, int]],
    distinct: dict[str, str],
    skipped: set[str],
) -> None:
    # unlisted standard-library callables, less reviewed ones and those the index read as
    # inert (`skipped`: code construction, random.Random's state restore): the gadgets a
    # denylist misses are the rest
    stdlib = {
        q
        for q, cls in distinct.items()
        if cls == "unknown" and q.split(".", 1)[0] in STDLIB_MODULES and q not in skipped
    }
    if not stdlib:
        return  # the common case: no per-call loop
    calls = 0
    for facts, _ in walked:
        names = [g.qualname for g in facts.globals]
        for c in facts.calls:
            calls += 0 <= c.callable_index < len(names) and names[c.callable_index] in stdlib
    row[_UNK_STDLIB] = len(stdlib)
    row[_UNK_STDLIB + 1] = calls


def judged_at_call_sites(findings: Iterable[Finding]) -> frozenset[str]:
    """Subjects of rule findings that are all below suspicious (suppressions aside: user
    configuration must not shift the model's inputs): names the rules judged at each call site
    to run nothing the pickle chose. `extract(judged=...)` counts the listed ones as safe."""
    worst: dict[str, Severity] = {}
    for f in findings:
        if f.subject and f.severity > worst.get(f.subject, Severity.INFO - 1):
            worst[f.subject] = f.severity
    return frozenset(s for s, sev in worst.items() if sev <= Severity.LOW)


def _category_slot(category: str, cls: str) -> int:
    """Index into the cat_* block; uncounted categories land on a slot past it (never read)."""
    slot = _CAT_SLOT.get(category)
    if slot is not None:
        return slot
    if cls == "dangerous":
        return len(CATEGORIES)
    if cls == "unknown" and category:
        return len(CATEGORIES) + 1
    return len(CATEGORIES) + 2


def _string_block(row: list[float], walked: list[tuple[StreamFacts, int]]) -> None:
    strings: list[str] = []
    n_total = n_long = 0
    for facts, _ in walked:
        strings.extend(facts.strings)
        n_total += facts.n_strings
        n_long += facts.long_strings
    row[_STR] = n_total
    row[_STR + 1] = len(strings)
    row[_STR + 2] = n_long
    if not strings:
        return
    len_sum, len_max, nonprintable, n_entropy, entropy_sum, entropy_max, n_high, patterns = (
        _native.string_stats(strings, np.log2)
    )
    row[_STR + 3] = len_sum / len(strings)
    row[_STR + 4] = len_max
    row[_STR + 8] = nonprintable
    if n_entropy:
        row[_STR + 5] = entropy_sum / n_entropy
        row[_STR + 6] = entropy_max
        row[_STR + 7] = n_high
    row[_PAT : _PAT + len(STRING_PATTERNS)] = patterns


def _structure_block(
    row: list[float], top: list[StreamFacts], walked: list[tuple[StreamFacts, int]]
) -> None:
    if not top:  # nothing parsed (not a pickle container): only the "absent" markers
        row[_STRUCT + 5] = -1.0  # struct_first_error_pos
        row[_STRUCT + 7] = -1  # struct_proto_max
        return
    nested_depth = 0
    for facts, depth in walked:
        nested_depth = max(nested_depth, depth)
        for a in facts.anomalies:
            slot = _ANOM_SLOT.get(a.code)
            if slot is not None:
                row[_ANOM + slot] += 1
        for n in facts.nested:
            row[_NESTED] += 1
            slot = _ENC_SLOT.get(n.encoding)
            if slot is not None:
                row[_NESTED + 2 + slot] += 1
    row[_NESTED + 1] = nested_depth

    protos: set[int] = set()
    pickles = pickles_max = opcodes = incomplete = budget = 0
    puts = gets = depth_max = junk = payload = length = 0
    first_error = 2.0
    for facts in top:
        row[_STAT + _STATUS_SLOT.get(facts.status, 1)] += 1
        pickles += facts.n_pickles
        pickles_max = max(pickles_max, facts.n_pickles)
        opcodes += facts.n_opcodes
        if facts.status != STATUS_OK:
            incomplete += 1
            if facts.error_offset >= 0 and facts.length:
                first_error = min(first_error, facts.error_offset / facts.length)
        budget += bool(facts.budget)
        for p in facts.protocols:
            row[_PROTO + _PROTO_SLOT.get(p if p <= 5 else 5, 0)] += 1
            protos.add(p)
        puts += facts.memo_puts
        gets += facts.memo_gets
        depth_max = max(depth_max, facts.max_stack_depth)
        junk += facts.junk_bytes
        payload += facts.payload_bytes
        length += facts.length
    per_byte = 1.0 / length if length else 0.0
    row[_STRUCT : _STRUCT + len(_STRUCT_NAMES)] = (
        len(top), pickles, pickles_max, opcodes, incomplete,
        first_error if first_error <= 1.0 else -1.0, budget, max(protos) if protos else -1,
        len(protos), puts, gets, gets / puts if puts else float(gets), depth_max, junk,
        junk * per_byte, math.log1p(payload), math.log1p(length), payload * per_byte,
        1024.0 * opcodes * per_byte,
    )  # fmt: skip


def _container_block(
    row: list[float], container: Container | None, streams: list[PickleStream]
) -> None:
    for s in streams:
        row[_KIND + _KIND_SLOT.get(s.kind, len(STREAM_KINDS) - 1)] += 1
    if container is None:
        row[_FMT + _FMT_SLOT[formats.RAW_PICKLE]] = 1
        row[_CSTAT] = 1
        row[_EXT + EXTENSION_CLASSES.index("none")] = 1
        return
    row[_FMT + _FMT_SLOT.get(container.format, _FMT_SLOT[formats.OTHER])] = 1
    row[_CSTAT + _CSTAT_SLOT.get(container.status, _CSTAT_SLOT["error"])] = 1
    for w in container.wrappers:
        slot = _WRAP_SLOT.get(w)
        if slot is not None:
            row[_WRAP + slot] = 1
    for a in container.anomalies:
        row[_CANOM + _CANOM_SLOT_OF_CODE.get(a.code, _CANOM_OTHER)] += 1
    ext = container.extension.lower().lstrip(".")
    group = EXTENSION_GROUPS.get(ext, "other") if ext else "none"
    row[_EXT + EXTENSION_CLASSES.index(group)] = 1
    row[_CONT : _CONT + len(_CONTAINER_NAMES)] = (
        container.members_total,
        len(container.wrappers),
        bool(container.budget),
        math.log1p(container.bytes_read),
    )


def empty_row() -> np.ndarray:
    """The row of a file with nothing to read (errors); all zeros, a valid model input."""
    return np.zeros(N_FEATURES, dtype=np.float32)


def to_matrix(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Stack rows into an (n, N_FEATURES) float32 matrix in column-major order."""
    if not rows:
        return np.zeros((0, N_FEATURES), dtype=np.float32, order="F")
    matrix = np.asfortranarray(np.vstack(rows), dtype=np.float32)
    if matrix.shape[1] != N_FEATURES:
        raise ValueError(f"feature rows have {matrix.shape[1]} columns, expected {N_FEATURES}")
    return matrix


def to_batch(
    rows: Sequence[np.ndarray] | np.ndarray, paths: Sequence[str] | None = None
) -> pa.RecordBatch:
    """Rows (or an (n, N_FEATURES) matrix) -> RecordBatch with one float32 column per feature,
    preceded by a `path` string column when `paths` is given (ARROW_SCHEMA_WITH_PATH).

    Built column-wise over ONE Fortran-ordered buffer: each column is a zero-copy slice of it.
    Costs ~0.5 ms whatever the row count, so score many files per batch (or use to_matrix and
    Model.score_matrix when no batch is needed).
    """
    matrix = rows if isinstance(rows, np.ndarray) and rows.ndim == 2 else to_matrix(list(rows))
    matrix = np.asfortranarray(matrix, dtype=np.float32)
    n = matrix.shape[0]
    buffer = pa.py_buffer(matrix.reshape(-1, order="F"))  # the memory of `matrix`, kept alive
    width = 4 * n
    columns: list[pa.Array] = [
        pa.Array.from_buffers(pa.float32(), n, [None, buffer.slice(j * width, width)])
        for j in range(N_FEATURES)
    ]
    if paths is None:
        return pa.RecordBatch.from_arrays(columns, schema=ARROW_SCHEMA)
    if len(paths) != n:
        raise ValueError(f"{len(paths)} paths for {n} feature rows")
    # sinks builds string columns from buffers: pa.array would import pandas (~0.25 s) here.
    # Imported here, not at the top, so importing features does not pull in pyarrow.parquet.
    from .results import arrow_array

    path_column = arrow_array(list(paths), pa.string())
    return pa.RecordBatch.from_arrays([path_column, *columns], schema=ARROW_SCHEMA_WITH_PATH)


def batch_to_matrix(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """RecordBatch with (at least) the FEATURE_NAMES columns -> (n, N_FEATURES) float32 matrix."""
    names = batch.schema.names
    start = len(names) - N_FEATURES
    if start >= 0 and tuple(names[start:]) == FEATURE_NAMES:
        columns = batch.columns[start:]  # the layout to_batch writes: no lookups by name
    else:
        present = set(names)
        missing = [n for n in FEATURE_NAMES if n not in present]
        if missing:
            raise ValueError(f"batch lacks feature columns: {', '.join(missing[:5])}…")
        columns = [batch.column(name) for name in FEATURE_NAMES]
    out = np.empty((N_FEATURES, batch.num_rows), dtype=np.float32)  # filled row by row: fast
    for j, column in enumerate(columns):
        out[j] = column.to_numpy()
    return out.T
