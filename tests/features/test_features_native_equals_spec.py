"""The native feature helpers (fastscan._features) against their Python/regex specification.

The shipped model was trained on rows from the pure-Python/numpy implementation, so every native
shortcut must reproduce it bit for bit: pattern counts equal to re.findall over the same text,
string statistics equal to tests/specs/string_stats.py (entropies summed in the same float64
order, also when served from the process-wide numpy.log2 cache), the same float32 conversion,
digests of reference rows, and a generated corpus whose findings and feature rows stay the same
with every shortcut (string pre-filter, string statistics) swapped for its specification.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastscan import _features as native
from fastscan import feature_layout, features
from fastscan.facts import Anomaly, CallSite, GlobalRef, NestedPickle, StreamFacts
from fastscan.findings import Finding
from fastscan.opcodes import BY_NAME
from fastscan.rules import engine
from fastscan.rules import strings as string_rules
from tests.specs import prefilter
from tests.specs import string_stats as string_stats_spec

# Pieces that make the patterns match, almost match, or match at awkward places: word
# boundaries, Unicode digits/spaces/letters (re's \d, \s, \w are Unicode-aware), line breaks.
FRAGMENTS = [
    "sh ", "bash\t-c", "zsh", "curl http://x", "wget", "nc", "ncat -l", "rm -rf /", "chmod +x",
    "echo fastscan-test", "touch /tmp/fastscan-x", "true", "python3 -c", "python -m", "perl",
    "whoami", "uname -a", "powershell", "cmd.exe /c", "cmd", "; ls", "& x", "| y", "`z`", "$(id)",
    "$", "(", "https://", "http://", "ftp://", "file://", "htt", "://", "1.2.3.4", "255.0.0.1",
    "1234.5.6.7", "1.2.3.4567", "10.0.0", ".", "..", "../", "~/", "/tmp/", "/etc/", "/bin/",
    "/dev/", "=", "'", '"', "__import__", "import os", "import\t", "lambda", "lambdax", "exec(",
    "exec (", "eval\n(", "os.", "os.path", "subprocess", "__", "___", "__init__", "__a__b__",
    "A" * 32, "QUJD" * 9 + "==", "QUJD" * 9 + "===", "ab" * 16, "AbCd" * 8 + "f", "0f" * 17,
    "\n", "\t", " ", "\r", "\x0b", "\x1c", "\x85", "\xa0", "\u2003", "\u3000", "\u0660", "\u0967",
    "\uff11", "\u00b2", "\u00bd", "\u00e9", "\u00aa", "\u2167", "_", "x", "9", "\x00", "\x7f",
    "\ufffd", "\ud800", "\U0001f600", "\u00ff", "\u0100",
]  # fmt: skip
adversarial_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.characters()), max_size=40
).map("".join)
string_lists = st.lists(st.one_of(adversarial_text, st.text(max_size=30)), max_size=14)


def _regex_counts(text: str) -> tuple[int, ...]:
    return tuple(len(pattern.findall(text)) for pattern, _ in string_stats_spec.PATTERNS)


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)  # tells -0.0 from 0.0, unlike ==


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(adversarial_text)
def test_pattern_counts_equal_regex_findall(text: str) -> None:
    assert native.pattern_counts(text) == _regex_counts(text)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=200))
def test_pattern_counts_equal_regex_on_any_text(text: str) -> None:
    assert native.pattern_counts(text) == _regex_counts(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "sh -c",
        "xsh -c",
        "ncat -e",
        "python3 x",
        "python3x y",
        "cmd.exe /c",
        "cmd.exeX",
        ";\n\u2003x",
        "$(",
        "1.2.3.4",
        "1.2.3.4.5.6.7.8",
        "a1.2.3.4",
        "1.2.3.4a",
        "\u0661.\u0662.\u0663.\u0664",
        "A" * 32 + "\n" + "B" * 31,
        "A" * 32 + "=",
        "A" * 32 + "===",
        "ab" * 16 + "a",
        "ab" * 16 + "\n" + "cd" * 16,
        "__a__",
        "____",
        "_____",
        "__a__b__c",
        "/tmp/",
        "=/tmp//tmp/ /etc/",
        "import  os",
        "lambda_",
        "exec   (",
        "os.\u00e9",
        "xsubprocess",
        "http://https://file://",
    ],
)
def test_pattern_counts_edge_cases(text: str) -> None:
    assert native.pattern_counts(text) == _regex_counts(text)


def _assert_stats_equal(got: tuple[Any, ...], want: tuple[Any, ...]) -> None:
    assert got[:4] == want[:4]
    assert _bits(got[4]) == _bits(want[4]) and _bits(got[5]) == _bits(want[5])
    assert got[6:] == want[6:]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(string_lists)
def test_string_stats_equal_python_spec(strings: list[str]) -> None:
    _assert_stats_equal(
        native.string_stats(strings, np.log2), string_stats_spec.string_stats(strings)
    )


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(st.lists(st.text(min_size=8, max_size=300), min_size=7, max_size=40))
def test_entropy_numpy_path_is_bit_identical(strings: list[str]) -> None:
    """More than SMALL_ENTROPY long strings: numpy log2 and pairwise summation order."""
    _assert_stats_equal(
        native.string_stats(strings, np.log2), string_stats_spec.string_stats(strings)
    )


@pytest.mark.parametrize("n_strings", [1, 6, 7, 50])
def test_entropy_edge_values(n_strings: int) -> None:
    # one repeated byte: entropy -0.0 on the small path, 0.0 on the numpy path
    for strings in (["aaaaaaaa"] * n_strings, ["\u00e9" * 9] * n_strings, ["ab" * 5000] * 2):
        got = native.string_stats(strings, np.log2)
        _assert_stats_equal(got, string_stats_spec.string_stats(strings))
        assert math.isfinite(got[4]) and got[5] >= 0.0


def test_string_stats_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        native.string_stats(["ok", b"bytes"], np.log2)


def test_string_stats_of_nothing() -> None:
    assert native.string_stats([], np.log2) == (0, 0, 0, 0, 0.0, 0.0, 0, (0,) * 8)


def test_opcode_groups_match_a_numpy_histogram() -> None:
    rng = np.random.default_rng(3)
    streams = [tuple(int(x) for x in rng.integers(0, 1000, 256)) for _ in range(3)]
    n = len(features.OPCODE_GROUPS)
    row = [0.0] * features.N_FEATURES
    native.opcode_groups(streams, feature_layout._GROUP_OF, row, 0, n, n)
    hist = np.sum(np.array(streams, dtype=np.int64), axis=0)
    want = np.zeros(n)
    for byte, group in enumerate(feature_layout._GROUP_OF):
        if group >= 0:
            want[group] += hist[byte]
    assert row[:n] == list(want)
    assert row[n : 2 * n] == list(want / want.sum())
    assert feature_layout._GROUP_OF[ord("\xff")] == -1  # not an opcode: counted nowhere
    with pytest.raises(ValueError):
        native.opcode_groups([(0,) * 255], feature_layout._GROUP_OF, row, 0, n, n)
    with pytest.raises(ValueError):
        native.opcode_groups([], feature_layout._GROUP_OF, [0.0] * 10, 0, n, n)


def test_float32_row_matches_numpy_cast_and_fixup() -> None:
    values: list[float] = [0.0, -0.0, 1, 2**60 + 1, 1e-50, 1e39, -1e39, math.inf, -math.inf,
                           math.nan, 0.1, True, 3.4028235e38, 16777217]  # fmt: skip
    with np.errstate(over="ignore"):
        want = np.array(values, dtype=np.float64).astype(np.float32)
    np.nan_to_num(want, copy=False, nan=0.0, posinf=3.0e38, neginf=-3.0e38)
    got = native.float32_row(values, 3.0e38)
    assert got.dtype == np.float32
    assert got.tobytes() == want.tobytes()


def test_call_counts() -> None:
    calls = (
        CallSite("REDUCE", 10, 0, 0),
        CallSite("BUILD", 20, 0, 1, discarded=True),
        CallSite("NEWOBJ", 30, 0, -1, callable_is_call=True),
        CallSite("REDUCE", 40, 0, 0),
    )
    call_ops = [0] * len(features.CALL_OPCODES)
    totals = [0] * 8
    native.call_counts(calls, [2, 0], 35, feature_layout._CALL_SLOT, call_ops, totals)
    assert call_ops == [2, 0, 0, 1, 0, 1]  # REDUCE, OBJ, INST, NEWOBJ, NEWOBJ_EX, BUILD
    # discarded, on_call, resolved, safe, unknown, dangerous, before_fail, dangerous_before
    assert totals == [1, 1, 3, 1, 0, 2, 3, 1]
    native.call_counts(calls, [2, 0], -1, feature_layout._CALL_SLOT, call_ops, totals)
    assert totals == [2, 2, 6, 2, 0, 4, 3, 1]  # no failure: nothing counted "before" it
    with pytest.raises(ValueError):
        native.call_counts(calls, [7], -1, feature_layout._CALL_SLOT, call_ops, totals)


def test_global_counts_classifies_each_qualname_once() -> None:
    refs = (
        GlobalRef("posix", "system", "GLOBAL", 0, 0, True),
        GlobalRef("posix", "system", "STACK_GLOBAL", 9, 0, True, via_memo=True),
        GlobalRef("?", "?", "EXT2", 20, 0, False),
        GlobalRef("a", "b.c", "GLOBAL", 30, 0, True),
        GlobalRef("a.b", "c", "GLOBAL", 40, 0, True),  # same qualname "a.b.c" as the one above
    )
    distinct: dict[str, str] = {"already.seen": "safe"}
    seen: list[tuple[str, bool]] = []

    def first_sight(g: GlobalRef, qual: str, is_ext: bool) -> str:
        seen.append((qual, is_ext))
        distinct[qual] = {"posix.system": "dangerous", "?.?": "unknown"}.get(qual, "odd")
        return distinct[qual]

    totals = [1, 0, 0, 0]
    cache: dict[str, dict[str, int]] = {}
    slots = feature_layout._CLASS_SLOT
    classes = native.global_counts(refs, distinct, slots, first_sight, totals, cache)
    assert seen == [("posix.system", False), ("?.?", True), ("a.b.c", False)]
    assert classes == [2, 2, 1, 1, 1]  # a class outside RULE_CLASSES counts as unknown
    assert totals == [6, 1, 1, 1]  # total, unresolved, via_memo, ext
    # a second stream of the same file: known pairs come from the cache, no new first sight
    again = native.global_counts(
        refs[:2], distinct, feature_layout._CLASS_SLOT, first_sight, totals, cache
    )
    assert again == [2, 2] and len(seen) == 3 and totals == [8, 1, 2, 1]
    assert cache == {"posix": {"system": 2}, "?": {"?": 1}, "a": {"b.c": 1}, "a.b": {"c": 1}}


def test_native_constants_match_the_specification() -> None:
    spec = string_stats_spec
    assert native.ENTROPY_CONSTANTS == (spec.ENTROPY_MIN_LEN, spec.SMALL_ENTROPY, spec.HIGH_ENTROPY)
    assert tuple(p for _, p, _ in features.STRING_PATTERNS) == native.PATTERN_SOURCES


# -- whole rows: digests of rows computed by the pre-native implementation ----------------------


def _counts(**by_name: int) -> tuple[int, ...]:
    counts = [0] * 256
    for name, n in by_name.items():
        counts[BY_NAME[name].code] = n
    counts[0xFF] = 3  # a byte that is no opcode must not count
    return tuple(counts)


def _golden_cases() -> dict[str, tuple[Any, list[tuple[Any, StreamFacts]]]]:
    long_strings = tuple(f"weight.layer{i}.{'x' * i}__init__ 10.0.0.{i}" for i in range(9))
    malicious = StreamFacts(
        status="truncated", error_offset=90, length=100, n_pickles=1, n_opcodes=12,
        protocols=(2,), opcode_counts=_counts(GLOBAL=1, REDUCE=2, BINUNICODE=3, STOP=1),
        globals=(
            GlobalRef("posix", "system", "GLOBAL", 2, 0, True),
            GlobalRef("builtins", "getattr", "STACK_GLOBAL", 20, 0, True, via_memo=True),
            GlobalRef("?", "?", "EXT1", 30, 0, False),
            GlobalRef("collections", "OrderedDict", "GLOBAL", 40, 0, True),
        ),
        calls=(CallSite("REDUCE", 50, 0, 0), CallSite("BUILD", 95, 0, 3, discarded=True)),
        strings=("echo fastscan-test; touch /tmp/fastscan-x", "__import__('os')", "AAAA" * 9),
        n_strings=4, long_strings=1,
        anomalies=(Anomaly("ext_code", 30), Anomaly("stop_with_stack", 99)),
        memo_puts=3, memo_gets=7, max_stack_depth=4, junk_bytes=5, payload_bytes=20,
    )  # fmt: skip
    nested = StreamFacts(
        status="ok", length=500, n_pickles=2, n_opcodes=40, protocols=(4, 5),
        opcode_counts=_counts(PROTO=2, FRAME=2, SHORT_BINUNICODE=9, STOP=2, MEMOIZE=9),
        strings=long_strings, n_strings=9,
        nested=(NestedPickle(10, 50, "base64", malicious),),
    )  # fmt: skip
    container = SimpleNamespace(
        format="torch_zip", status="partial", wrappers=("gzip",), extension=".PT",
        anomalies=(
            SimpleNamespace(code="zip_crc_mismatch"), SimpleNamespace(code="budget_members"),
        ),
        members_total=3, budget="", bytes_read=12345,
    )  # fmt: skip
    stream = SimpleNamespace(kind="pickle")
    return {
        "empty": (None, []),
        "malicious": (None, [(stream, malicious)]),
        "nested_in_zip": (container, [(stream, nested), (SimpleNamespace(kind="?"), malicious)]),
    }


# sha256 of the float32 row bytes, from the implementation the model was trained on
GOLDEN_DIGESTS = {
    "empty": "863b1182481cd4363bb1f9b30b1737c78961bd99151cc25ceb2917e6986bd0e4",
    "malicious": "9d3884de10991121a1ed5d31416cc5f517da89f67dff3e3e7dcdac7d09544a45",
    "nested_in_zip": "d13f99f5584540bf2ee8ba7e448226f57987f4c35fb66060581b1c4faddd7552",
}


@pytest.mark.parametrize("case", sorted(GOLDEN_DIGESTS))
def test_rows_are_bit_identical_to_the_trained_implementation(case: str) -> None:
    container, streams = _golden_cases()[case]
    row = features.extract(container, streams)
    # schema 2 appended the unk_stdlib_* columns; the first 343 are schema 1, unchanged
    assert hashlib.sha256(row[:343].tobytes()).hexdigest() == GOLDEN_DIGESTS[case]


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
    want = string_stats_spec.string_stats(strings)
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
    return string_stats_spec.string_stats(strings)


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
    monkeypatch.setattr(string_rules, "maybe_command", lambda s: prefilter.maybe_command(list(s)))
    spec_native = SimpleNamespace(**{k: getattr(native, k) for k in dir(native)})
    spec_native.string_stats = _python_string_stats
    monkeypatch.setattr(features, "_native", spec_native)
    slow = outputs()
    assert fast == slow
    assert any(f.rule_id == engine.R.SHELL_STRING.rule_id for found, _ in fast for f in found)
    assert sum(1 for a in analyses for _s, f in a.streams if len(f.strings) > 6) > 5
    assert not math.isnan(float(np.frombuffer(fast[0][1], dtype=np.float32).sum()))
