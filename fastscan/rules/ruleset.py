"""RuleSet: the shipped knowledge base merged with an optional user configuration file.

User file format (TOML):

    [[allow]]                     # extra safe names (class implied)
    module = "mylab.models"
    name = "*"                    # or names = ["Net", "Head"]
    reason = "our own model classes"
    ref = "TICKET-123"            # optional, defaults to the config path
    override = false              # must be true to allow what a shipped entry calls dangerous

    [[deny]]                      # extra sinks (class implied)
    module = "mylab.tools"
    name = "run"
    category = "process"          # one of knowledge.DANGEROUS_CATEGORIES
    reason = "shells out"

    index = ["ours.index"]        # ecosystem index files of our own packages (relative paths
                                  # are read from this file's directory), added to the shipped one

    [[suppress]]                  # mark findings suppressed (kept in the row, not counted);
    rule = "FS103"                # every field but rule is an optional glob
    path = "legacy/*.pkl"         # the file's path relative to the scan root, as given, or absolute
    subject = "mylab.*"           # matched against Finding.subject
    member = "archive/*"          # matched against Finding.member
    reason = "known old format"

User entries win over shipped ones at the same specificity (see resolve.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..findings import REGISTRY, Finding
from .indexed import load_user_indexes, shipped_index
from .knowledge import (
    DANGEROUS,
    SAFE,
    Classification,
    KnowledgeBase,
    RuleConfigError,
    RuleEntry,
    _check_keys,
    _tables,
    _text,
    _Where,
    load_shipped,
    parse_entry,
    read_toml,
)
from .resolve import Resolver

if TYPE_CHECKING:
    from ..index import Index

_SUPPRESS_KEYS = {"rule", "path", "subject", "member", "reason"}


@dataclass(frozen=True, slots=True)
class Suppression:
    rule_id: str
    reason: str
    path: str = ""  # glob, "" = any
    subject: str = ""
    member: str = ""
    source: str = ""

    def matches(self, finding: Finding, paths: tuple[str, ...]) -> bool:
        return (
            finding.rule_id == self.rule_id
            and (not self.path or any(fnmatchcase(p, self.path) for p in paths))
            and (not self.subject or fnmatchcase(finding.subject, self.subject))
            and (not self.member or fnmatchcase(finding.member, self.member))
        )


class RuleSet:
    """Classifies globals and filters findings; immutable once built, safe to share per process."""

    def __init__(
        self,
        kb: KnowledgeBase,
        suppressions: Iterable[Suppression] = (),
        *,
        withheld: Iterable[str] = (),
        index: Index | None = None,
    ) -> None:
        self.knowledge = kb
        self.index = index
        self.resolver = Resolver(kb, withheld, index)
        self.suppressions: tuple[Suppression, ...] = tuple(suppressions)
        self._knowledge = (
            _IndexKnowledge(index, self.resolver.withheld) if index is not None else None
        )
        self._digest = kb.digest
        if self.resolver.withheld:  # a different classifier must never share a rules hash
            h = hashlib.sha256(self._digest.encode())
            h.update("\0".join(sorted(self.resolver.withheld)).encode())
            self._digest = h.hexdigest()

    def digest(self) -> str:
        """sha256 over the shipped rule files and the user file: the "rules hash" in outputs."""
        return self._digest

    def index_knowledge(self) -> _IndexKnowledge | None:
        """What the index knows, for call shapes and the know_* features (None without an
        index). Withheld names are unknown here too, as they are to `classify`."""
        return self._knowledge

    def index_versions(self) -> dict[str, str]:
        """The ecosystem index in use, for output metadata next to the rules hash."""
        if self.index is None:
            return {"index_version": "none", "index_hash": ""}
        return {"index_version": str(self.index.version), "index_hash": str(self.index.digest)}

    @classmethod
    def load(
        cls,
        config_path: str | os.PathLike[str] | None = None,
        index_paths: Iterable[str | os.PathLike[str]] = (),
    ) -> RuleSet:
        """Shipped rules, plus the user file at `config_path` when given; the shipped index
        combined with the files at `index_paths` and those the user file names."""
        extra = [os.fspath(p) for p in index_paths]
        if config_path is None and not extra:
            return default_ruleset()
        kb = KnowledgeBase()
        kb.extend(load_shipped())
        suppressions: list[Suppression] = []
        if config_path is not None:
            path = Path(config_path)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise RuleConfigError(f"{path}: cannot read rule configuration: {exc}") from None
            doc = read_toml(data, str(path))
            user_kb, suppressions = parse_user_config(doc, str(path), kb)
            kb.extend(user_kb)
            kb.digest_parts.append(b"user\0" + data)
            extra += [os.fspath(path.parent / p) for p in _index_key(doc, str(path))]
        try:
            index = load_user_indexes(extra, shipped_index())
        except (OSError, ValueError, RuntimeError) as exc:
            raise RuleConfigError(f"cannot load index: {exc}") from None
        return cls(kb, suppressions, index=index)

    def withholding(self, names: Iterable[str]) -> RuleSet:
        """A copy in which the dangerous names `names` (resolved `module.qualname`, as
        `Classification.resolved` spells them, e.g. "os.system") classify as unknown, exactly
        like a callable the denylist does not list: a stand-in for a novel gadget family.
        Allowlist, aliases, other sinks and suppressions are unchanged."""
        withheld = self.resolver.withheld | frozenset(names)
        return RuleSet(self.knowledge, self.suppressions, withheld=withheld, index=self.index)

    def dangerous_names(self, globals_: Iterable[tuple[str, str]]) -> set[str]:
        """Resolved names of the (module, name) pairs this ruleset classifies as dangerous:
        what `withholding` takes to hide them (a class whose wildcard yielded to the index
        too: the engine restores it when the pickle constructs the class)."""
        out = set()
        for module, name in globals_:
            hit = self.classify(module, name)
            if hit.is_dangerous or hit.denied_by is not None:
                out.add(hit.resolved)
        return out

    @property
    def entries(self) -> list[RuleEntry]:
        return self.knowledge.entries

    def classify(self, module: str, name: str) -> Classification:
        return self.resolver.classify(module, name)

    def suppress(self, findings: Iterable[Finding], path: str = "", rel: str = "") -> list[Finding]:
        """`findings`, those a user suppression matches marked `suppressed` (still listed, for
        the audit trail; `verdict.combine` does not count them). A `path` glob is tried on the
        path relative to the scan root (`rel`), the path as given and its absolute form."""
        if not self.suppressions:
            return list(findings)
        paths = _path_forms(path, rel)
        out = []
        for f in findings:
            hit = next((s for s in self.suppressions if s.matches(f, paths)), None)
            out.append(f if hit is None else replace(f, suppressed=f"{hit.source}: {hit.reason}"))
        return out


def _path_forms(path: str, rel: str) -> tuple[str, ...]:
    forms = [rel.replace(os.sep, "/")] if rel else []
    forms.append(path.replace(os.sep, "/"))
    if path and "://" not in path:
        forms.append(os.path.abspath(path).replace(os.sep, "/"))
    return tuple(dict.fromkeys(forms))


@lru_cache(maxsize=1)
def default_ruleset() -> RuleSet:
    """The shipped rules and the shipped index, loaded once per process."""
    return RuleSet(load_shipped(), index=shipped_index())


def _index_key(doc: Mapping[str, Any], source: str) -> list[str]:
    value = doc.get("index", [])
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise RuleConfigError(f"{source}: 'index' must be a path or a list of paths")
    return paths


def parse_user_config(
    doc: Mapping[str, Any], source: str, shipped: KnowledgeBase
) -> tuple[KnowledgeBase, list[Suppression]]:
    extra = sorted(set(doc) - {"allow", "deny", "suppress", "index"})
    if extra:
        raise RuleConfigError(
            f"{source}: unknown top-level table(s) {', '.join(extra)}; "
            "expected [[allow]], [[deny]], [[suppress]], index"
        )
    _index_key(doc, source)
    shipped_resolver = Resolver(shipped)
    kb = KnowledgeBase()
    for i, item in enumerate(_tables(doc, "allow", source)):
        where = _Where(source, "allow", i, item)
        entries = parse_entry(
            item,
            where,
            source=source,
            user=True,
            verdict_class=SAFE,
            default_ref=source,
            default_category="user_allow",
            extra_keys={"override"},
        )
        override = item.get("override", False)
        if not isinstance(override, bool):
            raise where.error("'override' must be true or false")
        if not override:
            for e in entries:
                clash = _shipped_sink_under(shipped, shipped_resolver, e)
                if clash:
                    raise where.error(
                        f"allows {clash}, which the shipped rules call dangerous; "
                        "set override = true if you really mean it"
                    )
        kb.entries.extend(entries)
    for i, item in enumerate(_tables(doc, "deny", source)):
        where = _Where(source, "deny", i, item)
        kb.entries.extend(
            parse_entry(
                item, where, source=source, user=True, verdict_class=DANGEROUS, default_ref=source
            )
        )
    suppressions = []
    for i, item in enumerate(_tables(doc, "suppress", source)):
        where = _Where(source, "suppress", i, item)
        _check_keys(where, item, _SUPPRESS_KEYS)
        rule_id = _text(where, item, "rule")
        if rule_id not in REGISTRY:
            raise where.error(f"rule {rule_id!r} does not exist")
        globs = {}
        for key in ("path", "subject", "member"):
            value = item.get(key, "")
            if not isinstance(value, str):
                raise where.error(f"{key!r} must be a string glob")
            globs[key] = value
        suppressions.append(
            Suppression(rule_id, _text(where, item, "reason"), source=source, **globs)
        )
    return kb, suppressions


def _shipped_sink_under(kb: KnowledgeBase, resolver: Resolver, entry: RuleEntry) -> str:
    """A shipped dangerous name the user's allow entry would cover, or ''."""
    if not entry.is_wildcard:
        hit = resolver.classify(entry.module, entry.name)
        return hit.resolved if hit.is_dangerous else ""
    covering = resolver.wildcard_for(entry.module)
    if covering is not None and covering.verdict_class == DANGEROUS:
        return f"{covering.module}.*"
    scope = resolver.normalise_module(entry.module)
    for e in kb.entries:
        module = resolver.normalise_module(e.module)
        if e.verdict_class == DANGEROUS and (module == scope or module.startswith(scope + ".")):
            return f"{module}.{e.name}"
    return ""


class _IndexKnowledge:
    """An index seen through a withholding: `lookup` answers None for withheld names (the
    novel-family experiment pretends nothing knows them yet)."""

    def __init__(self, index: Any, withheld: frozenset[str]) -> None:
        self._index = index
        self._withheld = withheld

    def lookup(self, module: str, qualname: str) -> Any:
        if self._withheld and f"{module}.{qualname}" in self._withheld:
            return None
        return self._index.lookup(module, qualname)
