"""Sink calls judged by what each call site hands them (issue #15: rules/callsites.py, handed.py).

Each benign shape has attacker twins that must stay malicious (or at least unsettleable).
Pickles are hand-written protocol-2 opcodes; nothing here is loaded or executed.
"""

from __future__ import annotations

import struct

import pytest

from fastscan.findings import Severity
from fastscan.rules import default_ruleset
from fastscan.scan import Scanner
from fastscan.verdict import settleable
from tests.rules.hand_pickles import call, g, pkl, s, t

INDEX = default_ruleset().index
needs_index = pytest.mark.skipif(INDEX is None, reason="no shipped index in this checkout")
SCANNER = Scanner(model=None)


def scan(body: bytes) -> tuple[str, dict[str, list[Severity]]]:
    result = SCANNER.scan_bytes(pkl(body), "x.pkl")
    found: dict[str, list[Severity]] = {}
    for f in result.findings:
        found.setdefault(f.rule_id, []).append(f.severity)
    return result.verdict, found


GETATTR = g("builtins", "getattr")
PARTIAL = g("functools", "partial")
UNLISTED = g("mylab.tables", "LabelTable")  # a user's class nobody indexed


# -- getattr(owner, "name") is the global owner.name ---------------------------------------


def test_getattr_classmethod_of_an_unlisted_class_is_an_unlisted_global() -> None:
    # bidict pickles as getattr(bidict, "_from_other")({...}): as if it imported that name
    body = call(call(GETATTR, UNLISTED, s("from_rows")), b"}" + s("a") + b"K\x01s")
    result = SCANNER.scan_bytes(pkl(body), "x.pkl")
    assert result.verdict == "suspicious"
    fetched = [f for f in result.findings if f.subject == "mylab.tables.LabelTable.from_rows"]
    assert [f.rule_id for f in fetched] == ["FS103"]
    assert {f.rule_id: f.severity for f in result.findings}["FS102"] == Severity.LOW
    assert settleable(result.findings, "complete")  # the classifier may settle it, as a GLOBAL


def test_getattr_result_applied_to_text_is_fs112_not_settleable() -> None:
    body = call(call(GETATTR, UNLISTED, s("apply_rows")), s("echo hi"))
    result = SCANNER.scan_bytes(pkl(body), "x.pkl")
    assert any(f.rule_id == "FS112" for f in result.findings)
    assert result.verdict == "suspicious"
    assert not settleable(result.findings, "complete")


@pytest.mark.parametrize(
    "owner, attr",
    [
        (g("os", "path"), "system"),  # a sink attribute name on any object
        (g("posix", "stat_result"), "walk"),  # any attribute of a denylisted module
        (g("subprocess", "Popen"), "communicate"),
        (g("builtins", "object"), "eval"),
        (UNLISTED, "__globals__"),  # interpreter internals
        (UNLISTED, "system"),
    ],
)
def test_getattr_of_a_sink_stays_malicious(owner: bytes, attr: str) -> None:
    verdict, found = scan(call(call(GETATTR, owner, s(attr)), s("echo pwned")))
    assert verdict == "malicious"
    assert Severity.MALICIOUS in found["FS102"]


def test_getattr_with_a_computed_name_stays_malicious() -> None:
    # the name is a call's result (str.join): which attribute it reads is not known
    name = call(g("builtins", "str.join"), s(""), b"]" + s("sys") + s("tem") + b"e")
    verdict, _found = scan(call(call(GETATTR, UNLISTED, name), s("echo hi")))
    assert verdict == "malicious"


def test_getattr_on_a_function_result_stays_malicious() -> None:
    # the object is what an unlisted function returned: its type (a module?) is unknown
    owner = call(g("mylab.util", "load_module"), s("os"))
    verdict, _ = scan(call(call(GETATTR, owner, s("listdir")), s("/tmp")))
    assert verdict == "malicious"


@needs_index
def test_getattr_method_of_an_instance_is_the_class_method() -> None:
    # matplotlib: getattr(<Figure made by NEWOBJ>, "delaxes") kept in a callback registry
    fig = g("matplotlib.figure", "Figure") + b"q\x01)\x81q\x02"
    body = fig + b"0" + GETATTR + b"h\x02" + s("delaxes") + b"\x86R"
    verdict, found = scan(body)
    assert found["FS102"] == [Severity.LOW]
    assert "FS111" in found and verdict != "malicious"


@needs_index
def test_getattr_of_an_indexed_method_that_reaches_a_sink_is_graded_like_its_global() -> None:
    """The fetched method is judged as the GLOBAL of its name: whatever grade its index reach
    earns (it depends on the pinned version's call paths), never lower, never settled."""
    owner = g("transformers.modeling_utils", "PreTrainedModel")
    verdict, _found = scan(call(call(GETATTR, owner, s("from_pretrained")), s("/tmp/x")))
    direct = g("transformers.modeling_utils", "PreTrainedModel.from_pretrained")
    direct_verdict, _ = scan(call(direct, s("/tmp/x")))
    assert verdict in ("suspicious", "malicious")
    assert verdict == direct_verdict


# -- partial and dispatchers judged by what they are handed --------------------------------


@pytest.mark.parametrize(
    "body",
    [
        call(PARTIAL, g("os", "system"), s("echo hi")),
        call(PARTIAL, g("posix", "system")) + b"" + t(g("posix", "system"), b")}N") + b"b",
        call(g("functools", "reduce"), g("os", "system"), b"]" + s("echo hi") + b"a"),
        call(g("builtins", "map"), g("mylab.util", "run"), b"]" + s("echo hi") + b"a"),
        call(g("builtins", "filter"), call(g("mylab.util", "Key")), b"](" + s("echo") + b"e"),
    ],
)
def test_dispatchers_handed_sinks_or_unknown_callables_stay_malicious(body: bytes) -> None:
    verdict, _ = scan(body)
    assert verdict == "malicious"


@pytest.mark.parametrize(
    "body",
    [
        call(g("itertools", "count"), b"K\x00"),  # matplotlib's CallbackRegistry counter
        call(g("itertools", "repeat"), s("x"), b"K\x03"),
        call(PARTIAL, g("builtins", "max"), b"K\x01"),
    ],
)
def test_reviewed_dispatchers_handed_only_data_or_inert_callables_are_low(body: bytes) -> None:
    verdict, found = scan(body)
    assert found["FS102"] == [Severity.LOW]
    assert verdict == "clean"


@needs_index
def test_partial_of_an_index_dispatcher_judged_by_its_state() -> None:
    # spaCy: partial(_get_attr_unless_lookup) whose BUILD state hands it lex_attrs.lower
    f = g("spacy.util", "_get_attr_unless_lookup")
    lower = g("spacy.lang.lex_attrs", "lower")
    state = t(f + b"q\x09", t(lower, b"}"), b"}N")
    benign = PARTIAL + f + b"q\x09\x85R" + state + b"b"
    verdict, found = scan(benign)
    assert found["FS102"] == [Severity.LOW]
    assert all(sev < Severity.SUSPICIOUS for sev in found.get("FS110", []))
    # the same state handing an unlisted function: the dispatcher may run it
    twin = PARTIAL + f + b"q\x09\x85R" + t(f, t(g("mylab.util", "run"), b"}"), b"}N") + b"b"
    verdict, found = scan(twin)
    assert verdict == "malicious"
    # ... or a sink
    twin = PARTIAL + f + b"q\x09\x85R" + t(f, t(g("posix", "system"), b"}"), b"}N") + b"b"
    assert scan(twin)[0] == "malicious"


@needs_index
def test_an_index_dispatcher_called_with_an_unknown_callable_stays_flagged() -> None:
    f = g("spacy.util", "_get_attr_unless_lookup")
    verdict, found = scan(call(f, g("mylab.util", "run"), b"N", s("echo hi")))
    assert verdict in ("suspicious", "malicious")
    assert Severity.SUSPICIOUS in found["FS110"] or Severity.MALICIOUS in found["FS110"]
    # called on data only, it runs nothing the pickle chose
    verdict, found = scan(call(f, b"N", b"N", s("text")))
    assert found["FS110"] == [Severity.LOW]


# -- nested pickles: graded by their content -----------------------------------------------

INNER_EVIL = b"\x80\x02cposix\nsystem\nX\x07\x00\x00\x00echo hiq\x85R."
INNER_OK = b"\x80\x02ccollections\nOrderedDict\n)R."


def _bytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def test_a_clean_nested_pickle_read_whole_is_a_low_note() -> None:
    verdict, found = scan(b"}" + s("blob") + _bytes(INNER_OK) + b"s")
    assert found["FS210"] == [Severity.LOW]
    assert verdict == "clean"


@pytest.mark.parametrize(
    "carrier",
    [
        _bytes(INNER_EVIL),
        # protocol <= 2 bytes: _codecs.encode(text, "latin1")
        call(g("_codecs", "encode"), s(INNER_EVIL.decode("latin-1")), s("latin1")),
    ],
)
def test_a_malicious_nested_pickle_still_makes_the_file_malicious(carrier: bytes) -> None:
    verdict, found = scan(b"}" + s("blob") + carrier + b"s")
    assert verdict == "malicious"
    assert Severity.MALICIOUS in found["FS102"]


def test_a_truncated_nested_pickle_stays_suspicious() -> None:
    verdict, found = scan(b"}" + s("blob") + _bytes(INNER_EVIL[:-8]) + b"s")
    assert Severity.SUSPICIOUS in found.get("FS210", []) or verdict == "malicious"


# -- loaders reached through a class's hooks: judged by the bytes its state can hand them ----

RECON = g("copyreg", "_reconstructor")
OBJECT = g("builtins", "object")
NET = g("skorch.classifier", "NeuralNetClassifier")  # __setstate__ -> torch.load(state bytes)


def latin1(data: bytes) -> bytes:
    """Protocol <= 2 bytes: _codecs.encode(text, "latin1")."""
    return call(g("_codecs", "encode"), s(data.decode("latin-1")), s("latin1"))


def net_with(blob: bytes, prefix: bytes = b"") -> bytes:
    return prefix + call(RECON, NET, OBJECT, b"N") + b"}" + s("blob") + blob + b"sb"


def fs110(found: dict[str, list[Severity]]) -> Severity:
    return max(found["FS110"])


@needs_index
def test_a_setstate_loader_fed_clean_nested_bytes_is_low() -> None:
    for blob in (latin1(INNER_OK), _bytes(INNER_OK)):
        verdict, found = scan(net_with(blob))
        assert fs110(found) == Severity.LOW, blob
        assert verdict != "malicious"


@needs_index
@pytest.mark.parametrize(
    "blob, prefix",
    [
        (latin1(INNER_EVIL), b""),  # the nested scan is malicious
        (_bytes(INNER_EVIL), b""),
        (b"h\x07", _bytes(INNER_EVIL) + b"q\x070"),  # memoised bytes: still read, still evil
        # computed bytes: bytes(list of ints) is no literal the tokenizer reads as a pickle
        (call(g("builtins", "bytes"), b"]" + b"(" + b"K\x80K\x02" + b"e"), b""),
        # a bytearray changed after it was written (APPENDS -> extend)
        (b"\x96" + struct.pack("<Q", 2) + b"\x80\x02(K\x63e", b""),
        # a zip archive (torch.load opens it; the scan does not here)
        (_bytes(b"PK\x03\x04" + b"\x00" * 40), b""),
        # a pickle past the nested-probe budget: imports only after 15,000 no-op opcodes
        (latin1(b"\x80\x02" + b"N0" * 15000 + INNER_EVIL[2:]), b""),
        # handed by an unreviewed function that may decode anything
        (call(g("mylab.util", "unpack"), s("gAJjcG9zaXgKc3lzdGVtCg==")), b""),
    ],
)
def test_a_setstate_loader_fed_other_bytes_stays_malicious(blob: bytes, prefix: bytes) -> None:
    verdict, found = scan(net_with(blob, prefix))
    assert verdict == "malicious"
    assert fs110(found) == Severity.MALICIOUS


@needs_index
def test_load_from_bytes_over_codecs_latin1_bytes_is_judged_by_content() -> None:
    loader = g("torch.storage", "_load_from_bytes")
    verdict, found = scan(call(loader, latin1(INNER_OK)))
    assert found["FS102"] == [Severity.LOW]
    verdict, found = scan(call(loader, latin1(INNER_EVIL)))
    assert verdict == "malicious"
    # another codec makes other bytes than the ones scanned
    rot = call(g("_codecs", "encode"), s(INNER_OK.decode("latin-1")), s("rot13"))
    verdict, found = scan(call(loader, rot))
    assert Severity.MALICIOUS in found["FS102"]


# -- sinks that run text, reached with no text -------------------------------------------


@needs_index
def test_an_exec_reach_handed_only_numbers_is_low() -> None:
    rational = g("sympy.core.numbers", "Rational")
    verdict, found = scan(call(rational, b"K\x01", b"K\x03"))
    assert fs110(found) == Severity.LOW
    assert verdict == "clean"


@needs_index
@pytest.mark.parametrize(
    "arg",
    [
        s("1/3"),  # text flows into sympify -> parse_expr
        # an object whose str() is its state's text: sympify(obj) may parse str(obj)
        call(g("pathlib", "PurePosixPath"), s("__import__('os').system('echo hi')")),
        call(g("mylab.expr", "Expr")) + b"}" + s("text") + s("x+exit()") + b"sb",
        s("__import__"),  # a dunder name is no Symbol's name
        _bytes(b"1/3"),
    ],
)
def test_an_exec_reach_handed_text_keeps_its_grade(arg: bytes) -> None:
    _verdict, found = scan(call(g("sympy.core.numbers", "Rational"), arg))
    assert fs110(found) == Severity.MALICIOUS  # within the reach bound: as before


@needs_index
def test_an_exec_reach_handed_names_and_numbers_is_low() -> None:
    # Pow(Symbol("x"), 2): run as code, a name only looks itself up (sympy's parser makes a
    # Symbol of it); text with a call, an operator or an attribute keeps its grade (above)
    symbol = call(g("sympy.core.symbol", "Symbol"), s("x_1"))
    verdict, found = scan(call(g("sympy.core.power", "Pow"), symbol, s("2.5e3")))
    assert fs110(found) == Severity.LOW
    assert verdict == "clean"


# -- a module's namespace as the globals of a function the pickle builds (dill) ------------

FUNCTION = call(
    g("types", "FunctionType"), call(g("types", "CodeType")), g("nltk.tag.hmm", "__dict__")
)


def test_a_module_namespace_handed_to_function_construction_is_construction() -> None:
    _verdict, found = scan(FUNCTION)
    assert "FS101" not in found
    assert Severity.LOW in found["FS106"]


def test_a_module_namespace_used_as_a_receiver_stays_malicious() -> None:
    poison = call(g("builtins", "dict.update"), g("nltk.tag.hmm", "__dict__"), b"}")
    verdict, _ = scan(FUNCTION + b"0" + poison)
    assert verdict == "malicious"
    verdict, _found = scan(g("nltk.tag.hmm", "__dict__"))  # no function built: a bare namespace
    assert verdict == "malicious"


@needs_index
def test_getattr_of_an_instance_attribute_set_by_its_state_is_not_the_class_method() -> None:
    # BUILD may give the object its own `delaxes` (an unlisted runner): not Figure.delaxes
    fig = g("matplotlib.figure", "Figure") + b"q\x01)\x81q\x02"
    state = b"}" + s("delaxes") + g("mylab.util", "runner") + b"sb"
    body = fig + state + b"0" + GETATTR + b"h\x02" + s("delaxes") + b"\x86R" + s("echo") + b"\x85R"
    verdict, found = scan(body)
    assert verdict == "malicious"
    assert Severity.MALICIOUS in found["FS102"]


@needs_index
def test_an_exec_reach_handed_a_module_constant_keeps_its_grade() -> None:
    # a module-level string constant is text the sink could run
    _, found = scan(call(g("sympy.core.numbers", "Rational"), g("this", "s")))
    assert fs110(found) == Severity.MALICIOUS


@needs_index
def test_getattr_of_an_instance_built_with_a_callable_argument_is_not_the_class_method() -> None:
    # Figure(runner): an __init__ may store the callable it is handed as `delaxes`
    fig = call(g("matplotlib.figure", "Figure"), g("mylab.util", "runner")) + b"q\x02"
    body = fig + b"0" + GETATTR + b"h\x02" + s("delaxes") + b"\x86R" + s("echo") + b"\x85R"
    verdict, _ = scan(body)
    assert verdict == "malicious"


@needs_index
def test_a_referenced_dispatcher_handed_to_an_unlisted_callable_stays_flagged() -> None:
    f = g("spacy.util", "_get_attr_unless_lookup")
    _, found = scan(b"]" + f + b"a")  # only referenced: runs nothing at load
    assert "FS110" not in found and found["FS111"] == [Severity.INFO]  # stored only
    # an unlisted helper handed it (and a runner) may call it with anything
    body = call(g("mylab.util", "Builder"), s("x"), f, g("mylab.util", "runner"))
    _, found = scan(body)
    assert Severity.SUSPICIOUS in found["FS110"]


# -- index dispatchers holding reviewed operand callers, or rebuilt by an inert function -----

JUXT = g("toolz.functoolz", "juxt")  # __setstate__ stores funcs, __call__ calls each
CURRY = g("toolz.functoolz", "curry")  # __init__ stores partial(func, ...), __call__ calls it
RESTORE = g("toolz.functoolz", "_restore_curry")  # index-inert: builds cls(func, *args)


def _juxt(*funcs: bytes) -> bytes:
    return JUXT + b")\x81" + t(*funcs) + b"b"  # NEWOBJ, then BUILD with the callables


@needs_index
def test_a_dispatcher_holding_reviewed_operand_callers_is_low() -> None:
    # toolz pickles juxt(len, sorted): len/sorted call only what they are applied to
    verdict, found = scan(_juxt(g("builtins", "len"), g("builtins", "sorted")))
    assert found["FS110"] == [Severity.LOW]
    assert verdict == "clean"
    _, found = scan(_juxt(g("operator", "mul"), g("operator", "add")))
    assert found["FS110"] == [Severity.LOW]


@needs_index
@pytest.mark.parametrize(
    "held",
    [
        g("posix", "system"),  # a sink
        g("mylab.util", "run"),  # a function nobody listed
        call(g("mylab.util", "Runner"), s("echo hi")),  # a computed callable
        g("operator", "methodcaller"),  # a reviewed dispatcher that is a sink
    ],
)
def test_a_dispatcher_holding_a_sink_or_unknown_callable_beside_operators_stays_flagged(
    held: bytes,
) -> None:
    verdict, found = scan(_juxt(g("builtins", "len"), held))
    assert verdict in ("suspicious", "malicious")
    assert Severity.LOW not in found.get("FS110", [])


@needs_index
def test_operand_callers_count_only_where_an_index_dispatcher_holds_them() -> None:
    # a reviewed dispatcher that runs at once keeps its own judgement of len (not inert there)
    verdict, _ = scan(call(g("builtins", "map"), g("builtins", "len"), b"]" + s("x") + b"a"))
    assert verdict in ("suspicious", "malicious")


@needs_index
def test_a_dispatcher_rebuilt_by_an_index_inert_function_is_judged_by_its_arguments() -> None:
    # toolz: _restore_curry(curry, toolz.itertoolz.get, (1,), {}, userdict, None)
    get = g("toolz.itertoolz", "get")
    benign = call(RESTORE, CURRY, get, t(b"K\x01"), b"}", b"}", b"N")
    verdict, found = scan(benign)
    assert found["FS110"] == [Severity.LOW]
    assert verdict == "clean"
    for func in (g("posix", "system"), g("mylab.util", "run")):
        twin = call(RESTORE, CURRY, func, t(s("echo hi")), b"}", b"}", b"N")
        verdict, found = scan(twin)
        assert verdict in ("suspicious", "malicious")
        assert Severity.LOW not in found.get("FS110", [])
    # handed first to an unlisted function: it may call it with anything
    verdict, found = scan(call(g("mylab.util", "rebuild"), CURRY, get))
    assert Severity.SUSPICIOUS in found["FS110"]


def _obj(cls: bytes, state: bytes) -> bytes:
    return cls + b")\x81" + state + b"b"  # NEWOBJ, BUILD


def _layer(*task: bytes) -> bytes:
    # an object of an index class with no call/item member beyond dispatch, holding a task tuple
    layer = g("dask.highlevelgraph", "MaterializedLayer")
    return _obj(layer, b"}" + s("mapping") + b"}" + s("k") + t(*task) + b"ss")


@needs_index
def test_a_dispatcher_holding_objects_is_judged_by_what_built_them() -> None:
    # dask: Array(HighLevelGraph(layers of tasks over operator.mul), name, chunks, meta)
    verdict, found = scan(_juxt(_layer(g("operator", "mul"), b"K\x01", b"K\x02")))
    assert found["FS110"] == [Severity.LOW]
    assert verdict == "clean"


@needs_index
@pytest.mark.parametrize(
    "held",
    [
        _layer(g("posix", "system"), s("echo hi")),  # a sink deep in the object's state
        _layer(g("mylab.util", "run"), s("echo hi")),  # an unlisted function there
        _obj(g("mylab.tables", "Holder"), b"}"),  # an object of a class nobody listed
        call(g("functools", "partial"), g("builtins", "len")),  # a callable object (a sink)
    ],
)
def test_a_dispatcher_holding_objects_with_unknown_parts_stays_flagged(held: bytes) -> None:
    verdict, found = scan(_juxt(held))
    assert verdict in ("suspicious", "malicious")
    assert Severity.LOW not in found.get("FS110", [])


@needs_index
def test_a_class_with_a_method_reach_counts_as_a_dispatcher() -> None:
    # dask Array: __new__ calls a class handed as `meta`; compute() may open a connection (a
    # `method` reach the application runs, not the loader)
    array = g("dask.array.core", "Array")
    graph = _obj(g("dask.highlevelgraph", "HighLevelGraph"), b"}")
    verdict, found = scan(call(array, graph, s("x"), t(t(b"K\x01")), b"N", b"N"))
    assert found["FS110"] == [Severity.LOW]
    assert verdict == "clean"
    for meta in (g("mylab.tables", "Table"), g("posix", "system")):
        verdict, found = scan(call(array, graph, s("x"), t(t(b"K\x01")), b"N", meta))
        assert verdict in ("suspicious", "malicious")
        assert Severity.LOW not in found.get("FS110", [])


@needs_index
def test_a_held_result_of_an_allowlisted_function_is_not_judged_as_an_object() -> None:
    # a function's result may be any callable: only NEWOBJ, reconstructors and index classes
    made = call(g("torch._utils", "_rebuild_tensor_v2"), b"N", b"K\x00", t(), t(), b"\x89", b"N")
    verdict, found = scan(_juxt(made))
    assert verdict in ("suspicious", "malicious")
    assert Severity.LOW not in found.get("FS110", [])
