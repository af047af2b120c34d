"""The tokenizer's fast paths agree with its table-driven rules.

walk_one hard-codes argument sizes for hot opcodes, packs memo slots, links MARKs through the
stack and pre-filters strings natively; each test here pins one of those to the slow rule.
"""

from __future__ import annotations

import base64
import pickletools

import pytest

from fastscan import _tokenizer, opcodes
from fastscan.facts import ScanLimits
from fastscan.tokenizer import list_opcodes, tokenize

OS_CALL = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x04echo\x85R."


def _argument_for(info: opcodes.OpcodeInfo) -> bytes:
    """A well-formed argument for the opcode's layout, made of bytes that are themselves valid
    opcodes (N = NONE), so a walker that takes the wrong size sees extra or missing opcodes."""
    kind = info.arg_kind
    if kind == opcodes.ARG_NONE:
        return b""
    if kind == opcodes.ARG_FIXED:
        return b"N" * info.fixed_len
    if kind == opcodes.ARG_LINE:
        return b"'1'\n" if info.name == "STRING" else b"1\n"
    if kind == opcodes.ARG_LINE2:
        return b"a\nb\n"
    if kind == opcodes.ARG_LEN1:
        return b"\x03NNN"
    if kind in (opcodes.ARG_LEN4S, opcodes.ARG_LEN4U):
        return b"\x03\x00\x00\x00NNN"
    assert kind == opcodes.ARG_LEN8U
    return b"\x03" + b"\x00" * 7 + b"NNN"


@pytest.mark.parametrize("info", opcodes.TABLE, ids=lambda info: info.name)
def test_every_opcode_consumes_its_table_argument(info: opcodes.OpcodeInfo) -> None:
    if info.name in ("STOP", "FRAME"):
        pytest.skip("STOP ends the stream; FRAME only changes frame bookkeeping")
    data = bytes([info.code]) + _argument_for(info) + b"."
    ops, _end, status = list_opcodes(data)
    assert [op.name for op in ops] == [info.name, "STOP"] and status == "ok"
    facts = tokenize(data)
    assert facts.n_opcodes == 2, facts
    assert facts.opcode_counts[info.code] == 1 and facts.opcode_counts[ord(".")] == 1
    # cut inside the argument: the opcode is not counted and the walk reports truncation there
    body = bytes([info.code]) + _argument_for(info)
    if len(body) > 1:
        cut = tokenize(body[:-1], ScanLimits(max_resync_opcodes=0))
        assert cut.opcode_counts[info.code] == 0
        assert cut.status in ("truncated", "not_pickle")


def test_hot_layout_matches_the_opcode_table() -> None:
    by_code = {info.code: (info.arg_kind, info.fixed_len) for info in opcodes.TABLE}
    assert _tokenizer.HOT_LAYOUT
    for code, layout in _tokenizer.HOT_LAYOUT.items():
        assert by_code[code] == layout


def test_opcode_budget_counts_exactly() -> None:
    data = b"\x80\x04" + b"N0" * 50 + b"."  # 102 opcodes
    for limit in (1, 2, 50, 101):
        facts = tokenize(data, ScanLimits(max_opcodes=limit, max_resync_opcodes=0))
        assert facts.status == "budget"
        assert facts.n_opcodes == limit + 1  # the opcode that crossed the budget is counted
    assert tokenize(data, ScanLimits(max_opcodes=102)).status == "ok"


def test_memo_keys_dense_with_gaps_and_sparse() -> None:
    su = b"\x8c\x02os\x8c\x06system"
    # LONG_BINPUTs far beyond the dense range (sparse), popped, then fetched for STACK_GLOBAL
    far = b"\x80\x04\x8c\x02osr\x88\x13\x00\x00\x8c\x06systemr\x00\x00\x01\x0000"
    facts = tokenize(far + b"j\x88\x13\x00\x00j\x00\x00\x01\x00\x93.")
    assert [g.qualname for g in facts.globals] == ["os.system"] and facts.globals[0].via_memo
    # a BINPUT that skips keys leaves the gap empty: fetching a gap key is a bad GET
    gap = tokenize(b"\x80\x04" + su + b"q\x0ah\x03h\x0a\x93.")
    assert gap.anomaly_count("bad_memo_get") == 1
    assert [g.resolved for g in gap.globals] == [False]


def test_memoized_mark_still_delimits() -> None:
    # MARK, PUT it, GET it back (a second MARK on the stack), then two APPENDS pop to each mark
    data = b"\x80\x02](q\x00h\x00NNeNe."
    facts = tokenize(data)
    assert facts.status == "ok" and not facts.anomalies


@pytest.mark.parametrize("prefix", ["", " ", "\u3000", "\x1c", "\t\n", "\xa0"])
def test_base64_pickle_behind_unicode_whitespace_is_found(prefix: str) -> None:
    text = (prefix + base64.b64encode(OS_CALL).decode()).encode()
    data = b"\x80\x04X" + len(text).to_bytes(4, "little") + text + b"."
    facts = tokenize(data)
    assert [n.encoding for n in facts.nested] == ["base64"]
    assert [g.qualname for g in facts.nested[0].facts.globals] == ["os.system"]


def test_escaped_base64_in_protocol0_strings_is_found() -> None:
    encoded = base64.b64encode(OS_CALL).decode()
    quoted = b"S'\\x67" + encoded[1:].encode() + b"'\n."  # the leading 'g' as an escape
    raw = b"V\\u0020" + encoded.encode() + b"\n."  # a leading space as an escape
    for data in (quoted, raw):
        facts = tokenize(data)
        assert [n.encoding for n in facts.nested] == ["base64"], data


def test_undecodable_strings_fall_back_to_replacement() -> None:
    facts = tokenize(b"\x80\x04\x8c\x03a\xffb\x8c\x02ok.")
    assert facts.strings == ("a\ufffdb", "ok")
    bad_escape = tokenize(b"V\\uZZ\n.")
    assert bad_escape.strings == ("\\uZZ",)


def test_dense_stream_matches_genops_counts() -> None:
    import pickle

    rows = [{"id": i, "name": f"n{i}", "v": [i, i * 0.5, None, True]} for i in range(3000)]
    data = pickle.dumps(rows, protocol=4)
    facts = tokenize(data)
    expected = [0] * 256
    for op, _arg, _pos in pickletools.genops(data):
        expected[ord(op.code.encode("latin-1"))] += 1
    assert list(facts.opcode_counts) == expected
    assert facts.status == "ok" and not facts.anomalies
