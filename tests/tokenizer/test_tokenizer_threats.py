"""docs/threats.md sections C, D and E on raw pickles: what the tokenizer must resolve.

Each case is named after its row id and assembled opcode by opcode with a harmless payload.
Nothing here is ever unpickled.
"""

from __future__ import annotations

import struct

import pytest

from fastscan.tokenizer import tokenize

CMD = b"echo fastscan-test"


def su(text: str) -> bytes:  # SHORT_BINUNICODE
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def call_stack_global(module: str, name: str, arg: bytes = CMD, proto: int = 4) -> bytes:
    return (
        bytes([0x80, proto])
        + su(module)
        + su(name)
        + b"\x93"
        + b"C"
        + bytes([len(arg)])
        + arg
        + b"\x85R."
    )


def global0(module: str, name: str, nl: bytes = b"\n") -> bytes:
    return b"c" + module.encode() + nl + name.encode() + nl


OS_CALL = call_stack_global("os", "system")
BENIGN = b"\x80\x04}\x94(\x8c\x01a\x94K\x01u."

CASES: dict[str, tuple[bytes, list[str], set[str]]] = {
    # id: (bytes, expected qualnames in order, anomaly codes that must be present)
    "C1_broken_after_payload": (OS_CALL[:-1] + b"\xff\xfe\xfd broken", ["os.system"], set()),
    "C2_trailing_junk": (OS_CALL + b"\x00junk after stop", ["os.system"], {"trailing_junk"}),
    "C3_concatenated": (BENIGN + OS_CALL, ["os.system"], set()),
    "C4_junk_between": (BENIGN + b"\xff" * 5000 + OS_CALL, ["os.system"], {"junk_between"}),
    "C5_frame_straddle": (
        # the frame ends right where BINBYTES' payload (a hidden call) begins
        b"\x80\x05\x95"
        + struct.pack("<Q", 5)
        + b"B"
        + struct.pack("<I", len(OS_CALL[2:]))
        + OS_CALL[2:]
        + b".",
        ["os.system"],
        {"frame_violation"},
    ),
    "C7_protocol0_crlf_builtin": (
        global0("__builtin__", "eval", b"\r\n") + b"(S'print(1)'\r\ntR.",
        ["builtins.eval"],
        set(),
    ),
    "C8_inst": (b"(S'echo fastscan'\nios\nsystem\n.", ["os.system"], set()),
    "C9_obj": (b"\x80\x02(" + global0("posix", "system") + b"U\x04echoo.", ["posix.system"], set()),
    "C9_newobj": (
        b"\x80\x02" + global0("subprocess", "Popen") + b"U\x04echo\x85\x81.",
        ["subprocess.Popen"],
        set(),
    ),
    "C9_newobj_ex": (
        b"\x80\x04" + su("subprocess") + su("Popen") + b"\x93" + su("ls") + b"\x85}\x92.",
        ["subprocess.Popen"],
        set(),
    ),
    "C10_result_popped": (OS_CALL[:-1] + b"0N.", ["os.system"], set()),
    "C11_ext_code": (b"\x80\x02\x82\x07U\x04echo\x85R.", ["?.ext:7"], {"ext_code"}),
    "C12_binpersid": (b"\x80\x02U\x07storage\x85Q.", [], set()),
    "C13_non_utf8_global": (
        b"c\xff\xfeos\nsystem\n.",
        ["\ufffd\ufffdos.system"],
        {"non_utf8_name"},
    ),
    "C14_duplicate_proto": (b"\x80\x04\x80\x02" + OS_CALL[2:], ["os.system"], {"duplicate_proto"}),
    "C14_misplaced_proto": (b"N0\x80\x04" + OS_CALL[2:], ["os.system"], {"misplaced_proto"}),
    "C16_binbytes_bz": (
        b"\x80\x04CZBZh9" + b"\x00" * 86 + b"0" + OS_CALL[2:],
        ["os.system"],
        set(),
    ),
    "D1_memoized_operands": (
        b"\x80\x04"
        + su("nope")
        + b"\x94"
        + su("os")
        + b"\x94"
        + su("system")
        + b"\x94"
        + su("pad")
        + su("pad")
        + b"00h\x01h\x02\x93"
        + b"C\x04echo\x85R.",
        ["os.system"],
        set(),
    ),
    "D2_put_records_value": (
        b"\x80\x02"
        + global0("builtins", "print")
        + b"q\x00"
        + b"U\x02osq\x01U\x06systemq\x02"
        + b"0h\x01h\x02\x93U\x04echo\x85R.",
        ["builtins.print", "os.system"],
        set(),
    ),
    "D3_missing_memo_key": (b"\x80\x04h\x09" + b"0" + OS_CALL[2:], ["os.system"], {"bad_memo_get"}),
    "D4_memo_type_confusion": (
        b"\x80\x04K\x05\x94" + su("system") + b"h\x00\x93.",
        ["system.?"],
        {"memo_type_confusion", "stack_global_non_string"},
    ),
    "D5_string_operands": (b"\x80\x04S'os'\nU\x06system\x93U\x04echo\x85R.", ["os.system"], set()),
    "D6_computed_operands": (
        b"\x80\x04"
        + su("builtins")
        + su("str")
        + b"\x93"
        + su("os")
        + b"\x85R"
        + su("system")
        + b"\x93.",
        ["builtins.str", "?.system"],
        {"stack_global_non_string"},
    ),
    "D7_build_on_module": (
        b"\x80\x04"
        + su("torch")
        + su("_utils")
        + b"\x93}"
        + su("_rebuild_tensor")
        + su("builtins")
        + b"sb.",
        ["torch._utils"],
        {"build_on_global"},
    ),
    "D8_attribute_smuggling": (
        b"\x80\x02"
        + global0("numpy", "prod")
        + b"}U\x01aU\x02ossb0"
        + global0("numpy", "prod.a")
        + b".",
        ["numpy.prod", "numpy.prod.a"],
        {"build_on_global"},
    ),
    "D9_setitem_registry": (
        b"\x80\x02"
        + global0("pydantic", "_dynamic_imports")
        + b"U\x05Popen(U\x08pydanticU\x03subtss0"
        + global0("pydantic", "Popen")
        + b".",
        ["pydantic._dynamic_imports", "pydantic.Popen"],
        {"setitem_on_global"},
    ),
    "E1_dotted_name": (
        call_stack_global("torch", "serialization.os.system"),
        ["torch.serialization.os.system"],
        set(),
    ),
    "E2_import_alias": (call_stack_global("random", "_os.system"), ["random._os.system"], set()),
    "E3_submodule": (
        call_stack_global("asyncio.unix_events", "_UnixSubprocessTransport._start"),
        ["asyncio.unix_events._UnixSubprocessTransport._start"],
        set(),
    ),
    "E4_c_level_alias": (
        global0("_io", "FileIO") + b"(S'/tmp/fastscan-test'\nS'w'\ntR.",
        ["_io.FileIO"],
        set(),
    ),
    "E5_universal_resolver": (
        call_stack_global("pkgutil", "resolve_name", b"os:system"),
        ["pkgutil.resolve_name"],
        set(),
    ),
    "E6_getattr_chain": (
        b"\x80\x04"
        + su("builtins")
        + su("getattr")
        + b"\x93"
        + su("builtins")
        + su("__import__")
        + b"\x93"
        + su("os")
        + b"\x85R"
        + su("system")
        + b"\x86R"
        + b"C\x04echo\x85R.",
        ["builtins.getattr", "builtins.__import__"],
        set(),
    ),
    "E7_functools_partial": (
        b"\x80\x04"
        + su("functools")
        + su("partial")
        + b"\x93"
        + su("os")
        + su("system")
        + b"\x93"
        + b"C\x04echo\x86R.",
        ["functools.partial", "os.system"],
        set(),
    ),
    "E8_scanner_module": (
        call_stack_global("fickling", "hook.deactivate_safe_ml_environment"),
        ["fickling.hook.deactivate_safe_ml_environment"],
        set(),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_threat_row_resolves_expected_globals(case: str) -> None:
    data, expected, anomalies = CASES[case]
    facts = tokenize(data)
    assert [g.qualname for f in facts.walk() for g in f.globals] == expected
    seen = {a.code for a in facts.anomalies}
    assert anomalies <= seen, seen


def test_c1_keeps_the_call_before_the_break() -> None:
    facts = tokenize(CASES["C1_broken_after_payload"][0])
    assert facts.status == "bad_opcode"
    assert (
        facts.calls[0].opcode == "REDUCE"
        and facts.globals[facts.calls[0].callable_index].qualname == "os.system"
    )


def test_c3_c4_count_pickles_and_junk() -> None:
    assert tokenize(CASES["C3_concatenated"][0]).n_pickles == 2
    facts = tokenize(CASES["C4_junk_between"][0])
    assert facts.n_pickles == 2 and facts.junk_bytes == 5000


def test_c9_obj_and_inst_are_calls_of_their_global() -> None:
    for case, opcode in (("C9_obj", "OBJ"), ("C8_inst", "INST"), ("C9_newobj_ex", "NEWOBJ_EX")):
        facts = tokenize(CASES[case][0])
        call = next(c for c in facts.calls if c.opcode == opcode)
        assert facts.globals[call.callable_index].module in ("os", "posix", "subprocess")


def test_c10_discarded_call_is_marked() -> None:
    facts = tokenize(CASES["C10_result_popped"][0])
    assert facts.calls[0].discarded


def test_d1_operands_came_through_the_memo() -> None:
    facts = tokenize(CASES["D1_memoized_operands"][0])
    assert facts.globals[0].via_memo and facts.globals[0].resolved


def test_d6_unresolved_operand_is_reported_not_dropped() -> None:
    facts = tokenize(CASES["D6_computed_operands"][0])
    assert facts.globals[-1].resolved is False


def test_e6_call_of_a_call_result_is_marked() -> None:
    facts = tokenize(CASES["E6_getattr_chain"][0])
    assert facts.calls[-1].callable_is_call


def test_h1_nested_pickle_in_bytes_is_tokenized() -> None:
    inner = OS_CALL
    outer = (
        b"\x80\x04"
        + su("pickle")
        + su("loads")
        + b"\x93C"
        + bytes([len(inner)])
        + inner
        + b"\x85R."
    )
    facts = tokenize(outer)
    assert [g.qualname for g in facts.globals] == ["pickle.loads"]
    assert [g.qualname for n in facts.nested for g in n.facts.globals] == ["os.system"]


def test_h2_base64_and_hex_inner_pickles_are_decoded() -> None:
    import base64

    for text, enc in ((base64.b64encode(OS_CALL).decode(), "base64"), (OS_CALL.hex(), "hex")):
        outer = b"\x80\x04" + su("base64") + su("b64decode") + b"\x93" + su(text) + b"\x85R."
        facts = tokenize(outer)
        assert facts.nested and facts.nested[0].encoding == enc
        assert facts.nested[0].facts.globals[0].qualname == "os.system"
