"""The index file and its reader: a small header plus one compressed section per module.

Layout (no timestamps, everything sorted, so one input gives one byte string):
    b"FSIDX\x01\n" | u32 modules, u32 name bytes, u32 meta bytes (big-endian)
    | module names, sorted, "\n"-joined | zlib(JSON {"format", "packages": [[name, version]]})
    | u16 package index per module | u32 section offsets (n + 1, little-endian) | sections
    section: zlib(JSON {"o": opaque, "n": {name: [kind, module, qual]},
                        "b": {class: [[kind, module, qual], ...]},     (bases, MRO order)
                        "r": {qual: [[hook, category, [path...]], ...]}, "s": [star modules],
                        "d": [why the namespace is open] (only when it is; namespace.py)})
Loading maps the file and splits the name table (a few ms for ~35k modules); a module's section
is inflated on its first lookup. Chosen by measurement: a JSON header with one row per module
took ~100 ms to parse at that size; one whole-file JSON blob is slower still; sqlite3 pages
carry free-space garbage unless vacuumed and need a file on disk. Never pickle.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .sinks import direct_category

MAGIC = b"FSIDX\x01\n"
FORMAT = 1
_COUNTS = struct.Struct(">III")  # modules, bytes of the name table, bytes of the metadata
_MAX_WALK = 32
_MEMO_LIMIT = 200_000


class IndexFormatError(ValueError):
    """The file is not a fastscan index (or is truncated / corrupt)."""


# The load-time hooks a class's Reach can name, and the method each one is (the builder follows
# them; the rules ask which methods a reach covers).
HOOKS: tuple[tuple[str, str], ...] = (
    ("new", "__new__"),
    ("init", "__init__"),
    ("setstate", "__setstate__"),
    ("setitem", "__setitem__"),
    ("append", "append"),
    ("extend", "extend"),
    ("add", "add"),
)


@dataclass(frozen=True, slots=True)
class Reach:
    hook: str  # call | new | init | setstate | setitem | append | extend | add | method (weaker)
    category: str  # a fastscan.rules.knowledge.DANGEROUS_CATEGORIES member
    path: tuple[str, ...]  # shortest path from the hook to the sink primitive


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str  # "module.qualname" as asked
    origin: str  # "module.qualname" where it is really defined
    kind: str  # class | function | builtin | module | constant | unresolved (alias out of index)
    package: str  # distribution; "python" for the standard library
    version: str
    reaches: tuple[Reach, ...]  # empty: reaches no sink through any load-time hook


_Ref = tuple[str, str, str]


class Index:
    """Base: name resolution over `_section`; subclasses provide sections and packages."""

    version: str = f"fsidx-{FORMAT}"

    @property
    def digest(self) -> str:
        raise NotImplementedError

    def _section(self, module: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def _package(self, module: str) -> tuple[str, str] | None:
        raise NotImplementedError

    def modules(self) -> list[str]:
        raise NotImplementedError

    def has_module(self, module: str) -> bool:
        return self._package(module) is not None

    def package_of(self, module: str) -> str | None:
        pkg = self._package(module)
        return pkg[0] if pkg else None

    def open_ended(self, module: str) -> bool:
        """Whether `module` may define names its source does not show (an open namespace:
        `open_reasons`). A name missing there is not evidence of a typo."""
        return bool(self.open_reasons(module))

    def open_reasons(self, module: str) -> list[str]:
        """Why `module`'s namespace is open (`namespace.py`); empty when it is closed: every
        name it has at run time is one the index read."""
        sec = self._section(module)
        if sec is None:
            return []
        out = list(sec.get("d", ()))  # written by the build; older files have none
        if "__getattr__" in sec["n"]:
            out.append("module __getattr__ (PEP 562)")
        out += [
            f"star import from unread {star}" for star in sec["s"] if self._section(star) is None
        ]
        return out

    def without(self, packages: Iterable[str]) -> Index:
        return _Without(self, frozenset(packages))

    def lookup(self, module: str, qualname: str) -> Symbol | None:
        memo: dict[tuple[str, str], Symbol | None] | None = self.__dict__.get("_lookups")
        if memo is None:
            memo = self.__dict__["_lookups"] = {}
        key = (module, qualname)
        if key not in memo:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()  # a hostile corpus cannot grow it without bound
            memo[key] = self._lookup(module, qualname)
        return memo[key]

    def _lookup(self, module: str, qualname: str) -> Symbol | None:
        parts = tuple(p for p in qualname.split(".") if p) if qualname else ()
        ref = self._resolve(module, parts, 0)
        if ref is None:
            return None
        kind, omod, oqual = ref
        origin = f"{omod}.{oqual}" if oqual else omod
        pkg = self._package(omod) or self._package(module) or ("", "")
        return Symbol(
            name=f"{module}.{qualname}" if qualname else module,
            origin=origin,
            kind=kind,
            package=pkg[0],
            version=pkg[1],
            reaches=self._reaches(kind, omod, oqual),
        )

    def _reaches(self, kind: str, module: str, qual: str) -> tuple[Reach, ...]:
        if kind in ("builtin", "constant"):
            cat = direct_category(f"{module}.{qual}")
            if cat is not None:
                return (Reach("call", cat, (f"{module}.{qual}",)),)
        if kind in ("module", "unresolved"):
            return ()
        sec = self._section(module)
        rows = sec["r"].get(qual, ()) if sec else ()
        return tuple(Reach(h, c, tuple(p)) for h, c, p in rows)

    def _resolve(self, module: str, parts: tuple[str, ...], depth: int) -> _Ref | None:
        if depth > _MAX_WALK:
            return None
        sec = self._section(module)
        if sec is None:
            return None
        if not parts:
            return ("module", module, "")
        if sec["o"]:
            return ("builtin", module, ".".join(parts))
        names = sec["n"]
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            hit = names.get(key)
            if hit is not None:
                return self._follow((hit[0], hit[1] or module, hit[2]), parts[i:], depth)
        sub = f"{module}.{parts[0]}"
        if self.has_module(sub):
            return self._resolve(sub, parts[1:], depth + 1)
        for star in sec["s"]:
            found = self._resolve(star, parts, depth + 1)
            if found is not None:
                return found
        return None

    def _follow(self, ref: _Ref, rest: tuple[str, ...], depth: int) -> _Ref | None:
        kind, module, qual = ref
        if kind == "unresolved":  # an alias whose origin was outside the build's index
            found = self._resolve(module, (qual,), depth + 1)
            if found is None:
                return None if rest else ref
            kind, module, qual = found
        if not rest:
            return (kind, module, qual)
        if kind == "module":
            return self._resolve(module, rest, depth + 1)
        if kind == "builtin":
            return ("builtin", module, ".".join((qual, *rest)))
        if kind != "class":
            return None
        sec = self._section(module)
        if sec is None:
            return None
        member = sec["n"].get(f"{qual}.{rest[0]}")
        if member is not None:
            return self._follow((member[0], member[1] or module, member[2]), rest[1:], depth + 1)
        for bkind, bmod, bqual in sec["b"].get(qual, ()):
            if bkind == "builtin":
                if bqual != "object":
                    return ("builtin", bmod, ".".join((bqual, *rest)))
                continue
            found = self._follow((bkind, bmod, bqual), rest, depth + 1)
            if found is not None:
                return found
        return None


class _FileIndex(Index):
    def __init__(self, data: bytes | mmap.mmap, source: str = "") -> None:
        self._data = data
        self.source = source or "index"
        head = len(MAGIC) + _COUNTS.size
        if len(data) < head or data[: len(MAGIC)] != MAGIC:
            raise IndexFormatError(f"{self.source}: not a fastscan index file")
        n, names_len, meta_len = _COUNTS.unpack_from(data, len(MAGIC))
        pos = head
        try:
            names = bytes(data[pos : pos + names_len]).decode() if n else ""
            pos += names_len
            meta = json.loads(zlib.decompress(data[pos : pos + meta_len]))
            pos += meta_len
            pkg = array("H", data[pos : pos + 2 * n])
            pos += 2 * n
            off = array("I", data[pos : pos + 4 * (n + 1)])
            pos += 4 * (n + 1)
        except (zlib.error, ValueError, UnicodeDecodeError) as exc:
            raise IndexFormatError(f"{self.source}: corrupt header: {exc}") from exc
        if sys.byteorder == "big":
            pkg.byteswap()
            off.byteswap()
        self._names = names.split("\n") if n else []
        if meta.get("format") != FORMAT or len(self._names) != n or len(off) != n + 1:
            raise IndexFormatError(f"{self.source}: unsupported or truncated index")
        if pos + off[n] != len(data):
            raise IndexFormatError(f"{self.source}: truncated index")
        self._base = pos
        self._pkg = pkg
        self._off = off
        self._packages: list[tuple[str, str]] = [(p[0], p[1]) for p in meta["packages"]]
        self._pos = {name: i for i, name in enumerate(self._names)}
        self._cache: dict[str, dict[str, Any]] = {}

    @cached_property
    def _digest(self) -> str:
        return hashlib.sha256(self._data).hexdigest()

    @property
    def digest(self) -> str:
        return self._digest

    def modules(self) -> list[str]:
        return list(self._names)

    def packages(self) -> list[tuple[str, str]]:
        return list(self._packages)

    def _package(self, module: str) -> tuple[str, str] | None:
        i = self._pos.get(module)
        return None if i is None else self._packages[self._pkg[i]]

    def _section(self, module: str) -> dict[str, Any] | None:
        sec = self._cache.get(module)
        if sec is None:
            i = self._pos.get(module)
            if i is None:
                return None
            raw = self._data[self._base + self._off[i] : self._base + self._off[i + 1]]
            try:
                sec = json.loads(zlib.decompress(raw))
            except (zlib.error, ValueError) as exc:
                raise IndexFormatError(f"{self.source}: corrupt section {module}: {exc}") from exc
            self._cache[module] = sec
        return sec


class _Combined(Index):
    def __init__(self, parts: tuple[Index, ...]) -> None:
        self._parts = parts
        self.version = "+".join(p.version for p in parts)

    @property
    def digest(self) -> str:
        return hashlib.sha256("+".join(p.digest for p in self._parts).encode()).hexdigest()

    def modules(self) -> list[str]:
        return sorted({m for p in self._parts for m in p.modules()})

    def _owner(self, module: str) -> Index | None:
        for part in self._parts:
            if part._package(module) is not None:
                return part
        return None

    def _package(self, module: str) -> tuple[str, str] | None:
        owner = self._owner(module)
        return owner._package(module) if owner else None

    def _section(self, module: str) -> dict[str, Any] | None:
        owner = self._owner(module)
        return owner._section(module) if owner else None


class _Without(Index):
    def __init__(self, base: Index, hidden: frozenset[str]) -> None:
        self._base_index = base
        self._hidden = hidden
        self.version = base.version

    @property
    def digest(self) -> str:
        return self._base_index.digest

    def modules(self) -> list[str]:
        return [m for m in self._base_index.modules() if self.has_module(m)]

    def _package(self, module: str) -> tuple[str, str] | None:
        pkg = self._base_index._package(module)
        return None if pkg is None or pkg[0] in self._hidden else pkg

    def _section(self, module: str) -> dict[str, Any] | None:
        return self._base_index._section(module) if self._package(module) else None


def combine(*indexes: Index) -> Index:
    """The first index that has a module answers for it (a user index over the shipped one)."""
    if not indexes:
        raise ValueError("combine() needs at least one index")
    return indexes[0] if len(indexes) == 1 else _Combined(tuple(indexes))


def load_index(path: str | os.PathLike[str]) -> Index:
    """Open an index file (memory-mapped: sections are read on first use)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        data: bytes | mmap.mmap = (
            mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        )
    return _FileIndex(data, os.fspath(path))


def _dump(obj: object) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return zlib.compress(text.encode(), 9)


def encode(
    packages: list[tuple[str, str]], sections: dict[str, tuple[int, dict[str, Any]]]
) -> bytes:
    """Serialise: `sections` maps module -> (package index, section dict)."""
    names = sorted(sections)
    blobs = [_dump(sections[m][1]) for m in names]
    pkg = array("H", [sections[m][0] for m in names])
    off = array("I", [0])
    for blob in blobs:
        off.append(off[-1] + len(blob))
    if sys.byteorder == "big":
        pkg.byteswap()
        off.byteswap()
    names_blob = "\n".join(names).encode()
    meta = _dump({"format": FORMAT, "packages": [list(p) for p in packages]})
    counts = _COUNTS.pack(len(names), len(names_blob), len(meta))
    return b"".join([MAGIC, counts, names_blob, meta, pkg.tobytes(), off.tobytes(), *blobs])
