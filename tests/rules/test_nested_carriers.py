"""Nested pickles in object state (docs/threats.md J1, H1): whatever carries the inner pickle.

A torch-datapipe-style outer pickle restores `_DataPipeSerializationWrapper` and BUILDs it with a
state that holds an inner `os.system('echo fastscan-test')` pickle: its `__setstate__` calls
`pickle.loads` on that state. The inner pickle rides as BINBYTES, an escaped protocol-0 STRING, a
`_codecs.encode(text, "latin1")` string, or headerless bytes, in a raw pickle, a torch zip, a
joblib dump and an npy object array. Everything is built opcode by opcode and never unpickled.
"""

from __future__ import annotations

import io
import pickle
import random
import zipfile
from collections.abc import Callable

import numpy as np
import pytest

import fastscan
from fastscan.tokenizer import tokenize
from fastscan.train.opwriter import Call, G, Ops
from fastscan.train.payload_kit import inner_pickle
from tests.containers_helpers import payload_pickle, splice_after_array, zip_bytes

WRAPPER = G("torch.utils.data.datapipes.datapipe", "_DataPipeSerializationWrapper")


def _state_binbytes(ops: Ops) -> None:
    ops.blob(payload_pickle(2), kind=pickle.BINBYTES)


def _state_escaped_string(ops: Ops) -> None:
    # how a protocol-0/1 pickler writes a str: repr, escapes and all (newlines as \n)
    ops.op(pickle.STRING, repr(payload_pickle(0))[1:].encode() + b"\n")


def _state_codecs_latin1(ops: Ops) -> None:
    inner = payload_pickle(4).decode("latin-1")  # \x80 and \x8c become two-byte UTF-8
    ops.call(Call(G("_codecs", "encode"), (lambda o: o.text(inner, pickle.BINUNICODE), "latin1")))


def _state_protocol0_codecs(ops: Ops) -> None:
    # how protocol 0 writes bytes: _codecs.encode over a raw-unicode-escape UNICODE line
    inner = payload_pickle(2).decode("latin-1")
    ops.call(Call(G("_codecs", "encode"), (lambda o: o.text(inner, pickle.UNICODE), "latin1")))


def _state_headerless(ops: Ops) -> None:
    ops.blob(payload_pickle(4)[2:], kind=pickle.SHORT_BINBYTES)  # no PROTO: STACK_GLOBAL first


STATES: dict[str, tuple[Callable[[Ops], None], str]] = {
    "binbytes": (_state_binbytes, ""),
    "escaped_string": (_state_escaped_string, "escaped_string"),
    "codecs_latin1": (_state_codecs_latin1, "latin1_text"),
    "protocol0_codecs": (_state_protocol0_codecs, "raw_unicode_text"),
    "no_proto_header": (_state_headerless, "bytes"),
}


def wrapper_body(state: Callable[[Ops], None]) -> bytes:
    """Opcodes that push wrapper.__new__(wrapper) BUILT with `state` (no PROTO, no STOP)."""
    ops = Ops(2, memo=False)
    ops.glob(WRAPPER.module, WRAPPER.name, stack=False).op(pickle.EMPTY_TUPLE).op(pickle.NEWOBJ)
    state(ops)
    ops.op(pickle.BUILD)
    return bytes(ops.body)


def raw_pickle(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def torch_zip(body: bytes) -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.arange(6, dtype=torch.float32)}, buf)
    zf = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    members = [
        (n, raw_pickle(body) if n.endswith("/data.pkl") else zf.read(n)) for n in zf.namelist()
    ]
    return zip_bytes(members)


def joblib_dump(body: bytes) -> bytes:
    pytest.importorskip("joblib")
    return splice_after_array(body)


def npy_object(body: bytes) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([None], dtype=object), allow_pickle=True)
    data = buf.getvalue()
    start = 10 + int.from_bytes(data[8:10], "little")  # magic, version 1.0, header length
    return data[:start] + raw_pickle(body)


CONTAINERS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "raw": (raw_pickle, "x.pkl"),
    "torch_zip": (torch_zip, "x.pt"),
    "joblib": (joblib_dump, "x.joblib"),
    "npy_object": (npy_object, "x.npy"),
}


@pytest.mark.parametrize("state", sorted(STATES))
def test_the_tokenizer_reads_the_inner_pickle(state: str) -> None:
    build, carrier = STATES[state]
    facts = tokenize(raw_pickle(wrapper_body(build)))
    assert facts.globals[0].qualname == f"{WRAPPER.module}.{WRAPPER.name}"
    [nested] = facts.nested
    assert nested.carrier == carrier
    assert [g.qualname for g in nested.facts.globals] == ["os.system"]
    assert [c.opcode for c in nested.facts.calls] == ["REDUCE"]


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("state", sorted(STATES))
def test_inner_payload_makes_the_file_malicious(state: str, container: str) -> None:
    wrap, name = CONTAINERS[container]
    result = fastscan.scan_bytes(wrap(wrapper_body(STATES[state][0])), name)
    assert result.verdict == "malicious", result.reasons
    inner = [f for f in result.findings if f.rule_id == "FS102" and "nested pickle" in f.message]
    assert inner and all("os.system" in f.message for f in inner), result.reasons


# Strings a benign pickle may hold that start like opcodes, span lines or hold latin-1 bytes.
PICKLEISH = [
    "cuda\ncpu\n",  # GLOBAL-shaped lines, but no STOP and no call
    "c\nfoo\nbar",
    "(lp0\nI1\naI2\na.",  # a protocol-0 list: a pickle that imports nothing
    "S'abc'\nS'def'\n",
    "conv1.weight",
    "layers.0.self_attn.q_proj.weight",
    "\x80\x04K\x01.",  # a latin-1 pickle of 1: runs nothing (as bytes it is a real pickle)
    "caf\xe9 na\xefve r\xe9sum\xe9\nsecond line\n",
    "intro\nnumpy\nfloat32\n",  # INST without a MARK: the loader raises before importing
    "V\u00e9t\u00e9\nline two\n",
    "g1\ng2\n",
]


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_pickleish_benign_strings_are_not_nested_pickles(protocol: int) -> None:
    blobs = [s.encode("latin-1") for s in PICKLEISH if not s.startswith("\x80")]
    data = pickle.dumps({"names": PICKLEISH, "blobs": blobs}, protocol=protocol)
    facts = tokenize(data)
    assert facts.nested == ()
    assert fastscan.scan_bytes(data, "benign.pkl").verdict == "clean"


def test_escaped_string_in_py2_style_state_is_read() -> None:
    # Python 2 writes a str state with STRING; the inner protocol-2 pickle's \x80 is escaped
    body = b"S" + repr(payload_pickle(2))[1:].encode() + b"\n"
    facts = tokenize(b"(dp0\nS'blob'\np1\n" + body + b"s.")
    [nested] = facts.nested
    assert nested.carrier == "escaped_string"
    assert [g.qualname for g in nested.facts.globals] == ["os.system"]


CARRY: dict[str, Callable[[bytes], bytes]] = {
    "SHORT_BINBYTES": lambda b: b"C" + bytes([len(b)]) + b if len(b) < 256 else b"B" + _u4(b) + b,
    "BINBYTES": lambda b: b"B" + _u4(b) + b,
    "BYTEARRAY8": lambda b: b"\x96" + len(b).to_bytes(8, "little") + b,
    "BINSTRING": lambda b: b"T" + _u4(b) + b,
    "STRING": lambda b: b"S" + repr(b)[1:].encode() + b"\n",
    "BINUNICODE": lambda b: b"X" + _u4(b.decode("latin-1").encode()) + b.decode("latin-1").encode(),
    "UNICODE": lambda b: b"V" + _raw_unicode(b) + b"\n",
}


def _u4(b: bytes) -> bytes:
    return len(b).to_bytes(4, "little")


def _raw_unicode(b: bytes) -> bytes:
    text = b.decode("latin-1").replace("\\", "\\u005c").replace("\n", "\\u000a")
    return text.encode("raw-unicode-escape")


@pytest.mark.parametrize("carry", sorted(CARRY))
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("strip_proto", [False, True])
def test_random_inner_pickles_are_found_in_every_carrier(
    carry: str, seed: int, strip_proto: bool
) -> None:
    inner, globals_ = inner_pickle(random.Random(f"{carry}{seed}"), "nested")
    if strip_proto:
        inner = inner[2:]  # the loader does not need the PROTO header
    data = b"\x80\x02}(S'k'\n" + CARRY[carry](inner) + b"u."
    found = [g.qualname for n in tokenize(data).nested for g in n.facts.globals]
    assert found == globals_, (carry, inner)


def test_candidates_past_the_nested_budget_are_reported() -> None:
    # 64 benign nested pickles first, the payload after them: unread, so never a silent pass
    decoy = b"\x80\x02cbuiltins\nlist\n)R."
    blobs = b"".join(CARRY["BINBYTES"](decoy) for _ in range(64))
    data = b"\x80\x02(" + blobs + CARRY["BINBYTES"](payload_pickle(2)) + b"l."
    facts = tokenize(data)
    assert len(facts.nested) == 64
    assert any(a.code == "nested_budget" for a in facts.anomalies)
    assert fastscan.scan_bytes(data, "flood.pkl").verdict != "clean"
