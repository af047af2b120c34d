"""Protocol-0 text operands: the tokenizer resolves exactly what CPython's unpickler resolves.

Differential: CPython's own `pickle.loads` (the C `_pickle`) runs on harmless pickles that use
only the operand under test (a memo key over a plain string, a number, a string; no globals), and
the tokenizer's resolution of the same operand must give the same outcome, value or failure.
Where `_pickle` and pickle.py differ, `_pickle` decides (the known differences are pinned below).
"""

from __future__ import annotations

import pickle
import sys

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import fastscan
from fastscan.facts import StreamFacts
from fastscan.tokenizer import tokenize

_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that exercise int()'s grammar: whitespace it skips and whitespace it does not (\x1c),
# signs, underscores, leading zeros, non-ASCII digits, high bytes, an embedded NUL, letters.
_NUMBER_PIECES = [
    b"0", b"1", b"2", b"7", b"9", b" ", b"\t", b"\r", b"\x0b", b"\x0c", b"\x1c", b"+", b"-", b"_",
    "\u0661".encode(), b"\x80", b"\xff", b"\x00", b"x", b"o", b"b", b"a", b"L", b"e", b"E", b".",
    b"inf", b"nan", b"0x", b"0o", b"0b",
]  # fmt: skip


def _texts(pieces: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(pieces), max_size=10).map(b"".join)


_DECIMALS = st.integers(-(10**30), 10**30).map(lambda i: str(i).encode())
_HUGE = st.sampled_from(
    [b"1" * 4300, b"1" * 4301, b"0" * 4300 + b"1", str(2**63).encode(), str(2**63 - 1).encode()]
)
NUMBER_TEXT = st.one_of(_texts(_NUMBER_PIECES), _DECIMALS, _HUGE)


def _c_loads(data: bytes, encoding: str = "ASCII") -> tuple[bool, object]:
    try:
        return True, pickle.loads(data, encoding=encoding)  # harmless: no global opcode in `data`
    except Exception as exc:  # any loader error is "the loader raises"
        return False, type(exc)


def _rejected(facts: StreamFacts) -> bool:
    return any(a.code == "bad_text_operand" for a in facts.anomalies)


# -- PUT / GET keys ------------------------------------------------------------------------------


def _memo_key_value(text: bytes) -> int | None:
    try:
        return int(text.split(b"\0")[0])
    except ValueError:
        return None


def _memo_outcome_tokenizer(put: bytes, get: bytes) -> bool:
    """Whether the tokenizer follows a string through PUT `put` / GET `get` into STACK_GLOBAL."""
    facts = tokenize(b"VM\np" + put + b"\n0g" + get + b"\nVN\n\x93.")
    g = facts.globals
    return len(g) == 1 and g[0].resolved and (g[0].module, g[0].name) == ("M", "N")


@_SETTINGS
@given(put=NUMBER_TEXT, get=NUMBER_TEXT, same=st.booleans())
@example(put=b" 1", get=b"1", same=False)
@example(put=b"\t1", get=b"+1", same=False)
@example(put=b"1_0", get=b"10", same=False)
@example(put=b"1\x00z", get=b"1", same=False)  # _pickle stops at the NUL; pickle.py raises
@example(put=b"\x1c1", get=b"1", same=False)  # not Py_ISSPACE: both raise
@example(put="\u0661".encode(), get=b"1", same=False)
@example(put=b"0" * 4301 + b"1", get=b"1", same=False)
def test_memo_keys_resolve_like_the_c_unpickler(put: bytes, get: bytes, same: bool) -> None:
    if same:
        get = put
    for key in (put, get):
        number = _memo_key_value(key)
        # the C memo is a list sized 2 * key: a large key would make the loader allocate it
        assume(number is None or abs(number) < 10**6 or abs(number) >= 2**63)
    ok, value = _c_loads(b"Vhello\np" + put + b"\n0g" + get + b"\n.")
    assert ok == (value == "hello")
    assert _memo_outcome_tokenizer(put, get) == ok


def test_memo_key_attack_is_malicious_end_to_end() -> None:
    # os and system memoised under keys only int() reads ('\t2', ' 1'), fetched as '+1', '0_2'
    data = b"\x80\x04Vos\np 1\n0Vsystem\np\t2\n0g+1\ng0_2\n\x93" + b"Vecho fastscan-test\n\x85R."
    facts = tokenize(data)
    assert [g.qualname for g in facts.globals] == ["os.system"]
    assert not [a for a in facts.anomalies if a.code in ("bad_memo_key", "bad_memo_get")]
    result = fastscan.scan_bytes(data, "memo_keys.pkl")
    assert result.verdict == "malicious"
    assert "FS102" in result.rule_ids


# -- INT / LONG / FLOAT ---------------------------------------------------------------------------


@_SETTINGS
@given(text=NUMBER_TEXT, op=st.sampled_from([b"I", b"L", b"F"]))
@example(text=b"010", op=b"I")  # _pickle: strtol base 0 -> 8; pickle.py raises
@example(text=b"1\x00x", op=b"I")  # _pickle: strtol stops at the NUL
@example(text=b"1\r", op=b"F")  # _pickle raises; pickle.py's float() strips the \r
@example(text=b"1_000.5", op=b"F")
@example(text=b"1e999", op=b"F")  # OverflowError
@example(text=b"00", op=b"I")
@example(text=b"12L", op=b"L")
@example(text=b"0x_1f", op=b"L")
@example(text=b"1" * 4301, op=b"L")
def test_numbers_fail_where_the_c_unpickler_fails(text: bytes, op: bytes) -> None:
    data = op + text + b"\n."
    ok, _ = _c_loads(data)
    facts = tokenize(data)
    assert _rejected(facts) == (not ok)
    assert facts.n_pickles == 1


@pytest.mark.parametrize(
    ("data", "c_ok", "py_ok"),
    [
        (b"I010\n.", True, False),
        (b"I1\x00x\n.", True, False),
        (b"F1.5\r\n.", False, True),
        (b"Vab\np1\x00z\n0g1\n.", True, False),
    ],
)
def test_known_differences_follow_the_c_unpickler(data: bytes, c_ok: bool, py_ok: bool) -> None:
    import io

    assert _c_loads(data)[0] == c_ok
    try:
        pickle._Unpickler(io.BytesIO(data)).load()
        loaded = True
    except Exception:
        loaded = False
    assert loaded == py_ok
    facts = tokenize(data)
    bad = _rejected(facts) or any(a.code == "bad_memo_key" for a in facts.anomalies)
    assert bad == (not c_ok)


# -- STRING / UNICODE -----------------------------------------------------------------------------

_STRING_PIECES = [
    b"'", b'"', b"\\", b"\\x", b"\\x4", b"\\x41", b"\\n", b"\\'", b"\\q", b"\\0", b"\\777",
    b"a", b"4", b"\r", b" ", b"\xc3\xa9", b"\x80", b"\x00", b"\\u00e9",
]  # fmt: skip
_UNICODE_PIECES = [
    b"\\", b"\\u", b"\\U", b"\\u00e9", b"\\U0001f600", b"\\U00110000", b"00", b"41", b"x", b"a",
    b"\r", b"\xc3\xa9", b"\x80", b"\x00", b" ",
]  # fmt: skip


@_SETTINGS
@given(text=_texts(_STRING_PIECES))
@example(text=b"'os'\r")  # the loader keeps the \r, so the quotes do not match
@example(text=b"'\\x4'")
@example(text=b"'a\\'")
@example(text=b"'")
def test_string_operands_decode_like_the_c_unpickler(text: bytes) -> None:
    data = b"S" + text + b"\n."
    ok, latin1 = _c_loads(data, encoding="latin1")
    facts = tokenize(data)
    assert _rejected(facts) == (not ok)
    if ok:
        ok_utf8, utf8 = _c_loads(data, encoding="utf-8")
        assert facts.strings == ((utf8 if ok_utf8 else latin1),)


@_SETTINGS
@given(text=_texts(_UNICODE_PIECES))
@example(text=b"os\r")
@example(text=b"\\u12")
def test_unicode_operands_decode_like_the_c_unpickler(text: bytes) -> None:
    data = b"V" + text + b"\n."
    ok, value = _c_loads(data)
    facts = tokenize(data)
    assert _rejected(facts) == (not ok)
    if ok:
        assert facts.strings == (value,)


def test_a_crlf_string_feeds_no_import() -> None:
    # 'os'\r is no quoted string for the loader: it raises before STACK_GLOBAL
    facts = tokenize(b"S'os'\r\nS'system'\n\x93.")
    assert _rejected(facts)
    assert not any(g.resolved for g in facts.globals)


def test_max_str_digits_follows_the_interpreter() -> None:
    key = b"0" * 5000 + b"1"
    old = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(0)  # unlimited: int() accepts the key
        assert _memo_outcome_tokenizer(key, b"1")
    finally:
        sys.set_int_max_str_digits(old)
    assert not _memo_outcome_tokenizer(key, b"1")
