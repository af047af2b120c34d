"""The shipped knowledge base as data: size and topics, reasons and references, every deny entry
dangerous and every allow entry safe, docs/threats.md section F callables dangerous, no name listed
twice, and real benign pickles referencing only allowlisted names."""

from __future__ import annotations

import contextlib
import io
import pickle
import pickletools
import zipfile

import pytest

from fastscan.rules import (
    DANGEROUS,
    DANGEROUS_CATEGORIES,
    SAFE,
    UNKNOWN,
    RuleSet,
    classify,
    default_ruleset,
)
from fastscan.rules.knowledge import UNKNOWN_CATEGORIES, load_shipped

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


def test_no_name_is_listed_twice_after_alias_normalisation() -> None:
    seen: dict[tuple[str, str], str] = {}
    for e in ENTRIES:
        key = (SHIPPED.resolver.normalise_module(e.module), e.name)
        assert key not in seen, f"{e.entry_id} duplicates {seen[key]}"
        seen[key] = e.entry_id


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
