"""Partials of unlisted functions judged by what the load does with them (rules/kept.py),
nested loaders handed an archive judged by its scanned content (nested_loaders.open_archives),
and `literals.loadable` on binary state that parses as an extension-code import (issue #15).

Benign shapes: a partial of a function nobody listed, kept as data (in a dict, in an object's
state), is FS102 low, and a nested `_load_from_bytes` beside it is judged by its bytes again.
Twins that stay malicious or unsettleable: the partial called, handed to a call, held by a
class the index knows calls what it holds, handed a sink; the function bound to command text
(FS112); a nested loader of malicious bytes. Fixtures are written by `pickle` from stand-in
modules whose functions raise if called, or by hand; nothing scanned is loaded.
"""

from __future__ import annotations

import functools
import os
import pickle
import struct
import types
from collections.abc import Iterator

import pytest

from fastscan.findings import Severity
from fastscan.rules import default_ruleset
from fastscan.rules.literals import loadable
from fastscan.scan import Scanner
from fastscan.verdict import settleable
from tests.rules.hand_pickles import g, pkl, s, t
from tests.rules.stand_ins import never, stand_in_module

SCANNER = Scanner(model=None)
INDEX = default_ruleset().index
needs_index = pytest.mark.skipif(INDEX is None, reason="no shipped index in this checkout")
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
MODULE = "thirdparty_kept"  # nobody lists or indexes it


class Net:  # an unlisted class restored with its state, as skorch's NeuralNet is
    def __init__(self, **state: object) -> None:
        self.__dict__.update(state)


@pytest.fixture(scope="module", autouse=True)
def mod() -> Iterator[types.ModuleType]:
    def optimizer_setter(*_args: object, **_kwargs: object) -> None:
        never()

    def run(*_args: object, **_kwargs: object) -> None:  # J6: runs what it is given
        never()

    with stand_in_module(MODULE, optimizer_setter, run, Net) as module:
        yield module


def scan(data: bytes) -> tuple[str, dict[str, list[Severity]], list[str]]:
    """Verdict, severities per rule, and the findings as text (+ "settleable" when the
    classifier may settle the file)."""
    result = SCANNER.scan_bytes(data, "x.pkl")
    found: dict[str, list[Severity]] = {}
    for f in result.findings:
        found.setdefault(f.rule_id, []).append(f.severity)
    notes = [f"{f.rule_id} {f.severity.name} {f.subject}: {f.message}" for f in result.findings]
    if settleable(result.findings, "complete"):
        notes.append("settleable")
    return result.verdict, found, notes


def partial_fs102(notes: list[str]) -> str:
    """The severity name of the partial's own FS102 (the worst, when it is called twice)."""
    sevs = [n.split()[1] for n in notes if n.startswith("FS102 ") and " functools.partial:" in n]
    assert sevs, notes
    return max(sevs, key=lambda name: Severity[name])


# -- kept, never called: low ------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_partial_of_an_unlisted_function_kept_in_a_dict_is_low(
    mod: types.ModuleType, protocol: int
) -> None:
    # skorch: {"optimizer__*": partial(optimizer_setter, optimizer_attr="optimizer_")}
    obj = {"setters": functools.partial(mod.optimizer_setter, optimizer_attr="optimizer_")}
    verdict, found, notes = scan(pickle.dumps(obj, protocol=protocol))
    assert found["FS102"] == [Severity.LOW], notes
    assert "never called at load" in next(n for n in notes if n.startswith("FS102"))
    assert "FS112" not in found, notes  # identifiers are no command line
    assert verdict == "suspicious" and "settleable" in notes  # FS103: the classifier's call


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_partial_kept_in_an_unlisted_objects_state_is_low(
    mod: types.ModuleType, protocol: int
) -> None:
    net = mod.Net(callbacks=[("setter", functools.partial(mod.optimizer_setter))], lr=0.1)
    verdict, found, notes = scan(pickle.dumps(net, protocol=protocol))
    assert found["FS102"] == [Severity.LOW], notes
    assert verdict == "suspicious" and "settleable" in notes


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_nested_tensor_loader_beside_a_kept_partial_is_judged_by_its_bytes(
    mod: types.ModuleType, protocol: int
) -> None:
    torch = pytest.importorskip("torch")
    # pickle.dumps of a tensor writes torch.storage._load_from_bytes(<legacy torch.save bytes>)
    net = mod.Net(weight=torch.zeros(3), setter=functools.partial(mod.optimizer_setter))
    verdict, found, notes = scan(pickle.dumps(net, protocol=protocol))
    assert max(found["FS102"]) == Severity.LOW, notes
    assert verdict == "suspicious" and "settleable" in notes


# -- twins that keep their grading --------------------------------------------------------------


PARTIAL = g("functools", "partial")
FN = g(MODULE, "optimizer_setter")
KEPT = PARTIAL + t(FN) + b"R"  # partial(fn), its result on the stack


@pytest.mark.parametrize(
    "body",
    [
        KEPT + b")R",  # called at once
        KEPT + b"q\x01}" + s("cb") + b"h\x01s0h\x01)R",  # kept in a dict, then called via memo
        g(MODULE, "run") + b"(" + s("x") + KEPT + b"tR",  # a later argument of an unlisted call
        g(MODULE, "run") + b"(" + KEPT + b"tR",  # the first argument of a call
        g("builtins", "sorted") + b"(]" + KEPT + b"atR",  # in a list a dispatcher iterates
        # held by an object that is then called: its __call__ may call what it holds
        g(MODULE, "Net") + b")\x81q\x01}" + s("cb") + KEPT + b"sbh\x01)R",
        KEPT + b"Q",  # a persistent id: persistent_load(pid) gets it
        b"h\x05" + KEPT,  # a memo entry the walk never saw: anything may be handed anywhere
    ],
    ids=[
        "called",
        "called-via-memo",
        "argument",
        "first-argument",
        "dispatcher",
        "held-then-called",
        "persid",
        "unseen-memo",
    ],
)
def test_a_partial_the_load_may_call_stays_malicious(body: bytes) -> None:
    verdict, _found, notes = scan(pkl(body))
    assert partial_fs102(notes) == "MALICIOUS", notes
    assert verdict == "malicious"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_partial_of_a_listed_sink_kept_stays_malicious(protocol: int) -> None:
    # E7: whatever happens to it (the sink's own import is malicious too)
    obj = {"cb": functools.partial(os.system, "echo fastscan-kept")}
    verdict, found, notes = scan(pickle.dumps(obj, protocol=protocol))
    assert Severity.MALICIOUS in found["FS102"], notes
    assert verdict == "malicious"


def test_a_kept_partial_handed_a_sink_stays_malicious() -> None:
    # partial(unlisted, os.system): the sink is what the unlisted function may call
    for body in (
        b"}" + s("cb") + PARTIAL + t(FN, g("os", "system")) + b"Rs",
        b"}" + s("cb") + KEPT + t(FN, t(g("posix", "system")), b"}N") + b"bs",  # via its state
    ):
        verdict, _found, notes = scan(pkl(body))
        assert partial_fs102(notes) == "MALICIOUS", notes
        assert verdict == "malicious"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unlisted_function_bound_to_command_text_is_fs112(
    mod: types.ModuleType, protocol: int
) -> None:
    # partial(run, "echo pwned") kept: the partial is low, the function bound to a command is not
    for bound in (
        functools.partial(mod.run, "echo fastscan-kept > /tmp/fastscan-kept"),
        functools.partial(mod.run, cmd="echo fastscan-kept"),
        functools.partial(mod.run, ["sh", "-c", "echo fastscan-kept"]),
    ):
        verdict, found, notes = scan(pickle.dumps({"cb": bound}, protocol=protocol))
        assert "FS112" in found, notes
        assert verdict in ("suspicious", "malicious") and "settleable" not in notes


def test_command_text_in_the_partials_own_arguments_stays_fs112() -> None:
    _verdict, found, notes = scan(pkl(b"}" + s("cb") + PARTIAL + t(FN, s("echo hi")) + b"Rs"))
    assert "FS112" in found and "settleable" not in notes, notes
    # partial.__new__(partial, fn, cmd="echo hi") by NEWOBJ_EX: a keyword, kept
    kwargs = b"}(" + s("cmd") + s("echo hi > /tmp/fastscan-kept") + b"u"
    body = b"}" + s("cb") + PARTIAL + t(FN) + kwargs + b"\x92s"
    _verdict, found, notes = scan(b"\x80\x04" + body + b".")
    assert partial_fs102(notes) == "LOW" and "FS112" in found, notes
    assert "settleable" not in notes


@needs_index
def test_a_partial_in_the_state_of_a_class_the_index_knows_calls_its_attributes_stays() -> None:
    # fsspec's BlockCache.__setstate__ reaches a call of its `fetcher` (callback dispatch)
    cache = g("fsspec.caching", "BlockCache")
    body = cache + b")\x81}" + s("fetcher") + KEPT + b"sb"
    verdict, _found, notes = scan(pkl(body))
    assert partial_fs102(notes) == "MALICIOUS", notes
    assert verdict == "malicious"


INNER_EVIL = b"\x80\x02cposix\nsystem\nX\x07\x00\x00\x00echo hiq\x85R."


def test_a_nested_loader_of_malicious_bytes_stays_malicious_beside_a_kept_partial() -> None:
    loader = g("torch.storage", "_load_from_bytes")
    blob = b"B" + struct.pack("<I", len(INNER_EVIL)) + INNER_EVIL
    body = b"}(" + s("cb") + KEPT + s("w") + loader + blob + b"\x85Ru"
    verdict, found, notes = scan(pkl(body))
    assert verdict == "malicious", notes
    assert Severity.MALICIOUS in found["FS102"]


# -- loadable: binary state that happens to parse as an EXT import ------------------------------


MSGPACK = b'\x84\xa7strings\xda\x00\x10["a","b c","\'s"]\xa4data\xc4\x04\x00\x01\x02\x03'


def test_msgpack_that_parses_as_an_extension_code_is_not_loadable() -> None:
    assert MSGPACK[0] == pickle.EXT4[0]
    assert not loadable(MSGPACK)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x82\x01)R.",  # EXT1 code 1, well formed: a registered extension would be called
        b"\x80\x02\x82\x01)R",  # opens with PROTO: a pickle, truncated
        b"cos\nsystem\n(S'echo hi'\ntR",  # a resolvable import runs before the missing STOP
        b"\x80\x02cposix\nsystem\nq\x00.",
    ],
)
def test_real_pickles_stay_loadable(raw: bytes) -> None:
    assert loadable(raw)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_an_unlisted_function_handed_msgpack_state_is_restoration(
    mod: types.ModuleType, protocol: int
) -> None:
    from tests.rules.stand_ins import Reduce

    obj = {"vectors": Reduce((mod.optimizer_setter, (MSGPACK + b"\x00",)))}
    verdict, found, notes = scan(pickle.dumps(obj, protocol=protocol))
    assert "FS112" not in found and "settleable" in notes, notes
    evil = {"vectors": Reduce((mod.optimizer_setter, (INNER_EVIL,)))}
    verdict, found, notes = scan(pickle.dumps(evil, protocol=protocol))
    assert "FS112" in found or verdict == "malicious", notes


# -- a nested loader handed an archive: opened as a file and judged by its content --------------


def _zip(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _loader_of(raw: bytes, extra: bytes = b"") -> bytes:
    blob = b"B" + struct.pack("<I", len(raw)) + raw
    return pkl(extra + g("torch.storage", "_load_from_bytes") + blob + b"\x85R")


def test_a_nested_loader_of_a_clean_torch_zip_is_low() -> None:
    torch = pytest.importorskip("torch")
    import io

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buf)  # the zip format torch.save writes by default
    verdict, found, notes = scan(_loader_of(buf.getvalue()))
    assert found["FS102"] == [Severity.LOW], notes
    assert any("1 archive operand(s) opened, scanned clean" in n for n in notes), notes
    assert verdict == "clean"


@pytest.mark.parametrize(
    "raw",
    [
        _zip({"archive/data.pkl": INNER_EVIL, "archive/version": b"3\n"}),  # runs a command
        _zip({"archive/data.pkl": b"\x80\x02cmylab.x\nrun\n" + b"X\x02\x00\x00\x00hi\x85R."})[
            :40
        ],  # cut inside its first member: nothing scannable
        b"\x1f\x8b\x08\x00" + b"\x00" * 12,  # a broken gzip stream
    ],
    ids=["malicious-content", "truncated", "broken-gzip"],
)
def test_a_nested_loader_of_a_malicious_or_unscannable_archive_stays_malicious(raw: bytes) -> None:
    verdict, _found, notes = scan(_loader_of(raw))
    loader = [n for n in notes if n.startswith("FS102 ") and "_load_from_bytes" in n]
    assert loader and loader[0].split()[1] == "MALICIOUS", notes
    assert verdict == "malicious"


def test_an_archives_findings_are_reported_in_the_file() -> None:
    raw = _zip({"archive/data.pkl": INNER_EVIL, "archive/version": b"3\n"})
    _verdict, _found, notes = scan(_loader_of(raw))
    assert any("posix.system" in n and "in the archive a nested loader opens" in n for n in notes)


def test_archives_past_the_files_budget_are_not_opened() -> None:
    from fastscan.scan import MAX_LOADER_ARCHIVES

    raw = _zip({"archive/data.pkl": b"\x80\x02}q\x00.", "archive/version": b"3\n"})
    blob = b"B" + struct.pack("<I", len(raw)) + raw
    call = g("torch.storage", "_load_from_bytes") + blob + b"\x85R"

    def loaders(n: int) -> bytes:
        return pkl(b"(" + call * n + b"l")

    _verdict, found, notes = scan(loaders(MAX_LOADER_ARCHIVES))
    assert found["FS102"] == [Severity.LOW], notes
    verdict, found, notes = scan(loaders(MAX_LOADER_ARCHIVES + 1))  # one more: not judged
    assert Severity.MALICIOUS in found["FS102"] and verdict == "malicious", notes
