"""The per-file shortcuts of the rules string pre-filter, the entropy log cache and the result
batch builder, each held to the plain Python/pyarrow code it replaces.

- `_features.contains_folded` (rules engine pre-filter) against `engine._maybe_command_py`, its
  plain Python spec (tests/test_prefilter_whitespace.py shows that both fold characters as `re`
  does and that the pre-filter hits whenever the engine's regexes can match);
- `_features.string_stats` with its process-wide numpy.log2 cache against
  `features.string_stats_py`, bit for bit;
- `sinks.results_to_batch` (numpy buffers, no pandas import) against pyarrow.array over the
  same values;
- a generated corpus: findings and feature rows equal with every shortcut swapped for its spec.
"""

from __future__ import annotations

import functools
import math
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastscan import _features as native
from fastscan import features, sinks
from fastscan.rules import engine
from fastscan.verdict import FileResult, Finding, Severity

# -- the rules pre-filter ------------------------------------------------------------------------


def _spec(strings: list[str], needles: tuple[str, ...]) -> bool:
    return engine._maybe_command_py(strings, needles)


# Needle words in any case, cut short, glued to neighbours, blanks swapped for other whitespace;
# characters that re.IGNORECASE equates with ASCII letters (dotted and dotless I, long s, Kelvin
# sign) and ones that only look like them (fullwidth s, accented letters).
_PIECES = [
    *engine._MAYBE, "CURL ", "WgEt\t", "Nc\u00a0", "/BIN/", "__IMPORT__", "SubProcess.", "EVAL",
    "ExEc", "://", ":/", "/bin", "nc", "ncat", "ba", "sh", " ", "\n", "\t", "\x85", "\u3000",
    "\u2029", "\x00", "\u0130", "\u0130mport ", "\u0131", "\u212a", "\u017f", "\u017fh\t",
    "\uff53", "\u00e9", "\u00c9", "\U0001f600", "\ud800", "\u03a3", "x", "S",
]  # fmt: skip
_texts = st.lists(st.one_of(st.sampled_from(_PIECES), st.characters()), max_size=12).map("".join)
_string_lists = st.lists(st.one_of(_texts, st.text(max_size=20)), max_size=10)
# Any needles the native pass accepts: ASCII, folded (lowercase, blanks as " "), no NUL.
_needles = st.lists(
    st.text(st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=6).map(
        lambda w: w.translate(engine._FOLD)
    ),
    min_size=1,
    max_size=64,
).map(tuple)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(_string_lists)
def test_prefilter_equals_python_spec(strings: list[str]) -> None:
    got = native.contains_folded(strings, engine._MAYBE)
    assert got in (0, 1)
    assert bool(got) == _spec(strings, engine._MAYBE) == engine._maybe_command(strings)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_string_lists, _needles)
def test_prefilter_with_any_needles(strings: list[str], needles: tuple[str, ...]) -> None:
    assert bool(native.contains_folded(strings, needles)) == _spec(strings, needles)


@pytest.mark.parametrize(
    ("strings", "expected"),
    [
        ([], 0),
        ([""], 0),
        (["tokenizer", "vocab", "merges"], 0),
        (["CURL x"], 1),
        (["xx", "rm-rf", "yy"], 0),  # "rm " needs a blank
        (["xx", "RM -rf /", "yy"], 1),
        (["xx", "rm\t-rf", "yy"], 1),  # any whitespace is a blank
        (["nc\u00a0-e"], 1),
        (["nc\n-e"], 1),
        (["n", "c "], 0),  # never across two strings
        (["nc", " "], 0),
        (["nc"], 0),  # a needle cut by the end of its string
        (["\u00e9valuate exec"], 1),
        (["\u0130mport os"], 1),  # re.IGNORECASE: "\u0130" is an "i"
        (["\u017fubprocess."], 1),  # and the long s an "s"
        (["\uff53h -c"], 0),  # the fullwidth s is not
        (["\u212a"], 0),
    ],
)
def test_prefilter_cases(strings: list[str], expected: int) -> None:
    assert native.contains_folded(strings, engine._MAYBE) == expected
    assert _spec(strings, engine._MAYBE) == bool(expected)


def test_prefilter_rejects_what_join_rejects() -> None:
    with pytest.raises(TypeError):
        native.contains_folded(["curl ", b"bytes"], engine._MAYBE)  # str.join raises too
    with pytest.raises(TypeError):
        engine._maybe_command(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        engine._maybe_command_py(["ok", 3])  # type: ignore[list-item]
    for bad in (("",), ("Upper",), ("a\nb",), ("a\tb",), ("\u00e9",), ("a\x00",), tuple("x" * 65)):
        with pytest.raises(ValueError):
            native.contains_folded(["x"], bad)


def test_prefilter_takes_tuples_and_lists_of_strings() -> None:
    assert native.contains_folded(("a", "wget x"), engine._MAYBE) == 1
    assert native.contains_folded(iter(["a", "b"]), engine._MAYBE) == 0


# -- the entropy log cache -----------------------------------------------------------------------


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _assert_stats_equal(got: tuple[Any, ...], want: tuple[Any, ...]) -> None:
    assert got[:4] == want[:4]
    assert _bits(got[4]) == _bits(want[4]) and _bits(got[5]) == _bits(want[5])
    assert got[6:] == want[6:]


# Long strings cross the cache's reach (LOG_CACHE_TOTAL UTF-8 bytes), non-ASCII ones make the
# byte total differ from the length.
_entropy_strings = st.one_of(
    st.text(min_size=8, max_size=40),
    st.text(st.characters(max_codepoint=0x7F), min_size=400, max_size=700),
    st.text(min_size=150, max_size=300),
)


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(st.lists(_entropy_strings, min_size=7, max_size=30))
def test_cached_entropies_are_bit_identical(strings: list[str]) -> None:
    want = features.string_stats_py(strings)
    _assert_stats_equal(native.string_stats(strings, np.log2), want)  # may fill the cache
    _assert_stats_equal(native.string_stats(strings, np.log2), want)  # reads it
    # any other log2 takes the uncached path, with the same result
    _assert_stats_equal(native.string_stats(strings, functools.partial(np.log2)), want)


def test_cache_never_serves_another_log2() -> None:
    strings = [f"string number {i:04d}" for i in range(20)]
    native.string_stats(strings, np.log2)
    doubled = native.string_stats(strings, lambda a: 2.0 * np.log2(a))
    plain = native.string_stats(strings, np.log2)
    assert doubled[4] == pytest.approx(2.0 * plain[4])


def test_numpy_log2_does_not_depend_on_the_position_in_the_array() -> None:
    """What makes the cache exact: log2 of a value is the same alone or anywhere in an array
    (the SIMD loop and its tail compute alike)."""
    probs = np.array([c / t for t in range(1, 200) for c in range(1, t + 1)])
    whole = np.log2(probs)
    rng = np.random.default_rng(0)
    for size in (1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100):
        pick = rng.integers(0, len(probs), size)
        assert np.log2(probs[pick]).tobytes() == whole[pick].tobytes()
    assert np.log2(probs[1::3]).tobytes() == whole[1::3].tobytes()


# -- result batches without pyarrow.array --------------------------------------------------------


def _reference_batch(results: list[FileResult]) -> pa.RecordBatch:
    """The pyarrow.array construction results_to_batch replaced."""
    columns: dict[str, list[Any]] = {
        n: [getattr(r, n) for r in results] for n in sinks._SCALAR_FIELDS
    }
    columns["rule_ids"] = [r.rule_ids for r in results]
    columns["reasons"] = [r.reasons for r in results]
    columns["globals"] = [list(r.globals) for r in results]
    columns["findings"] = [[sinks._finding_to_dict(f) for f in r.findings] for r in results]
    arrays = [pa.array(columns[f.name], type=f.type) for f in sinks.RESULT_SCHEMA]
    return pa.RecordBatch.from_arrays(arrays, schema=sinks.RESULT_SCHEMA)


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_findings = st.builds(
    Finding,
    rule_id=st.sampled_from(["FS101", "FS103", "FS206", "FS903"]),
    severity=st.sampled_from(list(Severity)),
    message=_text,
    member=_text,
    offset=st.integers(-1, 2**63 - 1),
    subject=_text,
)
_results = st.builds(
    FileResult,
    path=_text,
    size=st.integers(-(2**63), 2**63 - 1),
    mtime=st.one_of(st.floats(), st.integers(-(2**53), 2**53)),
    etag=_text,
    format=st.sampled_from(["torch_zip", "raw_pickle", "unknown"]),
    status=st.sampled_from(["complete", "partial", "error"]),
    verdict=st.sampled_from(["clean", "suspicious", "malicious"]),
    score=st.floats(),
    anomaly_score=st.floats(),
    findings=st.lists(_findings, max_size=4),
    globals=st.lists(_text, max_size=4),
    members_scanned=st.integers(0, 10),
    error=_text,
    hf_repo=st.one_of(st.none(), _text),
    hf_revision=st.one_of(st.none(), _text),
)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(_results, max_size=6))
def test_results_to_batch_equals_pyarrow_array(results: list[FileResult]) -> None:
    got = sinks.results_to_batch(results)
    want = _reference_batch(results)
    assert got.schema == want.schema
    assert _ipc(got) == _ipc(want)  # bit for bit, NaN scores included (equals says NaN != NaN)
    for name in got.schema.names:
        assert got.column(name).null_count == want.column(name).null_count


def _ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write(batch)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize(
    "odd",
    [
        {"size": None},  # not an int: pyarrow.array decides (a null)
        {"size": np.int64(5)},
        {"mtime": 2**60},  # not exactly a float64
        {"hf_repo": 5},
        {"members_scanned": True},
        {"globals": ("a.b", "c.d")},
    ],
)
def test_unexpected_values_go_through_pyarrow(odd: dict[str, Any]) -> None:
    result = FileResult("p")
    for key, value in odd.items():
        setattr(result, key, value)
    try:
        want: pa.RecordBatch | type[BaseException] = _reference_batch([result])
    except Exception as exc:
        want = type(exc)
    if isinstance(want, pa.RecordBatch):
        assert _ipc(sinks.results_to_batch([result])) == _ipc(want)
    else:
        with pytest.raises(want):
            sinks.results_to_batch([result])


@pytest.mark.parametrize("field", ["path", "message"])
def test_unencodable_strings_raise_as_before(field: str) -> None:
    result = FileResult("p\udcff" if field == "path" else "p")
    if field == "message":
        result.findings = [Finding("FS101", Severity.LOW, "m\udcff")]
    with pytest.raises(UnicodeEncodeError):
        _reference_batch([result])
    with pytest.raises(UnicodeEncodeError):
        sinks.results_to_batch([result])


_NO_PANDAS_SNIPPETS = {
    "result batches": (
        "from fastscan import sinks\n"
        "from fastscan.verdict import FileResult, Finding, Severity\n"
        "r = FileResult('p', findings=[Finding('FS101', Severity.MALICIOUS, 'm')], globals=['a'])\n"
        "sinks.results_to_batch([r, FileResult('q', hf_repo='o/n')])\n"
        "sinks.empty_batch()\n"
    ),
    "feature batches with paths": (
        "import numpy as np\n"
        "from fastscan import features\n"
        "rows = np.zeros((2, features.N_FEATURES), dtype=np.float32)\n"
        "batch = features.to_batch(rows, paths=['a.pt', 'b/\\u00e9.bin'])\n"
        "assert batch.column(0).to_pylist() == ['a.pt', 'b/\\u00e9.bin']\n"
    ),
}


@pytest.mark.parametrize("what", sorted(_NO_PANDAS_SNIPPETS))
def test_building_batches_does_not_import_pandas(what: str) -> None:
    code = "import sys\n" + _NO_PANDAS_SNIPPETS[what] + "print('pandas' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("paths", [[], ["a.pt"], ["x/\u00e9\u4e2d.bin", "", "s3://b/k.ckpt"]])
def test_feature_batch_path_column_equals_pyarrow_array(paths: list[str]) -> None:
    rows = np.arange(len(paths) * features.N_FEATURES, dtype=np.float32)
    batch = features.to_batch(rows.reshape(len(paths), features.N_FEATURES), paths=paths)
    assert batch.schema == features.ARROW_SCHEMA_WITH_PATH
    assert batch.column(0).equals(pa.array(paths, type=pa.string()))


def test_feature_batch_unencodable_path_raises_as_before() -> None:
    rows = np.zeros((1, features.N_FEATURES), dtype=np.float32)
    with pytest.raises(UnicodeEncodeError):
        pa.array(["p\udcff"], type=pa.string())
    with pytest.raises(UnicodeEncodeError):
        features.to_batch(rows, paths=["p\udcff"])


# -- a generated corpus: same findings and feature rows as the specifications -------------------

_FAMILIES = [
    *("F:os.system", "F:builtins.eval", "F:builtins.exec", "F:subprocess.Popen", "C1", "C7"),
    *("plain_python", "sklearn_pickle", "numpy_npy_object", "custom_config"),
]


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from fastscan.train import corpus

    root = tmp_path_factory.mktemp("string_costs")
    corpus.generate(root, seed=5, families=_FAMILIES)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.jsonl")
    assert len(files) > 20
    return files


def _python_string_stats(strings: list[str], _log2: Any) -> tuple[Any, ...]:
    return features.string_stats_py(strings)


def test_corpus_findings_and_rows_equal_the_specifications(
    corpus_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastscan.scan import Scanner

    scanner = Scanner()
    analyses = [scanner.analyse(str(p), str(p)) for p in corpus_files]

    def outputs() -> list[tuple[list[Finding], bytes]]:
        out = []
        for a in analyses:
            streams = [(s.member, f) for s, f in a.streams]
            found = engine.evaluate(streams, a.container)
            out.append((found, features.extract(a.container, a.streams).tobytes()))
        return out

    fast = outputs()
    monkeypatch.setattr(engine, "_maybe_command", lambda s: _spec(list(s), engine._MAYBE))
    spec_native = SimpleNamespace(**{k: getattr(native, k) for k in dir(native)})
    spec_native.string_stats = _python_string_stats
    monkeypatch.setattr(features, "_native", spec_native)
    slow = outputs()
    assert fast == slow
    assert any(f.rule_id == engine.R.SHELL_STRING.rule_id for found, _ in fast for f in found)
    assert sum(1 for a in analyses for _s, f in a.streams if len(f.strings) > 6) > 5
    assert not math.isnan(float(np.frombuffer(fast[0][1], dtype=np.float32).sum()))
