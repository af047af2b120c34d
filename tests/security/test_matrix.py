"""docs/threats.md as data-driven tests: every row x every container it can hide in, by row id.

Cases come from `fastscan.train.matrix.ROWS` (expected outcome, containers, payload builders,
fixtures, `not_applicable` reasons) and `wrappers.wrap`. Test ids read `C7-torch_zip`, plus the
payload key when a row has several (`A1-raw-F:os.system`), or the fixture (`B6-zip_bomb`).
Rows static pickle scanning cannot address are skips whose reason is the row's own text.

One seed, one variant per (row, container, payload) keeps the whole matrix near 15 s; more seeds
run under `-m slow`. The scanner uses the shipped ONNX model when it exists (it can only raise
a verdict); set FASTSCAN_TEST_MODEL=none to judge by rules alone.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import fastscan
from fastscan.rules import DANGEROUS, classify
from fastscan.scan import Analysis, Scanner
from fastscan.train import benign, matrix, payloads, wrappers
from fastscan.verdict import FileResult

SEED = 0
HAS_TORCH = benign.torch_available()
MODEL_PATH = Path(fastscan.__file__).parent / "models" / "fastscan-v1.onnx"

# (row id, payload key) -> why the rules alone give a weaker verdict than the row expects. Each
# is a strict xfail when no model is loaded: it fails loudly the day the rules catch it.
KNOWN_GAPS: dict[tuple[str, str], str] = {
    # e.g. ("F", "F:types.CodeType"): "builds a code object but never calls it; FS106 only",
}

# Fixture rows whose `expected` is not a verdict: what each must produce instead.
#   unsupported / encrypted: the file status, with a verdict that is not malicious.
#   clean (archive abuse B6, benign quirks C15): never malicious; B6 must also name the abuse.
ABUSE_RULES = {"FS305", "FS306", "FS308"}  # path/symlink abuse, container budget (bomb)


def model_option() -> str | None:
    if os.environ.get("FASTSCAN_TEST_MODEL", "") == "none" or not MODEL_PATH.exists():
        return None
    return "default"


@functools.cache
def scanner() -> Scanner:
    return Scanner(model=model_option())


def _rng(*parts: object) -> random.Random:
    return random.Random("|".join(map(str, (SEED, *parts))))


def build_cell(row_id: str, container: str, key: str, seed: int = SEED) -> tuple[bytes, str]:
    """File bytes for one matrix cell (deterministic) and the sample's literal globals."""
    sample = payloads.PAYLOADS[key](random.Random(f"{seed}|{row_id}|{container}|{key}"))
    data, ext = wrappers.wrap(
        container, sample.data, random.Random(f"w{seed}|{row_id}|{container}|{key}")
    )
    return data, ext


def build_fixture(name: str) -> tuple[bytes, str]:
    if name in benign.SOURCES:
        return benign.SOURCES[name](_rng("fixture", name), "small")
    make, ext = wrappers.FIXTURES[name]
    return make(_rng("fixture", name)), ext


def _container_marks(container: str) -> list[pytest.MarkDecorator]:
    if wrappers.CONTAINERS[container].needs_torch:
        return [pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")]
    return []


def payload_cells() -> Iterator[tuple[matrix.Row, str, str]]:
    """(row, container, payload key) for every applicable payload cell of the matrix."""
    for row in matrix.ROWS:
        if row.not_applicable:
            continue
        for container in row.containers:
            for key in row.payloads:
                yield row, container, key


def _cell_params() -> list[object]:
    params: list[object] = []
    for row in matrix.ROWS:
        if row.not_applicable:
            reason = f"{row.id} not applicable: {row.not_applicable}"
            params.append(
                pytest.param(row, "", "", id=row.id, marks=pytest.mark.skip(reason=reason))
            )
    for row, container, key in payload_cells():
        test_id = f"{row.id}-{container}" + (f"-{key}" if len(row.payloads) > 1 else "")
        marks = _container_marks(container)
        if wrappers.CONTAINERS[container].accepts == "snippet" and key not in payloads.INJECTABLE:
            why = f"{key} is not stack-neutral, so it cannot be spliced into {container}"
            marks.append(pytest.mark.skip(reason=why))
        if (row.id, key) in KNOWN_GAPS:
            # only the rules miss it; a loaded model may or may not lift it (strict without one)
            gap = pytest.mark.xfail(strict=model_option() is None, reason=KNOWN_GAPS[row.id, key])
            marks.append(gap)
        params.append(pytest.param(row, container, key, id=test_id, marks=marks))
    return params


def dangerous_globals(analysis: Analysis) -> set[str]:
    """Globals (nested pickles included) that the rules classify as dangerous, or as dangerous
    once constructed (a network wildcard that yielded to the index: `denied_by`)."""
    out: set[str] = set()
    for _stream, facts in analysis.streams:
        for sub in facts.walk():
            for g in sub.globals:
                c = classify(g.module, g.name)
                if c.verdict_class == DANGEROUS or c.denied_by is not None:
                    out.add(g.qualname)
    return out


def _describe(result: FileResult) -> str:
    return f"verdict={result.verdict} status={result.status} reasons={result.reasons[:6]}"


@pytest.mark.parametrize(("row", "container", "key"), _cell_params())
def test_matrix_cell(row: matrix.Row, container: str, key: str) -> None:
    data, ext = build_cell(row.id, container, key)
    sample = payloads.PAYLOADS[key](random.Random(f"{SEED}|{row.id}|{container}|{key}"))
    result = scanner().scan_bytes(data, name=f"sample{ext}")
    assert result.verdict == row.expected, _describe(result)
    assert result.status in ("complete", "partial"), _describe(result)
    missing = set(row.expected_globals) - set(result.globals)
    assert not missing, f"row globals not reported: {sorted(missing)}"
    missing = set(sample.globals) - set(result.globals)
    assert not missing, f"sample globals not reported: {sorted(missing)}"


def _fixture_params() -> list[object]:
    params: list[object] = []
    for row in matrix.ROWS:
        for name in row.fixtures:
            torch_only = name in benign.TORCH_SOURCES
            marks = [
                pytest.mark.skipif(torch_only and not HAS_TORCH, reason="torch is not installed")
            ]
            params.append(pytest.param(row, name, id=f"{row.id}-{name}", marks=marks))
    return params


@pytest.mark.parametrize(("row", "fixture"), _fixture_params())
def test_matrix_fixture(row: matrix.Row, fixture: str) -> None:
    data, ext = build_fixture(fixture)
    result = scanner().scan_bytes(data, name=f"fixture{ext}")
    assert result.verdict != "malicious", _describe(result)
    if row.expected in ("unsupported", "encrypted"):
        assert result.status == row.expected, _describe(result)
    elif row.section == "B":  # archive abuse: reported without crashing, never silent
        assert result.status in ("complete", "partial"), _describe(result)
        assert ABUSE_RULES & set(result.rule_ids), _describe(result)
    else:
        assert (result.verdict, result.status) == ("clean", "complete"), _describe(result)


# -- issue #3 property: the container never changes which dangerous global is found ----------

PROPERTY_CONTAINERS = (
    "torch_zip",
    "torch_legacy",
    "joblib_after_array",
    "npy_object",
    "npz_deflated",
    "7z",
    "gzip",
    "bz2",
    "xz",
    "zip_flag_0x1",
    "zip_crc_mismatch",
    "torch_zip_renamed_member",
)
# G5 samples are MiB-sized; they are covered per container above and under -m slow here.
_QUICK_KEYS = sorted(k for k in payloads.PAYLOADS if not k.startswith("G5."))


@functools.cache
def _raw_dangerous(key: str, seed: int) -> tuple[bytes, frozenset[str]]:
    sample = payloads.PAYLOADS[key](random.Random(f"prop{seed}|{key}"))
    return sample.data, frozenset(dangerous_globals(scanner().analyse(sample.data)))


def _check_same_dangerous_globals(container: str, keys: list[str], seed: int) -> None:
    spec = wrappers.CONTAINERS[container]
    failures = []
    checked = 0
    for key in keys:
        if spec.accepts == "snippet" and key not in payloads.INJECTABLE:
            continue
        raw, expected = _raw_dangerous(key, seed)
        data, ext = wrappers.wrap(container, raw, random.Random(f"prop{seed}|{container}|{key}"))
        got = dangerous_globals(scanner().analyse(data, f"x{ext}"))
        checked += 1
        if not expected <= got:
            failures.append((key, sorted(expected - got)))
    assert checked > 20
    assert not failures, failures


@pytest.mark.parametrize(
    "container", [pytest.param(c, marks=_container_marks(c)) for c in PROPERTY_CONTAINERS]
)
def test_every_container_yields_the_raw_dangerous_globals(container: str) -> None:
    _check_same_dangerous_globals(container, _QUICK_KEYS, SEED)


def test_raw_fixtures_show_a_dangerous_global() -> None:
    """The property above is only as strong as this: nearly every raw sample names a sink."""
    empty = {k for k in _QUICK_KEYS if not _raw_dangerous(k, SEED)[1]}
    # EXT codes (C11), computed STACK_GLOBAL operands (D6: codecs.decode, operator.add and
    # str.join are no sinks; FS104 judges the lookup) and poisoned attribute lookups (D7-D9)
    # name no denied global by design; code construction is "unknown" by name, its danger is
    # calling what was built (FS107).
    code = {"F:types.CodeType", "F:types.FunctionType", "F:cloudpickle.cloudpickle._make_function"}
    assert empty <= {"C11", "D6", "D7", "D8", "D9", *code}


# -- more variants ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matrix_more_seeds(seed: int) -> None:
    failures = []
    for row, container, key in payload_cells():
        spec = wrappers.CONTAINERS[container]
        if (spec.needs_torch and not HAS_TORCH) or (row.id, key) in KNOWN_GAPS:
            continue
        if spec.accepts == "snippet" and key not in payloads.INJECTABLE:
            continue
        data, ext = build_cell(row.id, container, key, seed)
        result = scanner().scan_bytes(data, name=f"sample{ext}")
        if result.verdict != row.expected:
            failures.append((f"{row.id}-{container}-{key}", result.verdict, result.rule_ids))
    assert not failures, failures


@pytest.mark.slow
@pytest.mark.parametrize(
    "container", [pytest.param(c, marks=_container_marks(c)) for c in PROPERTY_CONTAINERS]
)
def test_property_with_large_payloads_and_other_seed(container: str) -> None:
    _check_same_dangerous_globals(container, sorted(payloads.PAYLOADS), 1)
