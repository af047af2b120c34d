"""Open and closed module namespaces in the index (`fastscan/index/namespace.py`), and FS109
only where the index can know: a name missing from a closed pure-Python module stays FS109, a
name missing from a namespace that is filled at run time is unlisted (FS103)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fastscan.index import load_index
from fastscan.index.sources import build_bytes, directory
from fastscan.scan import DEFAULT_MODEL, Scanner

PKG = {
    "__init__.py": """
        from ._ext import models, Thing
        FLAG = False
        if FLAG:
            import notindexed.backend as _mod
        else:
            from . import target as _mod
        _mod.made = Thing()
        setattr(_mod, "other", 1)
        """,
    "_ext.cpython-311-x86_64-linux-gnu.so": "",  # a compiled extension: opaque
    # tokenizers' shape: `from .. import models` reads the package's binding (the compiled
    # submodule), not this module itself
    "models/__init__.py": """
        from .. import models
        BPE = models.BPE
        """,
    "target.py": """
        class Real:
            pass
        """,
    "globs.py": """
        import textwrap
        for _n in ("Made", "Also"):
            globals()[_n] = type(_n, (), {})
        """,
    "execd.py": """
        exec("def made(): pass")
        """,
    "selfmod.py": """
        import sys
        setattr(sys.modules[__name__], "x", 1)
        """,
    "updated.py": """
        def fill(table):
            globals().update(table)
        """,
    # protobuf's generated *_pb2 shape: the module's dict handed to a builder under an alias
    "pb2like.py": """
        from . import target as _builder
        _globals = globals()
        _builder.Real(_globals)
        if _globals.get("DESCRIPTOR") is None:
            pass
        """,
    # the dict bound to a name and only read: still closed
    "aliasread.py": """
        _g = globals()
        NAMES = list(_g.keys())
        FIRST = _g["NAMES"]
        """,
    "closed.py": """
        import os
        import textwrap

        class Known:
            def __init__(self):
                self.v = globals().get("Known")  # a read: the namespace stays closed
                self.w = vars()

        def helper():
            return locals()
        """,
}


def _write(root: Path) -> Path:
    for rel, text in PKG.items():
        path = root / "dynpkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "dynpkg"


@pytest.fixture(scope="module")
def index_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ns")
    out = root / "dyn.fsidx"
    out.write_bytes(build_bytes(directory(_write(root), "dynpkg", "1.0")))
    return out


def test_closed_and_open_namespaces(index_path: Path) -> None:
    ix = load_index(index_path)
    assert ix.open_reasons("dynpkg.closed") == []
    assert not ix.open_ended("dynpkg.closed")
    assert ix.open_reasons("dynpkg.globs") == ["globals()[...] assigned"]
    assert ix.open_reasons("dynpkg.execd") == ["exec() into the module"]
    assert ix.open_reasons("dynpkg.selfmod") == ["sys.modules[__name__]"]
    assert ix.open_reasons("dynpkg.updated") == ["globals().update"]
    assert ix.open_reasons("dynpkg.pb2like") == ["globals() as _globals handed to _builder.Real"]
    assert ix.open_reasons("dynpkg.aliasread") == []
    # assigned from the package's __init__ through the losing-branch-free alias `_mod`
    assert ix.open_reasons("dynpkg.target") == ["assigned from dynpkg"]


def test_self_import_reads_the_package_binding(index_path: Path) -> None:
    ix = load_index(index_path)
    sym = ix.lookup("dynpkg.models", "BPE")
    assert sym is not None and sym.kind == "builtin"
    assert sym.origin == "dynpkg._ext.models.BPE"


def test_build_is_reproducible(tmp_path: Path, index_path: Path) -> None:
    again = build_bytes(directory(_write(tmp_path), "dynpkg", "1.0"))
    assert again == index_path.read_bytes()


def _pickle(module: str, name: str) -> bytes:
    # protocol 2: GLOBAL, EMPTY_TUPLE, NEWOBJ (a class restored), STOP
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")\x81."


@pytest.mark.parametrize(
    ("module", "name", "rule"),
    [
        ("dynpkg.closed", "Nope", "FS109"),  # closed: a typo or a shadow
        ("dynpkg.closed", "os.system", "FS102"),  # attribute path: listed sink, as before
        ("dynpkg.closed", "textwrap.no_such", "FS109"),  # attribute path through a module
        ("dynpkg.globs", "Made", "FS103"),  # open: made at run time, unlisted
        ("dynpkg.globs", "textwrap.no_such", "FS109"),  # open, but the head is an imported module
        ("dynpkg.target", "made", "FS103"),
        ("dynpkg.execd", "made", "FS103"),
        ("dynpkg.pb2like", "ModelProto", "FS103"),  # a protobuf message class, made at run time
        ("dynpkg.aliasread", "Nope", "FS109"),
    ],
)
def test_fs109_only_where_the_index_can_know(
    tmp_path: Path, index_path: Path, module: str, name: str, rule: str
) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(_pickle(module, name))
    result = Scanner(model=None, index=[str(index_path)]).scan_path(str(path))
    rules = {f.rule_id for f in result.findings}
    assert rule in rules, (rules, [f.message for f in result.findings])
    assert result.verdict in ("suspicious", "malicious")
    if rule == "FS103":
        assert "FS109" not in rules


def test_a_payload_beside_a_message_of_an_open_module_is_still_caught(
    tmp_path: Path, index_path: Path
) -> None:
    """The open pb2 namespace only turns its own missing names from FS109 into FS103: a sink
    call next to a message of it stays malicious with the denylist and, with the sink withheld,
    an unlisted callable applied to a string (FS112), which no classifier score settles."""
    from fastscan.rules.indexed import load_user_indexes, shipped_index
    from fastscan.rules.knowledge import load_shipped
    from fastscan.rules.ruleset import RuleSet

    message = b"cdynpkg.pb2like\nModelProto\n)\x81"  # GLOBAL, EMPTY_TUPLE, NEWOBJ
    payload = b"cos\nsystem\nX\x07\x00\x00\x00echo hi\x85R"  # os.system("echo hi")
    path = tmp_path / "twin.pkl"
    path.write_bytes(b"\x80\x02" + message + payload + b"\x86.")  # TUPLE2, STOP
    rules = RuleSet(load_shipped(), index=load_user_indexes([str(index_path)], shipped_index()))
    listed = Scanner(model=None, rules=rules).scan_path(str(path))
    assert listed.verdict == "malicious", listed.findings
    withheld_rules = rules.withholding(rules.dangerous_names([("os", "system")]))
    assert "FS109" not in {f.rule_id for f in listed.findings}
    for model in (None, DEFAULT_MODEL):
        withheld = Scanner(model=model, rules=withheld_rules).scan_path(str(path))
        assert withheld.verdict != "clean", withheld.findings
        assert "FS112" in {f.rule_id for f in withheld.findings if f.subject == "os.system"}
