"""The rules engine's string pre-filter (`strings.maybe_command`, natively
`_features.contains_folded`) against its specification (tests/specs/prefilter.py), and a superset
of the engine's regexes.

`strings.string_findings` runs `_SHELL` / `_URL` only when `maybe_command` says some needle of
`_MAYBE` occurs. The native pass equals the Python spec for any needles (hypothesis and cases),
and three arguments show it can never hide a match:

- the fold (what each character counts as) equals what `re` itself does, over every code point:
  `\\s` -> " ", re.IGNORECASE variants of an ASCII character -> that character;
- every alternative of the parsed patterns always matches characters that contain a needle;
- hypothesis: strings built around the alternatives with random whitespace and case.

And end to end: payload strings with tabs or NBSP where a space used to be get FS215.
"""

from __future__ import annotations

import pickle
import re
import sys
from collections.abc import Iterator
from functools import cache
from re import _parser as sre_parse  # type: ignore[attr-defined]  # the parser `re` compiles
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastscan
from fastscan import _features as native
from fastscan.rules import strings as string_rules
from tests.specs import prefilter

_PATTERNS = (string_rules._SHELL, string_rules._URL)


def _regexes_match(strings: list[str]) -> bool:
    return any(p.search(s) for p in _PATTERNS for s in strings)


# -- the fold is what `re` sees --------------------------------------------------------------------


@cache
def _fold_by_re() -> list[int]:
    """For every code point: 32 when `\\s` matches it, else the lowercase ASCII character that
    re.IGNORECASE equates it with, else 0."""
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    out = [0] * len(every)
    for m in re.finditer(r"[\x01-\x7f]", every, re.IGNORECASE):  # one scan finds all variants
        c = m.start()
        ascii_twin = next(
            a for a in range(1, 128) if re.fullmatch(re.escape(chr(a)), chr(c), re.IGNORECASE)
        )
        out[c] = ord(chr(ascii_twin).lower())
    for m in re.finditer(r"\s", every):
        out[m.start()] = 32
    return out


def test_native_fold_is_what_re_sees_for_every_code_point() -> None:
    want = _fold_by_re()
    got = [native.folded_code_point(c) for c in range(sys.maxunicode + 1)]
    wrong = [hex(c) for c in range(len(want)) if got[c] != want[c]][:10]
    assert not wrong
    assert sum(1 for c in range(128, len(want)) if want[c] not in (0, 32)) == 4  # İ ı ſ K
    assert [c for c, _ in native.FOLDS_TO_ASCII_LETTER] == [
        c for c in range(128, len(want)) if want[c] not in (0, 32)
    ]


def test_python_fold_table_is_what_re_sees_for_every_code_point() -> None:
    want = _fold_by_re()
    folded = "".join(map(chr, range(sys.maxunicode + 1))).translate(prefilter.FOLD)
    # a character the table leaves alone stays itself: outside ASCII, it matches no needle
    got = [ord(ch) if ord(ch) < 128 else 0 for ch in folded]
    assert [hex(c) for c in range(len(want)) if got[c] != want[c]][:10] == []


# -- every alternative of the parsed patterns holds a needle ---------------------------------------


def _single_char(item: tuple[Any, Any]) -> str | None:
    """The folded character a one-character item always matches, if it is a literal or \\s."""
    op, arg = item
    if op is sre_parse.LITERAL and arg < 128:
        return chr(arg).lower() if not chr(arg).isspace() else " "
    if op is sre_parse.IN and arg == [(sre_parse.CATEGORY, sre_parse.CATEGORY_SPACE)]:
        return " "
    return None


def _covered(items: list[tuple[Any, Any]], needles: tuple[str, ...]) -> bool:
    """Whether every match of this sequence contains a needle: some run of consecutive items that
    each match one known folded character holds a needle, or some group whose every
    alternative is covered. Zero-width items (\\b, ^) do not break a run."""
    runs = [""]
    for item in items:
        op, arg = item
        char = _single_char(item)
        if char is not None:
            runs[-1] += char
            continue
        if op is sre_parse.AT:
            continue
        if op is sre_parse.MAX_REPEAT or op is sre_parse.MIN_REPEAT:
            low, _high, body = arg
            body_char = _single_char(body[0]) if len(body) == 1 else None
            if low >= 1 and body_char is not None:
                runs[-1] += body_char  # x+ matches x, then maybe more: the run ends after one
        elif _group_covered(item, needles):
            return True
        runs.append("")
    return any(word in run for run in runs for word in needles)


def _group_covered(item: tuple[Any, Any], needles: tuple[str, ...]) -> bool:
    op, arg = item
    if op is sre_parse.SUBPATTERN:
        return _covered(list(arg[-1]), needles)
    if op is sre_parse.BRANCH:
        return all(_covered(list(alt), needles) for alt in arg[1])
    return False


def _alternatives(pattern: re.Pattern[str]) -> Iterator[list[tuple[Any, Any]]]:
    parsed = list(sre_parse.parse(pattern.pattern, pattern.flags))
    if len(parsed) == 1 and parsed[0][0] is sre_parse.BRANCH:
        yield from (list(alt) for alt in parsed[0][1][1])
    else:
        yield parsed


@pytest.mark.parametrize("pattern", _PATTERNS, ids=["shell", "url"])
def test_every_alternative_of_the_regexes_holds_a_needle(pattern: re.Pattern[str]) -> None:
    assert pattern.flags & re.IGNORECASE  # the fold equates case variants: a superset anyway
    alternatives = list(_alternatives(pattern))
    assert len(alternatives) == (7 if pattern is string_rules._SHELL else 1)
    for alternative in alternatives:
        assert _covered(alternative, string_rules._MAYBE), alternative


def test_the_proof_notices_a_missing_needle() -> None:
    """The structural check fails when a needle is too long or missing."""
    without_nc = tuple(w for w in string_rules._MAYBE if w != "nc ")
    assert not all(_covered(a, without_nc) for a in _alternatives(string_rules._SHELL))
    literal_blank = tuple(
        "nc -" if w == "nc " else w for w in string_rules._MAYBE
    )  # \s+ may be more
    assert not all(_covered(a, literal_blank) for a in _alternatives(string_rules._SHELL))
    assert not _covered(next(_alternatives(string_rules._URL)), ("http://",))  # ftp:// too


# -- hypothesis: around the alternatives ---------------------------------------------------------

_SPACES = list(prefilter.WHITESPACE)  # all of `\s`: the fold tests above hold it to `re`
_CORES = [
    "/bin/sh", "/bin/bash", "/bin/zsh", "/bin/dash", "cmd /c", "cmd.exe /c", "powershell",
    "curl ", "wget ", "nc -", "ncat ", "bash -c", "bash -i", "sh -c", "rm -rf", "chmod +",
    "chmod 7", "mkfifo", "/dev/tcp/", "base64 -d", "__import__(", "__import__ (", "exec(",
    "eval (", "os.system", "subprocess.", "import os", "http://x", "https://y", "ftp://z",
]  # fmt: skip
_CASE_VARIANTS = {"i": "I\u0130\u0131", "s": "S\u017f", "k": "K\u212a"}


@st.composite
def _near_miss(draw: st.DrawFn) -> str:
    """An alternative with each blank widened to random whitespace and letters in random case
    (ASCII or the non-ASCII variants re.IGNORECASE accepts), in random surroundings."""
    out = []
    for ch in draw(st.sampled_from(_CORES)):
        if ch == " ":
            out.append("".join(draw(st.lists(st.sampled_from(_SPACES), min_size=1, max_size=3))))
        elif ch.isalpha() and draw(st.booleans()):
            out.append(draw(st.sampled_from(ch.upper() + _CASE_VARIANTS.get(ch, ""))))
        else:
            out.append(ch)
    before = draw(st.sampled_from(["", " ", "\t", ";", "(", "x", "a b", "\u3000"]))
    after = draw(st.sampled_from(["", " ", "x", " 'echo fastscan-test'", "\n", "os"]))
    return before + "".join(out) + after


_strings = st.lists(
    st.one_of(_near_miss(), st.text(max_size=20), st.sampled_from([*_SPACES, "nc", "sh", "-c"])),
    max_size=6,
)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(_strings)
def test_prefilter_says_yes_whenever_a_regex_matches(strings: list[str]) -> None:
    native_says = string_rules.maybe_command(strings)
    assert native_says == prefilter.maybe_command(strings)
    if _regexes_match(strings):
        assert native_says


def test_the_generator_reaches_the_regexes() -> None:
    """Most generated near-misses match a regex (so the property above is not vacuous)."""
    matched = 0

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(_near_miss())
    def count(text: str) -> None:
        nonlocal matched
        matched += bool(_regexes_match([text]))

    count()
    assert matched > 100


@pytest.mark.parametrize(
    "text",
    ["nc\t-e", "sh\t-c", "rm\t-rf", "import\tos", "nc\u00a0-e", "curl\u2003x", "wget\nx",
     "\u017fh -c", "\u0130mport os", "chmod\x1c+x", "base64\u3000-d", "exec\t(", "HTTP://X"],
)  # fmt: skip
def test_whitespace_and_case_variants_pass_the_prefilter(text: str) -> None:
    assert _regexes_match([text])
    assert string_rules.maybe_command(["weight", text]) and prefilter.maybe_command([text])


@pytest.mark.parametrize(
    "strings",
    [["layer_norm", "shape", "rms", "rms_norm_eps", "system_prompt", "chmod_x"],
     ["model.layers.0.self_attn.q_proj.weight", "lm_head.weight", "rm", "sh", "nc"],
     ["\u0120sh", "ush", "\u0120rm", "cm", "bash_", "import", "exe", "os.sys", "base64"]],
)  # fmt: skip
def test_tensor_names_skip_the_regex_pass(strings: list[str]) -> None:
    assert not string_rules.maybe_command(strings)
    assert not prefilter.maybe_command(strings)


# -- end to end ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    ["bash\t-c 'echo fastscan-test'", "nc\u00a0-e /bin/sh", "nc\u00a0-e fastscan-test",
     "sh\t-c 'echo fastscan-test'", "rm\t-rf /tmp/fastscan-test", "import\tos",
     "\u017fh -c 'touch /tmp/fastscan-test'"],
)  # fmt: skip
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_payload_string_with_odd_whitespace_gets_the_shell_finding(
    payload: str, protocol: int
) -> None:
    data = pickle.dumps(payload, protocol=protocol)  # written here, never loaded
    result = fastscan.scan_bytes(data)
    assert string_rules.R.SHELL_STRING.rule_id in [f.rule_id for f in result.findings]
    assert result.verdict != "clean"


# -- the rules pre-filter ------------------------------------------------------------------------


# Needle words in any case, cut short, glued to neighbours, blanks swapped for other whitespace;
# characters that re.IGNORECASE equates with ASCII letters (dotted and dotless I, long s, Kelvin
# sign) and ones that only look like them (fullwidth s, accented letters).
_PIECES = [
    *string_rules._MAYBE, "CURL ", "WgEt\t", "Nc\u00a0", "/BIN/", "__IMPORT__", "SubProcess.",
    "EVAL", "ExEc", "://", ":/", "/bin", "nc", "ncat", "ba", "sh", " ", "\n", "\t", "\x85",
    "\u3000", "\u2029", "\x00", "\u0130", "\u0130mport ", "\u0131", "\u212a", "\u017f", "\u017fh\t",
    "\uff53", "\u00e9", "\u00c9", "\U0001f600", "\ud800", "\u03a3", "x", "S",
]  # fmt: skip
_texts = st.lists(st.one_of(st.sampled_from(_PIECES), st.characters()), max_size=12).map("".join)
_string_lists = st.lists(st.one_of(_texts, st.text(max_size=20)), max_size=10)
# Any needles the native pass accepts: ASCII, folded (lowercase, blanks as " "), no NUL.
_needles = st.lists(
    st.text(st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=6).map(
        lambda w: w.translate(prefilter.FOLD)
    ),
    min_size=1,
    max_size=64,
).map(tuple)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(_string_lists)
def test_prefilter_equals_python_spec(strings: list[str]) -> None:
    got = native.contains_folded(strings, string_rules._MAYBE)
    assert got in (0, 1)
    assert bool(got) == prefilter.maybe_command(strings) == string_rules.maybe_command(strings)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_string_lists, _needles)
def test_prefilter_with_any_needles(strings: list[str], needles: tuple[str, ...]) -> None:
    native_says = bool(native.contains_folded(strings, needles))
    assert native_says == prefilter.maybe_command(strings, needles)


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
    assert native.contains_folded(strings, string_rules._MAYBE) == expected
    assert prefilter.maybe_command(strings, string_rules._MAYBE) == bool(expected)


def test_prefilter_rejects_what_join_rejects() -> None:
    with pytest.raises(TypeError):
        native.contains_folded(["curl ", b"bytes"], string_rules._MAYBE)  # str.join raises too
    with pytest.raises(TypeError):
        string_rules.maybe_command(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        prefilter.maybe_command(["ok", 3])  # type: ignore[list-item]
    for bad in (("",), ("Upper",), ("a\nb",), ("a\tb",), ("\u00e9",), ("a\x00",), tuple("x" * 65)):
        with pytest.raises(ValueError):
            native.contains_folded(["x"], bad)


def test_prefilter_takes_tuples_and_lists_of_strings() -> None:
    assert native.contains_folded(("a", "wget x"), string_rules._MAYBE) == 1
    assert native.contains_folded(iter(["a", "b"]), string_rules._MAYBE) == 0
