"""`fastscan index` builder: aliases, load-time reach paths, attribute walks, reproducibility,
and that building never imports what it indexes."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastscan.index import IndexFormatError, combine, load_index
from fastscan.index.sources import build_bytes, directory, stdlib, wheel

ROOT = Path(__file__).resolve().parents[2]

PKG = {
    "__init__.py": """
        from .core import Wrapper, run_cmd, Benign
        from .sub import *
        import gadgetpkg.sub.deep as deep
        try:
            from _pickle import loads as fast_loads
        except ImportError:
            from pickle import loads as fast_loads
        Alias = Wrapper
        """,
    "core.py": """
        import os
        import pickle
        import subprocess

        class Wrapper:
            def __init__(self, x):
                self.x = x
            def __setstate__(self, state):
                self.obj = self._decode(state)
            def _decode(self, state):
                return pickle.loads(state["blob"])

        class Benign:
            def __init__(self, a=1):
                self.a = a + helper()
            def __setstate__(self, state):
                self.__dict__.update(state)

        def helper():
            return 3

        def run_cmd(cmd):
            return subprocess.run(cmd, shell=True)

        class MyPopen(subprocess.Popen):
            pass

        class Child(Wrapper):
            def __setstate__(self, state):
                super().__setstate__(state)

        def reads(path):
            with open(path, "rb") as fh:
                return fh.read()

        def writes(path, mode):
            return open(path, mode)

        def load(f, pickle_module=None):
            if pickle_module is None:
                pickle_module = pickle
            return _load(f, pickle_module)

        def _load(f, pickle_module):
            class UnpicklerWrapper(pickle_module.Unpickler):
                pass
            return UnpicklerWrapper(f).load()

        class Holder:
            def __setstate__(self, state):
                self.model = load(state["buf"])

        def probe():
            import ctypes
            return ctypes.CDLL("libfixed.so.1")
        """,
    "sub/__init__.py": """
        __all__ = ["Exported"]
        class Exported(dict):
            def __setitem__(self, key, value):
                with open(key, "w") as fh:
                    fh.write(value)
        class Hidden:
            pass
        """,
    "sub/deep.py": """
        def f(code):
            return eval(code)
        """,
    # stored-callable (callback dispatch), constructor-bound attributes, lazy connections
    "cb.py": """
        import heapq
        import socket

        class Scheduler:
            def __init__(self):
                self._queue = []
            def enter(self, delay, action, argument=()):
                return self.enterabs(delay, action, argument)
            def enterabs(self, when, action, argument=()):
                event = (when, action, argument)
                heapq.heappush(self._queue, event)
            def run(self):
                q = self._queue
                when, action, argument = heapq.heappop(q)
                action(*argument)

        class Info:
            pass

        class Finalizer:
            _registry = {}
            def __init__(self, obj, func):
                info = Info()
                info.func = func
                self._registry[self] = info
            def __call__(self):
                info = self._registry.pop(self)
                return info.func()

        class Keeper:
            def __init__(self, model):
                self.model = model
            def predict(self, x):
                return self.model.predict(x)

        class Item:
            def __init__(self, fn):
                self.fn = fn
            def run(self):
                return self.fn()

        def submit(fn):
            return Item(fn)

        def apply(f, x):
            return f(x)

        def handed_on(cb):
            return apply(cb, 1)

        def not_handed_on(data):
            return apply(len, data)

        class Evaluator:
            def go(self, code):
                return eval(code)

        class Runner:
            def __init__(self, factory):
                self.factory = factory
            def run(self, code):
                obj = self.factory()
                return obj.go(code)

        def run(code):
            return Runner(Evaluator).run(code)

        class Conn:
            def __init__(self, host, port):
                self.address = (host, port)
            def connect(self):
                return socket.create_connection(self.address)
        """,
    "lazy/__init__.py": """
        import typing

        if typing.TYPE_CHECKING:
            def stub(cmd): ...
        else:
            def stub(cmd):
                import os
                return os.system(cmd)

        def __getattr__(name):
            global Lazy
            if name == "Lazy":
                from .impl import Lazy as impl_lazy
                Lazy = impl_lazy
                return impl_lazy
            if name == "Other":
                from .impl import Other
                return Other
            raise AttributeError(name)
        """,
    "lazy/impl.py": """
        import os

        class Lazy:
            def __init__(self, cmd):
                os.system(cmd)

        class Other:
            pass
        """,
}


def _write_pkg(root: Path, name: str, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / name


@pytest.fixture(scope="module")
def stdlib_mods() -> list:
    return list(stdlib())  # parsed once for the module's tests (~10 s)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, stdlib_mods: list):
    root = tmp_path_factory.mktemp("src")
    pkg = _write_pkg(root, "gadgetpkg", PKG)
    data = build_bytes(itertools.chain(directory(pkg, "gadgetpkg", "1.0"), stdlib_mods))
    out = root / "g.fsidx"
    out.write_bytes(data)
    return load_index(out)


def _cats(sym) -> dict[str, tuple[str, ...]]:
    return {f"{r.hook}:{r.category}": r.path for r in sym.reaches}


def test_reexport_through_init_resolves_to_origin(index) -> None:
    sym = index.lookup("gadgetpkg", "Wrapper")
    assert sym.origin == "gadgetpkg.core.Wrapper" and sym.kind == "class"
    assert sym.package == "gadgetpkg" and sym.version == "1.0"
    assert index.lookup("gadgetpkg", "Alias").origin == "gadgetpkg.core.Wrapper"


def test_star_import_honours_all(index) -> None:
    assert index.lookup("gadgetpkg", "Exported").origin == "gadgetpkg.sub.Exported"
    assert index.lookup("gadgetpkg", "Hidden") is None  # not in sub.__all__
    assert index.lookup("gadgetpkg.sub", "Hidden").kind == "class"


def test_try_except_import_takes_first_branch(index) -> None:
    sym = index.lookup("gadgetpkg", "fast_loads")
    assert sym.origin == "_pickle.loads" and sym.kind == "builtin"
    assert _cats(sym) == {"call:nested_loader": ("_pickle.loads",)}


def test_import_as_submodule(index) -> None:
    assert index.lookup("gadgetpkg", "deep").kind == "module"
    sym = index.lookup("gadgetpkg", "deep.f")
    assert sym.origin == "gadgetpkg.sub.deep.f"
    assert _cats(sym)["call:exec_sink"] == ("gadgetpkg.sub.deep.f", "builtins.eval")


def test_setstate_nested_loader_path(index) -> None:
    sym = index.lookup("gadgetpkg", "Wrapper")
    assert _cats(sym) == {
        "setstate:nested_loader": (
            "gadgetpkg.core.Wrapper.__setstate__",
            "gadgetpkg.core.Wrapper._decode",
            "_pickle.loads",
        )
    }
    # super().__setstate__ is followed to the base's hook
    child = _cats(index.lookup("gadgetpkg.core", "Child"))
    assert child["setstate:nested_loader"][:2] == (
        "gadgetpkg.core.Child.__setstate__",
        "gadgetpkg.core.Wrapper.__setstate__",
    )


def test_function_reaching_process_through_stdlib(index) -> None:
    path = _cats(index.lookup("gadgetpkg", "run_cmd"))["call:process"]
    assert path[0] == "gadgetpkg.core.run_cmd" and path[1] == "subprocess.run"
    assert path[-1] == "_posixsubprocess.fork_exec"


def test_subclass_of_sink_inherits_its_constructor(index) -> None:
    assert "init:process" in _cats(index.lookup("gadgetpkg.core", "MyPopen"))


def test_benign_class_reaches_nothing(index) -> None:
    sym = index.lookup("gadgetpkg", "Benign")
    assert sym.kind == "class" and sym.reaches == ()


def test_open_modes(index) -> None:
    assert index.lookup("gadgetpkg.core", "reads").reaches == ()
    assert "call:filesystem_write" in _cats(index.lookup("gadgetpkg.core", "writes"))
    assert "setitem:filesystem_write" in _cats(index.lookup("gadgetpkg", "Exported"))


def test_module_handed_to_a_helper_is_followed(index) -> None:
    # torch.load's shape: `pickle` reaches `_load` as an argument, subclassed in a nested class
    path = _cats(index.lookup("gadgetpkg.core", "load"))["call:nested_loader"]
    assert path == ("gadgetpkg.core.load", "gadgetpkg.core._load", "_pickle.Unpickler")
    holder = _cats(index.lookup("gadgetpkg.core", "Holder"))
    assert holder["setstate:nested_loader"][0] == "gadgetpkg.core.Holder.__setstate__"


def test_literal_only_calls_are_not_followed(index) -> None:
    assert index.lookup("gadgetpkg.core", "probe").reaches == ()  # CDLL("libfixed.so.1")
    assert any(r.category == "exec_sink" for r in index.lookup("ctypes", "CDLL").reaches)


def test_attribute_walk_through_module_alias(index) -> None:
    sym = index.lookup("gadgetpkg.core", "os.system")
    assert sym.origin == "posix.system" and sym.kind == "builtin" and sym.package == "python"
    assert _cats(sym) == {"call:process": ("posix.system",)}
    assert index.lookup("gadgetpkg.core", "subprocess.Popen").origin == "subprocess.Popen"


def test_undefined_attribute_of_indexed_module(index) -> None:
    assert index.has_module("gadgetpkg.core")
    assert index.lookup("gadgetpkg.core", "nothing_here") is None
    assert index.lookup("gadgetpkg.core", "Wrapper.nothing") is None
    assert index.package_of("gadgetpkg.sub.deep") == "gadgetpkg"
    assert index.package_of("os") == "python"


def test_without_hides_a_distribution(index) -> None:
    view = index.without(["gadgetpkg"])
    assert not view.has_module("gadgetpkg") and view.lookup("gadgetpkg", "Wrapper") is None


def test_user_index_over_another_resolves_across(tmp_path: Path, index) -> None:
    pkg = _write_pkg(tmp_path, "userpkg", {"__init__.py": "from gadgetpkg import Wrapper as W\n"})
    user = tmp_path / "u.fsidx"
    user.write_bytes(build_bytes(directory(pkg, "userpkg", "0.1")))
    alone = load_index(user)
    assert alone.lookup("userpkg", "W").kind == "unresolved"  # origin outside this index
    both = combine(alone, index)
    sym = both.lookup("userpkg", "W")
    assert sym.origin == "gadgetpkg.core.Wrapper" and sym.reaches
    assert both.digest != index.digest and both.version


def test_stored_callable_is_callback_dispatch(index) -> None:
    # sched's shape: the action goes through a helper into `self._queue`, `run` calls an element
    enter = _cats(index.lookup("gadgetpkg.cb", "Scheduler.enter"))
    assert enter == {
        "call:callback_dispatch": (
            "gadgetpkg.cb.Scheduler.enter",
            "gadgetpkg.cb.Scheduler.enterabs",
            "gadgetpkg.cb.Scheduler.run",
        )
    }
    assert index.lookup("gadgetpkg.cb", "Scheduler").reaches == ()  # its __init__ keeps nothing
    # weakref.finalize's shape: a field of a stored record is what gets called
    fin = _cats(index.lookup("gadgetpkg.cb", "Finalizer"))
    assert fin == {
        "init:callback_dispatch": (
            "gadgetpkg.cb.Finalizer.__init__",
            "gadgetpkg.cb.Finalizer.__call__",
        )
    }
    # a stored model whose *method* is called is not dispatch
    assert index.lookup("gadgetpkg.cb", "Keeper").reaches == ()


def test_parameter_handed_to_a_dispatcher(index) -> None:
    submit = _cats(index.lookup("gadgetpkg.cb", "submit"))["call:callback_dispatch"]
    assert submit == ("gadgetpkg.cb.submit", "gadgetpkg.cb.Item.__init__", "gadgetpkg.cb.Item.run")
    assert "init:callback_dispatch" in _cats(index.lookup("gadgetpkg.cb", "Item"))
    assert _cats(index.lookup("gadgetpkg.cb", "handed_on"))["call:callback_dispatch"] == (
        "gadgetpkg.cb.handed_on",
        "gadgetpkg.cb.apply",
    )
    # the parameter lands in `apply`'s `x`, which is not called: per-parameter, not per-call
    assert index.lookup("gadgetpkg.cb", "not_handed_on").reaches == ()


def test_class_handed_to_a_constructor_binds_the_attribute(index) -> None:
    # cProfile.run's shape: `_Utils(Profile).run(code)` -> `self.profiler()` -> `.run` -> exec
    path = _cats(index.lookup("gadgetpkg.cb", "run"))["call:exec_sink"]
    assert path == (
        "gadgetpkg.cb.run",
        "gadgetpkg.cb.Runner.run",
        "gadgetpkg.cb.Evaluator.go",
        "builtins.eval",
    )


def test_lazily_opened_connection_is_a_method_reach(index) -> None:
    conn = _cats(index.lookup("gadgetpkg.cb", "Conn"))
    assert list(conn) == ["method:network"]  # no load-time hook opens it
    assert conn["method:network"][:2] == ("gadgetpkg.cb.Conn.connect", "socket.create_connection")


def test_module_getattr_lazy_exports(index) -> None:
    lazy = index.lookup("gadgetpkg.lazy", "Lazy")
    assert lazy.origin == "gadgetpkg.lazy.impl.Lazy"
    assert "init:process" in _cats(lazy)
    assert index.lookup("gadgetpkg.lazy", "Other").origin == "gadgetpkg.lazy.impl.Other"
    assert index.lookup("gadgetpkg.lazy", "impl_lazy") is None  # a local of __getattr__


def test_type_checking_stubs_are_skipped(index) -> None:
    path = _cats(index.lookup("gadgetpkg.lazy", "stub"))["call:process"]
    assert path == ("gadgetpkg.lazy.stub", "posix.system")


def test_builds_are_byte_reproducible(tmp_path: Path) -> None:
    pkg = _write_pkg(tmp_path, "gadgetpkg", PKG)
    first = build_bytes(directory(pkg, "gadgetpkg", "1.0"))
    second = build_bytes(directory(pkg, "gadgetpkg", "1.0"))
    assert first == second
    assert load_index_bytes(tmp_path, first).digest == load_index_bytes(tmp_path, second).digest


def load_index_bytes(tmp: Path, data: bytes):
    path = tmp / f"i{len(list(tmp.iterdir()))}.fsidx"
    path.write_bytes(data)
    return load_index(path)


def test_wheel_source_and_bad_files(tmp_path: Path, stdlib_mods: list) -> None:
    import zipfile

    whl = tmp_path / "demo_pkg-2.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr(
            "demo_pkg/__init__.py", "import subprocess\ndef go(c):\n    subprocess.call(c)\n"
        )
        zf.writestr("demo_pkg/broken.py", "def (:\n")
        zf.writestr("demo_pkg/fast.cpython-311-x86_64-linux-gnu.so", b"\x7fELF")
        zf.writestr("demo_pkg-2.0.dist-info/METADATA", "Name: demo-pkg\n")
    idx = load_index_bytes(tmp_path, build_bytes(wheel(whl), context=stdlib_mods))
    assert not idx.has_module("subprocess")  # context is followed, not written
    sym = idx.lookup("demo_pkg", "go")
    assert sym.package == "demo-pkg" and sym.version == "2.0"
    assert any(r.category == "process" for r in sym.reaches)
    assert idx.has_module("demo_pkg.broken") and idx.lookup("demo_pkg.broken", "x") is None
    assert idx.lookup("demo_pkg.fast", "anything").kind == "builtin"  # C extension: opaque
    bad = tmp_path / "bad.fsidx"
    bad.write_bytes(b"not an index")
    with pytest.raises(IndexFormatError):
        load_index(bad)


MARKER_PKG = {
    "__init__.py": "open({marker!r}, 'w').write('imported')\nfrom . import inner\n",
    "inner.py": "import os\nos.system('touch ' + {marker!r} + '.sys')\nX = 1\n",
}


def test_building_never_imports_the_package(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    files = {k: v.format(marker=str(marker)) for k, v in MARKER_PKG.items()}
    pkg = _write_pkg(tmp_path / "src", "markerpkg", files)
    out = tmp_path / "m.fsidx"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path / 'src'}")
    proc = subprocess.run(
        [sys.executable, "-m", "fastscan", "index", str(pkg), "--out", str(out), "--no-stdlib"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists() and not Path(f"{marker}.sys").exists()
    assert load_index(out).lookup("markerpkg", "inner.X").kind == "constant"
    # in-process too: nothing lands in sys.modules
    list(itertools.chain(directory(pkg)))
    assert "markerpkg" not in sys.modules and not marker.exists()


def test_cli_needs_an_input(tmp_path: Path) -> None:
    from fastscan.cli import main

    assert main(["index", "--out", str(tmp_path / "x")]) == 2
    assert main(["index", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


def test_site_packages_directory_through_record(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _write_pkg(site, "recpkg", {"__init__.py": "import os\ndef go(c):\n    os.system(c)\n"})
    info = site / "recpkg-3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: RecPkg\nVersion: 3.1\n")
    (info / "RECORD").write_text("recpkg/__init__.py,,\nrecpkg-3.1.dist-info/METADATA,,\n")
    out = tmp_path / "s.fsidx"
    from fastscan.index.cli import main

    assert main(["--site-packages", str(site), "--no-stdlib", "--out", str(out)]) == 0
    sym = load_index(out).lookup("recpkg", "go")
    assert (sym.package, sym.version, sym.kind) == ("recpkg", "3.1", "function")
