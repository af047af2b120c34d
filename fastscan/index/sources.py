"""Where module sources come from, read as bytes and never imported: the running Python's
standard library, wheel files (read straight from the zip), unpacked directories, installed
distributions (through their RECORD, i.e. metadata only) and whole site-packages directories.

Each source yields `ModuleInfo`s; `build_bytes` turns any number of sources into index bytes.
"""

from __future__ import annotations

import itertools
import os
import platform
import re
import sys
import sysconfig
import zipfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from .build import analyse, module_symbols
from .namespace import assigned_from_outside
from .store import encode
from .symbols import ModuleInfo, opaque_module, read_module

STDLIB = "python"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\..*(?:so|pyd)$")
# Test suites are large and never referenced by model files; `test.support` is (docs/threats.md F).
_SKIP_DIRS = {"tests", "test", "testing_data", "__pycache__", "site-packages", "idle_test"}
_MAX_SOURCE = 8 << 20  # generated modules beyond this are skipped
# C modules of other platforms' (or other versions') standard libraries that pickles can name;
# indexed as opaque so their sink primitives (sinks.py) are known wherever the index is built.
_OTHER_C_MODULES = ("nt", "_winapi", "msvcrt", "winreg", "_overlapped", "_interpreters")


def module_name(rel: str) -> tuple[str, bool] | None:
    """ "a/b/c.py" -> ("a.b.c", False); "a/b/__init__.py" -> ("a.b", True); None to skip."""
    parts = rel.replace("\\", "/").split("/")
    leaf = parts[-1]
    if leaf.endswith(".py"):
        stem = leaf[:-3]
    else:
        match = _EXT.match(leaf)
        if match is None:
            return None
        stem = match.group(1)
    dirs = parts[:-1]
    if any(d in _SKIP_DIRS for d in dirs) and not rel.startswith("test/support/"):
        return None
    if not all(_IDENT.match(d) for d in dirs) or not _IDENT.match(stem):
        return None
    if stem == "__init__":
        return (".".join(dirs), True) if dirs else None
    return ".".join([*dirs, stem]), False


def _modules(
    files: Iterable[tuple[str, Any]], package: str, version: str, read: Any
) -> Iterator[ModuleInfo]:
    """`files` are (relative path, handle); `read(handle)` gives bytes."""
    for rel, handle in sorted(files, key=lambda f: f[0]):
        named = module_name(rel)
        if named is None:
            continue
        name, is_pkg = named
        if rel.endswith(".py"):
            data = read(handle)
            if data is not None and len(data) <= _MAX_SOURCE:
                yield read_module(name, data, package, version, is_pkg)
        else:
            yield opaque_module(name, package, version)


def _stdlib_files(base: Path) -> list[tuple[str, Path]]:
    files = [
        (p.relative_to(base).as_posix(), p)
        for p in base.rglob("*.py")
        if "site-packages" not in p.parts and "test" not in p.relative_to(base).parts[:1]
    ]
    files += [
        (p.relative_to(base).as_posix(), p)
        for p in (base / "test" / "support").rglob("*.py")
        if (base / "test" / "support").is_dir()
    ]
    if (base / "test" / "__init__.py").is_file():
        files.append(("test/__init__.py", base / "test" / "__init__.py"))
    dynload = base / "lib-dynload"
    if dynload.is_dir():
        files += [(p.name, p) for p in dynload.iterdir()]
    return files


def stdlib(root: str | None = None) -> Iterator[ModuleInfo]:
    """The running interpreter's standard library (sources, built-in and extension modules)."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    version = platform.python_version()
    yield from _modules(_stdlib_files(base), STDLIB, version, _read_path)
    for name in sorted(set(sys.builtin_module_names) | {"builtins", *_OTHER_C_MODULES}):
        yield opaque_module(name, STDLIB, version)


def other_stdlib(root: str | os.PathLike[str], version: str = "") -> Iterator[ModuleInfo]:
    """Another Python's standard library (`.../lib/python3.13`), sources only (its built-in
    modules are not files); `with_other_stdlibs` merges it under the running one's."""
    base = Path(root)
    yield from _modules(
        _stdlib_files(base), STDLIB, version or base.name.removeprefix("python"), _read_path
    )


def with_other_stdlibs(
    main: Iterable[ModuleInfo], others: Iterable[Iterable[ModuleInfo]]
) -> Iterator[ModuleInfo]:
    """The running interpreter's stdlib plus what the other supported Pythons' add: modules it
    lacks (`_pyrepl`), and names a shared module gained (`_aix_support._read_cmd_output`,
    3.12+). Pickles written there can name them. Where both define a name, the running
    interpreter's definition is kept (its calls are the ones followed)."""
    extra: dict[str, ModuleInfo] = {}
    for stream in others:
        for m in stream:
            if m.name in extra:
                _merge(extra[m.name], m)
            else:
                extra[m.name] = m
    for m in main:
        newer = extra.pop(m.name, None)
        if newer is not None:
            _merge(m, newer)
        yield m
    yield from (extra[name] for name in sorted(extra))


def _merge(into: ModuleInfo, other: ModuleInfo) -> None:
    """Add `other`'s top-level names that `into` lacks, with their classes and functions."""
    if into.opaque or other.opaque:
        return
    for name, binding in other.bindings.items():
        if name in into.bindings:
            continue
        into.bindings[name] = binding
        for table in ("functions", "classes"):
            mine, theirs = getattr(into, table), getattr(other, table)
            for qual in theirs:
                if (qual == name or qual.startswith(name + ".")) and qual not in mine:
                    mine[qual] = theirs[qual]
    into.stars += [s for s in other.stars if s not in into.stars]


def _read_path(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def wheel(path: str | os.PathLike[str]) -> Iterator[ModuleInfo]:
    """A .whl file, read from the zip: name and version from the file name."""
    name = Path(path).name
    dist, version = name.split("-")[:2]
    with zipfile.ZipFile(path) as zf:
        files = []
        for info in zf.infolist():
            rel = info.filename
            top = rel.split("/")[0]
            if top.endswith(".dist-info"):
                continue
            if top.endswith(".data"):  # purelib/platlib payloads are modules too
                bits = rel.split("/")
                if len(bits) < 3 or bits[1] not in ("purelib", "platlib"):
                    continue
                rel = "/".join(bits[2:])
            files.append((rel, info))
        yield from _modules(files, _canonical(dist), version, zf.read)


def directory(
    path: str | os.PathLike[str], package: str = "", version: str = "0"
) -> Iterator[ModuleInfo]:
    """An unpacked tree: a package directory (has __init__.py) or a root holding packages."""
    p = Path(path).resolve()
    root = p.parent if (p / "__init__.py").is_file() else p
    files = [
        (f.relative_to(root).as_posix(), f)
        for f in sorted(p.rglob("*"))
        if f.is_file() and (f.suffix == ".py" or _EXT.match(f.name))
    ]
    yield from _modules(files, package or p.name, version, _read_path)


def distribution(name: str) -> Iterator[ModuleInfo]:
    """An installed distribution, found through its metadata (RECORD), never imported."""
    return distribution_files(metadata.distribution(name))


def site_packages(path: str | os.PathLike[str] | None = None) -> Iterator[ModuleInfo]:
    """Every distribution installed under `path` (default: this environment's purelib)."""
    where = [os.fspath(path)] if path else [sysconfig.get_paths()["purelib"]]
    dists = sorted(
        metadata.distributions(path=where), key=lambda d: _canonical(d.metadata["Name"] or "")
    )
    for dist in dists:
        if dist.metadata["Name"]:
            yield from distribution_files(dist)


def distribution_files(dist: metadata.Distribution) -> Iterator[ModuleInfo]:
    files = []
    for f in dist.files or ():
        rel = f.as_posix()
        if rel.endswith(".py") or _EXT.match(rel.rsplit("/", 1)[-1]):
            files.append((rel, Path(str(dist.locate_file(f)))))
    yield from _modules(files, _canonical(dist.metadata["Name"]), dist.version, _read_path)


def from_spec(spec: str) -> Iterator[ModuleInfo]:
    """A path (wheel or directory), "python" for the stdlib, or an installed distribution."""
    if spec == STDLIB:
        return stdlib()
    if spec.endswith(".whl") and os.path.isfile(spec):
        return wheel(spec)
    if os.path.isdir(spec):
        return directory(spec)
    try:
        metadata.distribution(spec)
    except metadata.PackageNotFoundError:
        raise ValueError(f"{spec}: not a wheel, a directory or an installed distribution") from None
    return distribution(spec)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_bytes(modules: Iterable[ModuleInfo], context: Iterable[ModuleInfo] = ()) -> bytes:
    """Analyse all modules together and serialise the index (deterministic). `context` modules
    (e.g. the stdlib under a user's packages) are followed by calls but not written."""
    mods = list(modules)
    written = {m.name for m in mods}
    resolver, graph = analyse(itertools.chain(mods, context))
    packages = sorted({(m.package, m.version) for m in mods})
    pkg_index = {p: i for i, p in enumerate(packages)}
    sections: dict[str, tuple[int, dict[str, Any]]] = {}
    outside = assigned_from_outside(resolver.mods)
    for name in sorted(written):
        m = resolver.mods[name]
        sec: dict[str, Any] = {"o": m.opaque, "n": {}, "b": {}, "r": {}, "s": []}
        dynamic = sorted({*m.dynamic, *outside.get(name, ())})
        if dynamic and not m.opaque:
            sec["d"] = dynamic  # open namespace: why (namespace.py)
        if not m.opaque:
            names, stars = module_symbols(m, resolver)
            sec["n"] = {k: [v[0], "" if v[1] == name else v[1], v[2]] for k, v in names.items()}
            sec["s"] = stars
            for qual in sorted(m.classes):
                mro = resolver.mro(("class", name, qual))[1:]
                if mro:
                    sec["b"][qual] = [list(r) for r in mro]
            own = sorted(
                {
                    (v[0], v[2])
                    for v in names.values()
                    if v[1] == name and v[0] in ("class", "function")
                }
            )
            for kind, qual in own:
                rows = graph.symbol_reaches((kind, name, qual))
                if rows:
                    sec["r"][qual] = [[h, c, list(p)] for h, c, p in rows]
        sections[name] = (pkg_index[(m.package, m.version)], sec)
    return encode(packages, sections)
