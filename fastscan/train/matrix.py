"""docs/threats.md as data: one `Row` per row id of sections A–I, plus the section-F callables.

Tests of every stage parametrise over `ROWS`: which payload builders (keys of
`payloads.PAYLOADS`) and fixtures to generate, which containers (`wrappers.CONTAINERS`) to put
them in, and the expected outcome. Rows that static pickle scanning cannot address carry a
`not_applicable` reason instead of builders. This module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["F_CALLABLES", "ROWS", "STREAM_CONTAINERS", "Row", "row"]

# (module, name, family, argument kind) for every callable docs/threats.md section F names.
# The argument kinds are interpreted by threats_names._f_args (harmless values only).
F_CALLABLES: tuple[tuple[str, str, str, str], ...] = (
    # process
    ("os", "system", "process", "cmd"),
    ("posix", "system", "process", "cmd"),
    ("nt", "system", "process", "cmd"),
    ("os", "popen", "process", "cmd"),
    ("subprocess", "Popen", "process", "argv"),
    ("subprocess", "call", "process", "argv"),
    ("subprocess", "check_call", "process", "argv"),
    ("subprocess", "check_output", "process", "argv"),
    ("subprocess", "run", "process", "argv"),
    ("subprocess", "getoutput", "process", "cmd"),
    ("subprocess", "getstatusoutput", "process", "cmd"),
    ("pty", "spawn", "process", "argv"),
    ("multiprocessing.util", "spawnv_passfds", "process", "argv"),
    ("uuid", "_get_command_stdout", "process", "cmd"),
    ("_osx_support", "_read_output", "process", "cmd"),
    ("_osx_support", "_find_build_tool", "process", "cmd"),
    ("_aix_support", "_read_cmd_output", "process", "cmd"),
    ("imaplib", "IMAP4_stream", "process", "cmd"),
    ("_pyrepl.pager", "pipe_pager", "process", "text_cmd"),
    ("asyncio.unix_events", "_UnixSubprocessTransport._start", "process", "argv"),
    ("setuptools._distutils.spawn", "spawn", "process", "argv"),
    ("distutils.spawn", "spawn", "process", "argv"),
    ("pipes", "Template.copy", "process", "text_cmd"),
    ("mailcap", "findmatch", "process", "text_cmd"),
    ("torch._inductor.codecache", "compile_file", "process", "text_cmd"),
    ("torch.utils.collect_env", "run", "process", "cmd"),
    ("torch.utils.collect_env", "run_and_read_all", "process", "callback"),
    ("venv", "create", "process", "path"),
    ("pydoc", "pipepager", "process", "text_cmd"),
    ("test.support.script_helper", "assert_python_ok", "process", "code"),
    ("mlflow.projects.backend.local", "_run_entry_point", "process", "cmd"),
    ("ctypes", "CDLL", "process", "path"),
    ("_xxsubinterpreters", "create", "process", "none"),
    ("_interpreters", "create", "process", "none"),
    # Python code execution
    ("builtins", "eval", "exec", "code"),
    ("builtins", "exec", "exec", "code"),
    ("builtins", "compile", "exec", "code"),
    ("runpy", "_run_code", "exec", "code"),
    ("code", "InteractiveInterpreter.runcode", "exec", "self_code"),
    ("bdb", "Bdb.run", "exec", "self_code"),
    ("pdb", "run", "exec", "code"),
    ("cProfile", "run", "exec", "code"),
    ("cProfile", "runctx", "exec", "code"),
    ("profile", "run", "exec", "code"),
    ("profile", "Profile.runctx", "exec", "self_code"),
    ("trace", "Trace.run", "exec", "self_code"),
    ("trace", "Trace.runctx", "exec", "self_code"),
    ("timeit", "timeit", "exec", "code"),
    ("doctest", "debug_script", "exec", "code"),
    ("idlelib.pyshell", "ModifiedInterpreter.runcode", "exec", "self_code"),
    ("idlelib.run", "Executive.runcode", "exec", "self_code"),
    ("lib2to3.pgen2.grammar", "Grammar.loads", "exec", "self_code"),
    ("lib2to3.pgen2.pgen", "ParserGenerator.make_label", "exec", "self_code"),
    ("numpy.testing._private.utils", "runstring", "exec", "code"),
    ("numpy.f2py.crackfortran", "getlincoef", "exec", "code"),
    ("numpy.f2py.crackfortran", "_eval_length", "exec", "code"),
    ("torch.jit.unsupported_tensor_ops", "execWrapper", "exec", "code"),
    ("torch._dynamo.guards", "GuardBuilder.get", "exec", "self_code"),
    (
        "torch.fx.experimental.symbolic_shapes",
        "ShapeEnv.evaluate_guards_expression",
        "exec",
        "self_code",
    ),
    ("torch.utils.bottleneck.__main__", "run_cprofile", "exec", "code"),
    ("torch.utils.bottleneck.__main__", "run_autograd_prof", "exec", "code"),
    ("typing", "_eval_type", "exec", "code"),
    ("typing", "get_type_hints", "exec", "code"),
    ("dataclasses", "_create_fn", "exec", "code"),
    ("types", "CodeType", "exec", "built_code"),
    ("types", "FunctionType", "exec", "built_code"),
    ("cloudpickle.cloudpickle", "_make_function", "exec", "built_code"),
    ("pip", "main", "exec", "argv"),
    ("ensurepip", "_run_pip", "exec", "argv"),
    # nested deserialisation
    ("pickle", "loads", "nested_loader", "pickle"),
    ("_pickle", "loads", "nested_loader", "pickle"),
    ("torch", "load", "nested_loader", "path"),
    ("torch.serialization", "load", "nested_loader", "path"),
    ("torch.utils._config_module", "ConfigModule.load_config", "nested_loader", "pickle"),
    ("torch.utils.data.datapipes.utils.decoder", "basichandlers", "nested_loader", "pickle"),
    ("joblib", "load", "nested_loader", "path"),
    ("numpy", "load", "nested_loader", "path"),
    ("pandas", "read_pickle", "nested_loader", "path"),
    ("dill", "loads", "nested_loader", "pickle"),
    ("cloudpickle", "loads", "nested_loader", "pickle"),
    ("marshal", "loads", "nested_loader", "marshal"),
    ("yaml", "load", "nested_loader", "yaml"),
    ("yaml", "unsafe_load", "nested_loader", "yaml"),
    # filesystem
    ("builtins", "open", "filesystem", "path_w"),
    ("_io", "FileIO", "filesystem", "path_w"),
    ("io", "open", "filesystem", "path_w"),
    ("pathlib", "Path.write_text", "filesystem", "path_w"),
    ("pathlib", "Path.touch", "filesystem", "path"),
    ("logging", "FileHandler", "filesystem", "path"),
    ("distutils.file_util", "write_file", "filesystem", "path_w"),
    ("shutil", "rmtree", "filesystem", "path"),
    ("shutil", "copyfile", "filesystem", "path_w"),
    ("shutil", "move", "filesystem", "path_w"),
    ("os", "remove", "filesystem", "path"),
    # network / exfiltration
    ("socket", "socket", "network", "none"),
    ("socket", "create_connection", "network", "addr"),
    ("urllib.request", "urlopen", "network", "url"),
    ("urllib.request", "urlretrieve", "network", "url"),
    ("requests.api", "get", "network", "url"),
    ("requests.api", "post", "network", "url"),
    ("aiohttp", "request", "network", "text_cmd"),
    ("http.client", "HTTPSConnection", "network", "host"),
    ("http.client", "HTTPConnection", "network", "host"),
    ("ssl", "get_server_certificate", "network", "addr"),
    ("smtplib", "SMTP", "network", "host"),
    ("imaplib", "IMAP4", "network", "host"),
    ("ftplib", "FTP", "network", "host"),
    ("poplib", "POP3", "network", "host"),
    ("telnetlib", "Telnet", "network", "host"),
    ("nntplib", "NNTP", "network", "host"),
    ("webbrowser", "open", "network", "url"),
    ("pandas", "read_csv", "network", "url"),
    # callback dispatch: a harmless-looking dispatcher handed a sink
    ("sched", "scheduler.enter", "callback", "callback_self"),
    ("contextlib", "ExitStack.callback", "callback", "callback_self"),
    ("unittest.mock", "Mock", "callback", "callback"),
    ("concurrent.futures", "ThreadPoolExecutor.submit", "callback", "callback_self"),
    ("concurrent.futures", "ProcessPoolExecutor.submit", "callback", "callback_self"),
    ("operator", "call", "callback", "callback"),
    ("collections", "defaultdict", "callback", "callback"),
    ("builtins", "map", "callback", "callback"),
    ("builtins", "filter", "callback", "callback"),
    ("itertools", "starmap", "callback", "callback"),
    ("re", "sub", "callback", "callback_self"),
    ("weakref", "finalize", "callback", "callback_self"),
    ("asyncio", "Future.add_done_callback", "callback", "callback_self"),
    ("string", "Template.substitute", "callback", "callback_self"),
    ("collections", "ChainMap", "callback", "callback"),
    ("types", "MappingProxyType", "callback", "callback"),
)

# Containers that take any raw pickle byte string (see wrappers.CONTAINERS).
STREAM_CONTAINERS: tuple[str, ...] = (
    "raw",
    "torch_zip",
    "torch_zip_extra_member",
    "torch_zip_renamed_member",
    "torch_legacy",
    "npy_object",
    "npz_stored",
    "npz_deflated",
    "zip_in_zip",
    "tar_in_zip",
    "tar",
    "7z",
    "gzip",
    "bz2",
    "xz",
    "lz4",
    "joblib_zlib",
    "joblib_gzip",
    "joblib_bz2",
    "joblib_xz",
    "joblib_lzma",
    "joblib_lz4",
)
# Containers that splice a stack-neutral snippet into a real benign stream.
SNIPPET_CONTAINERS: tuple[str, ...] = ("joblib_after_array", "torch_zip_injected")
# wrappers.CONTAINERS names; the last three are container anomaly codes they provoke
ZIP_TRICKS: tuple[str, ...] = (
    "zip_flag_0x1",
    "zip_flag_0x20",
    "zip_flag_0x40",
    "zip_crc_mismatch",
    "zip_name_mismatch",
    "zip_prefix_data",
)
_FEW = ("raw", "torch_zip", "gzip", "npy_object")


@dataclass(frozen=True)
class Row:
    id: str  # docs/threats.md row id
    technique: str
    payloads: tuple[str, ...] = ()  # keys of payloads.PAYLOADS (a prefix ending in ":" or ".")
    containers: tuple[str, ...] = ()  # keys of wrappers.CONTAINERS
    expected: str = "malicious"  # malicious | clean | encrypted | unsupported
    fixtures: tuple[str, ...] = ()  # non-payload files: benign.SOURCES or wrappers fixtures
    expected_globals: tuple[str, ...] = ()  # fixed globals every sample of the row shows
    not_applicable: str = ""  # why static pickle scanning cannot test this row
    note: str = ""  # what part of the row is out of scope

    @property
    def section(self) -> str:
        return self.id[0]


def _r(id_: str, technique: str, payloads: tuple[str, ...] = (), **kw: object) -> Row:
    kw.setdefault("containers", STREAM_CONTAINERS if payloads else ())
    return Row(id_, technique, payloads, **kw)  # type: ignore[arg-type]


_SIMPLE = ("F:os.system", "C8", "D1", "E6")  # representative payloads for container rows

ROWS: tuple[Row, ...] = (
    _r("A1", "non-standard extension", _SIMPLE, containers=("raw",)),
    _r(
        "A2",
        "pickle member with non-pickle name",
        _SIMPLE,
        containers=("torch_zip_renamed_member",),
    ),
    _r(
        "A3",
        "protocol-0/1 member without PROTO",
        ("C7", "C8"),
        containers=("torch_zip", "zip_in_zip"),
    ),
    _r("A4", "plain pickle with torch extension", _SIMPLE, containers=("raw",)),
    _r(
        "A5",
        "forged legacy magic",
        _SIMPLE,
        containers=("torch_legacy_forged_magic",),
        expected_globals=("builtins.eval",),
    ),
    _r("A6", "payload in legacy pickle #2..#5", _SIMPLE, containers=("torch_legacy",)),
    _r("A7", "7z-compressed archive", _SIMPLE, containers=("7z",)),
    _r("A8", "nested archives", _SIMPLE, containers=("zip_in_zip", "tar_in_zip")),
    _r(
        "A9",
        "compressed single-file pickles",
        _SIMPLE,
        containers=("gzip", "bz2", "xz", "lz4", *(c for c in STREAM_CONTAINERS if "joblib_" in c)),
    ),
    _r("A10", "npy object dtype", _SIMPLE, containers=("npy_object",)),
    _r("A11", "npz object arrays", _SIMPLE, containers=("npz_stored", "npz_deflated")),
    _r(
        "A12",
        "joblib payload after inline array",
        ("F:os.system", "D1", "H1"),
        containers=("joblib_after_array",),
    ),
    _r(
        "A13",
        "joblib object-dtype inner stream",
        ("F:os.system",),
        containers=("joblib_after_array",),
    ),
    _r("A14", "torch distributed checkpoint names", ("F:builtins.exec",), containers=("raw",)),
    _r(
        "A15",
        "TorchScript archive",
        ("F:os.system",),
        containers=("torchscript",),
        note="only the TorchScript pickles are in scope; Keras/NeMo/other non-pickle "
        "load paths of the Hide-and-Seek study are not pickle content",
    ),
    _r("A16", "polyglot files", _SIMPLE, containers=("zip_prefix_data",)),
    _r("A17", "size gates", ("F:os.system",), containers=("raw",)),
    _r(
        "A18",
        "git-LFS pointer / PNG named .pt",
        expected="unsupported",
        fixtures=("git_lfs_pointer", "png_as_pt"),
    ),
    _r("B1", "zip flag 0x1", _SIMPLE, containers=("zip_flag_0x1",)),
    _r("B2", "zip flag 0x20 / 0x40", _SIMPLE, containers=("zip_flag_0x20", "zip_flag_0x40")),
    _r("B3", "local/central name mismatch", _SIMPLE, containers=("zip_name_mismatch",)),
    _r("B4", "CRC mismatch", _SIMPLE, containers=("zip_crc_mismatch",)),
    _r("B5", "password-protected benign zip", expected="encrypted", fixtures=("zip_encrypted",)),
    _r(
        "B6",
        "path traversal / symlink / zip bomb",
        expected="clean",
        fixtures=("zip_path_traversal", "tar_symlink", "zip_bomb"),
    ),
    _r("B7", "data before the first local header", _SIMPLE, containers=("zip_prefix_data",)),
    _r("C1", "broken pickle, payload first", ("C1",)),
    _r("C2", "trailing junk", ("C2",)),
    _r("C3", "concatenated pickles", ("C3",)),
    _r("C4", "junk between streams", ("C4",)),
    _r("C5", "FRAME boundary divergence", ("C5",)),
    _r(
        "C6",
        "C vs Python unpickler discrepancies",
        not_applicable="docs/threats.md names no byte patterns beyond C5/C13/C14, which are built",
    ),
    _r("C7", "protocol-0 text pickles", ("C7",)),
    _r("C8", "INST opcode", ("C8",)),
    _r("C9", "OBJ / NEWOBJ / NEWOBJ_EX", ("C9.obj", "C9.newobj", "C9.newobj_ex")),
    _r("C10", "call result popped", ("C10",), expected_globals=("os.system",)),
    _r("C11", "EXT1/2/4 extension registry", ("C11",)),
    _r("C12", "PERSID / BINPERSID", ("C12",), expected_globals=("os.system",)),
    _r("C13", "non-UTF-8 GLOBAL operands", ("C13",), expected_globals=("os.system",)),
    _r("C14", "duplicate / misplaced PROTO", ("C14",), expected_globals=("os.system",)),
    _r(
        "C15",
        "newer opcodes in older-protocol benign files",
        expected="clean",
        fixtures=("quirk_stack_global_in_proto2", "quirk_readonly_buffer"),
    ),
    _r(
        "C16",
        "BINBYTES that looks like bzip2",
        ("C16",),
        containers=("raw", "npy_object", "torch_zip"),
    ),
    _r("D1", "memoized STACK_GLOBAL operands", ("D1",)),
    _r("D2", "PUT stores value not argument", ("D2",)),
    _r("D3", "missing memo key", ("D3",)),
    _r("D4", "memo type confusion", ("D4",)),
    _r("D5", "STRING/BINSTRING operands", ("D5",)),
    _r("D6", "computed STACK_GLOBAL operands", ("D6",)),
    _r("D7", "module attribute poisoning via BUILD", ("D7",)),
    _r("D8", "attribute smuggling on allowlisted objects", ("D8",)),
    _r("D9", "SETITEM registry poisoning", ("D9",), expected_globals=("pydantic.Popen",)),
    _r("E1", "dotted attribute path", ("E1",)),
    _r("E2", "import alias inside a benign module", ("E2",)),
    _r("E3", "sub-module of a denylisted package", ("E3",)),
    _r("E4", "C-level alias modules", ("E4",)),
    _r("E5", "universal resolvers", ("E5",)),
    _r("E6", "getattr chains", ("E6",), expected_globals=("builtins.getattr",)),
    _r("E7", "functools.partial", ("E7",), expected_globals=("functools.partial",)),
    _r("E8", "scanner-module import", ("E8",), expected_globals=("builtins.setattr",)),
    _r(
        "F",
        "denylist gaps: every section-F callable",
        tuple(f"F:{m}.{n}" for m, n, _, _ in F_CALLABLES),
        containers=_FEW,
    ),
    _r("G1", "exception after payload", ("G1",), expected_globals=("os.system",)),
    _r("G2", "parse error after payload", ("G2",), expected_globals=("os.system",)),
    _r("G3", "suspicious-only globals must still count", ("E5",)),
    _r(
        "G4",
        "loader fallback to unsafe mode",
        not_applicable="application retry logic around torch.load; the file is an ordinary sample",
    ),
    _r(
        "G5",
        "resource exhaustion",
        (
            "G5.memo_expansion",
            "G5.huge_frame",
            "G5.huge_binbytes8",
            "G5.huge_bytearray8",
            "G5.text_8mib",
        ),
        containers=("raw", "gzip"),
        expected_globals=("os.system",),
    ),
    _r("G6", "payload padded with benign torch globals", ("G6",), expected_globals=("os.system",)),
    _r("H1", "pickle inside pickle bytes", ("H1",), expected_globals=("os.system",)),
    _r("H2", "encoded inner pickle + decoder", ("H2",)),
    _r("H3", "multi-stage loader", ("H3",)),
    _r("H4", "obfuscated command strings", ("H4",), expected_globals=("os.system",)),
    _r(
        "I1",
        "torch.load weights_only RCE (< 2.6.0)",
        not_applicable="a torch version bug, not a pickle pattern; any C–H sample exercises it",
    ),
    _r(
        "I2",
        "SETITEM on non-dict after _rebuild_tensor (heap corruption)",
        not_applicable="memory corruption in torch's C++ weights_only unpickler; no Python call",
    ),
    _r(
        "I3",
        "tensor backward-hook injection",
        ("I3",),
        expected_globals=("torch._utils._rebuild_tensor_v2",),
    ),
    _r("I4", "Sleepy Pickle model patching", ("I4",)),
    _r(
        "I5",
        "Keras / TF / NeMo / ONNX loaders",
        not_applicable="non-pickle formats (Lambda layers, Hydra _target_, ONNX external data)",
    ),
)


def row(row_id: str) -> Row:
    for r in ROWS:
        if r.id == row_id:
            return r
    raise KeyError(row_id)
