"""The reviewed knowledge base: typed entries read from TOML, validated with precise errors.

Shipped data lives in `fastscan/rules/*.toml`; a user file may add entries and suppressions
(see `ruleset.py`). Every entry carries a class, a category, a reason and a reference.

Tables a file may contain:
  [[entry]]              module, name | names, class, category, reason, ref, classes_only?
  [[module_alias]]       module, target, reason, ref      (C-level / legacy spelling -> public)
  [[attribute_alias]]    module, attribute, target, reason, ref   (e.g. random._os -> os)
  [[dangerous_attribute]] name | names, category, reason, ref     (e.g. __globals__)
User files use [[allow]] / [[deny]] (an entry with the class implied) and [[suppress]].
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..index import Reach

SAFE = "safe"
UNKNOWN = "unknown"
DANGEROUS = "dangerous"
CLASSES = (SAFE, UNKNOWN, DANGEROUS)

# Every behaviour category -> the classes an entry of it may have, in the order of the `cat_*`
# feature columns (the model's contract). Features and messages use them, so the set is closed:
# dangerous ones are sinks; unknown ones are reviewed names that are neither allowed nor sinks
# (they still make a file suspicious).
_CATEGORY_CLASSES: dict[str, tuple[str, ...]] = {}


def _closed_category(name: str, *classes: str) -> str:
    if name in _CATEGORY_CLASSES:
        raise ValueError(f"duplicate category {name}")
    _CATEGORY_CLASSES[name] = classes
    return name


EXEC_SINK = _closed_category("exec_sink", DANGEROUS)
IMPORT_RESOLVER = _closed_category("import_resolver", DANGEROUS)
PROCESS = _closed_category("process", DANGEROUS)
NETWORK = _closed_category("network", DANGEROUS)
FILESYSTEM_WRITE = _closed_category("filesystem_write", DANGEROUS)
NESTED_LOADER = _closed_category("nested_loader", DANGEROUS)
CALLBACK_DISPATCH = _closed_category("callback_dispatch", DANGEROUS, UNKNOWN)
INTROSPECTION = _closed_category("introspection", DANGEROUS)
SCANNER_TAMPER = _closed_category("scanner_tamper", DANGEROUS)
CODE_CONSTRUCTION = _closed_category("code_construction", UNKNOWN)
DECODER = _closed_category("decoder", UNKNOWN)
REVIEW = _closed_category("review", UNKNOWN)
CATEGORIES = tuple(_CATEGORY_CLASSES)
DANGEROUS_CATEGORIES = frozenset(c for c, cls in _CATEGORY_CLASSES.items() if DANGEROUS in cls)
UNKNOWN_CATEGORIES = frozenset(c for c, cls in _CATEGORY_CLASSES.items() if UNKNOWN in cls)

# Reviewed callables whose result's type is fixed: `getattr(re._compile(p, f), "search")` reads
# the attribute of that type (rules/handed.py judges it like a GLOBAL `re.Pattern.search`). Small
# and reviewed: a callable not here has a result of unknown type, and no type is guessed for it.
RESULT_TYPES: Mapping[str, str] = {
    "re._compile": "re.Pattern",  # how a compiled pattern pickles (re._pickle)
    "re.compile": "re.Pattern",
}

_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME_RE = _MODULE_RE  # a name is an attribute path: same grammar as a dotted module
_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]*$")

_ENTRY_KEYS = {"module", "name", "names", "class", "category", "reason", "ref", "classes_only"}
_MODULE_ALIAS_KEYS = {"module", "target", "reason", "ref"}
_ATTRIBUTE_ALIAS_KEYS = {"module", "attribute", "target", "reason", "ref"}
_DANGEROUS_ATTRIBUTE_KEYS = {"name", "names", "category", "reason", "ref"}


def result_type(made: Classification | None) -> tuple[str, str] | None:
    """(module, qualname) of the type every result of callable `made` has (RESULT_TYPES), or
    None: not listed there, or a sink by the rules in force."""
    typed = RESULT_TYPES.get(made.resolved) if made is not None and not made.is_dangerous else None
    if typed is None:
        return None
    module, _, qualname = typed.rpartition(".")
    return module, qualname


class RuleConfigError(ValueError):
    """A rule file is malformed; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class RuleEntry:
    entry_id: str  # "<source>:<module>:<name>", unique and stable across runs
    module: str  # as written (normalised through module aliases when indexed)
    name: str  # "*" for the whole module and its sub-modules, else an attribute path
    verdict_class: str  # safe | unknown | dangerous
    category: str
    reason: str
    ref: str
    classes_only: bool = False  # a safe "*" entry that only covers CamelCase names
    source: str = ""  # file the entry came from
    user: bool = False  # from a user configuration file (wins over shipped entries)

    @property
    def is_wildcard(self) -> bool:
        return self.name == "*"


@dataclass(frozen=True, slots=True)
class Classification:
    verdict_class: str  # safe | unknown | dangerous
    category: str  # behaviour class (exec_sink, …) or "" when no entry matched
    entry_id: str  # the deciding entry, "" when none
    reason: str
    ref: str
    resolved: str = ""  # module.qualname after aliases, e.g. "os.system" for random._os.system
    dotted: bool = False  # name is an attribute path that is not itself a reviewed entry
    through_allowlisted: bool = False  # … and it starts in a module with safe entries
    # A reviewed decision the index does not override: an exact safe entry, or a reviewed
    # neither-safe-nor-sink entry (code construction, callback dispatch: graded by their shapes).
    pinned: bool = False
    # What the ecosystem index knows (indexed.py): "" (module not indexed), known, undefined.
    index: str = ""
    package: str = ""
    kind: str = ""  # class | function | builtin | module | constant
    origin: str = ""  # where an alias is defined
    reaches: tuple[Reach, ...] = ()  # load-time hook -> sink paths
    # Decided by a shipped module-wide entry (`name = "*"`), not an exact name nor a user's file.
    wildcard: bool = False
    # The module-wide deny answer an index-read class yielded from (indexed.yield_to_index);
    # the engine restores it when the pickle constructs the class (indexed.CONSTRUCTING).
    denied_by: Classification | None = None

    @property
    def is_safe(self) -> bool:
        return self.verdict_class == SAFE

    @property
    def is_dangerous(self) -> bool:
        return self.verdict_class == DANGEROUS


@dataclass(slots=True)
class KnowledgeBase:
    """Everything read from one or more rule files, before indexing."""

    entries: list[RuleEntry] = field(default_factory=list)
    module_aliases: dict[str, str] = field(default_factory=dict)
    attribute_aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    dangerous_attributes: dict[str, RuleEntry] = field(default_factory=dict)
    digest_parts: list[bytes] = field(default_factory=list)

    def extend(self, other: KnowledgeBase) -> None:
        self.entries.extend(other.entries)
        self.module_aliases.update(other.module_aliases)
        self.attribute_aliases.update(other.attribute_aliases)
        self.dangerous_attributes.update(other.dangerous_attributes)
        self.digest_parts.extend(other.digest_parts)

    @property
    def digest(self) -> str:
        """sha256 over the rule files' bytes, for output metadata ("rules hash")."""
        h = hashlib.sha256()
        for part in self.digest_parts:
            h.update(hashlib.sha256(part).digest())
        return h.hexdigest()


class _Where:
    """Formats error locations: file, table, index, and the entry's module:name if known."""

    def __init__(self, source: str, table: str, index: int, item: Mapping[str, Any]) -> None:
        label = item.get("module", "")
        name = item.get("name", item.get("names", item.get("attribute", "")))
        self.text = f"{source}: [[{table}]] #{index + 1}"
        if label or name:
            self.text += f" ({label}:{name})"

    def error(self, problem: str) -> RuleConfigError:
        return RuleConfigError(f"{self.text}: {problem}")


def _text(where: _Where, item: Mapping[str, Any], key: str, *, default: str | None = None) -> str:
    value = item.get(key, default)
    if value is None:
        raise where.error(f"missing required key {key!r}")
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"{key!r} must be a non-empty string")
    return value.strip()


def _check_keys(where: _Where, item: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise where.error(
            f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _names(where: _Where, item: Mapping[str, Any], *, wildcard: bool) -> list[str]:
    if ("name" in item) == ("names" in item):
        raise where.error("give exactly one of 'name' or 'names'")
    raw = [item["name"]] if "name" in item else item["names"]
    if not isinstance(raw, list) or not raw:
        raise where.error("'names' must be a non-empty list of strings")
    out = []
    for value in raw:
        if not isinstance(value, str):
            raise where.error(f"name {value!r} is not a string")
        name = value.strip()
        if not (wildcard and name == "*") and not _NAME_RE.match(name):
            raise where.error(
                f"name {name!r} is not an attribute path" + (" or '*'" if wildcard else "")
            )
        out.append(name)
    if len(set(out)) != len(out):
        raise where.error("duplicate names in 'names'")
    return out


def _module(where: _Where, item: Mapping[str, Any], key: str = "module") -> str:
    value = _text(where, item, key)
    if not _MODULE_RE.match(value):
        raise where.error(f"{key} {value!r} is not a dotted module name")
    return value


def _category(where: _Where, verdict_class: str, value: str) -> str:
    if not _CATEGORY_RE.match(value):
        raise where.error(f"category {value!r} must be lower_snake_case")
    if verdict_class == DANGEROUS and value not in DANGEROUS_CATEGORIES:
        raise where.error(
            f"dangerous category {value!r} is not one of {', '.join(sorted(DANGEROUS_CATEGORIES))}"
        )
    if verdict_class == UNKNOWN and value not in UNKNOWN_CATEGORIES:
        raise where.error(
            f"unknown-class category {value!r} is not one of "
            + ", ".join(sorted(UNKNOWN_CATEGORIES))
        )
    return value


def parse_entry(
    item: Mapping[str, Any],
    where: _Where,
    *,
    source: str,
    user: bool,
    verdict_class: str | None = None,
    default_ref: str | None = None,
    default_category: str | None = None,
    extra_keys: Iterable[str] = (),
) -> list[RuleEntry]:
    """One [[entry]]/[[allow]]/[[deny]] table -> one RuleEntry per name."""
    if not isinstance(item, Mapping):
        raise where.error("entry must be a table")
    allowed = set(_ENTRY_KEYS) | set(extra_keys)
    if verdict_class is not None:
        allowed.discard("class")
    _check_keys(where, item, allowed)
    module = _module(where, item)
    if verdict_class is None:
        verdict_class = _text(where, item, "class")
        if verdict_class not in CLASSES:
            raise where.error(f"class {verdict_class!r} is not one of {', '.join(CLASSES)}")
    category = _category(
        where, verdict_class, _text(where, item, "category", default=default_category)
    )
    reason = _text(where, item, "reason")
    ref = _text(where, item, "ref", default=default_ref)
    classes_only = item.get("classes_only", False)
    if not isinstance(classes_only, bool):
        raise where.error("'classes_only' must be true or false")
    names = _names(where, item, wildcard=True)
    if classes_only and (names != ["*"] or verdict_class != SAFE):
        raise where.error("'classes_only' only applies to a safe entry with name '*'")
    return [
        RuleEntry(
            entry_id=f"{source}:{module}:{name}",
            module=module,
            name=name,
            verdict_class=verdict_class,
            category=category,
            reason=reason,
            ref=ref,
            classes_only=classes_only,
            source=source,
            user=user,
        )
        for name in names
    ]


def _tables(doc: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    tables = doc.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise RuleConfigError(f"{source}: '{key}' must be an array of tables ([[{key}]])")
    return tables


def parse_shipped(doc: Mapping[str, Any], source: str) -> KnowledgeBase:
    """A shipped rule file (already TOML-decoded) -> KnowledgeBase; raises RuleConfigError."""
    known = {"entry", "module_alias", "attribute_alias", "dangerous_attribute"}
    extra = sorted(set(doc) - known)
    if extra:
        raise RuleConfigError(f"{source}: unknown top-level table(s) {', '.join(extra)}")
    kb = KnowledgeBase()
    for i, item in enumerate(_tables(doc, "entry", source)):
        kb.entries.extend(
            parse_entry(item, _Where(source, "entry", i, item), source=source, user=False)
        )
    for i, item in enumerate(_tables(doc, "module_alias", source)):
        where = _Where(source, "module_alias", i, item)
        _check_keys(where, item, _MODULE_ALIAS_KEYS)
        _text(where, item, "reason")
        _text(where, item, "ref")
        kb.module_aliases[_module(where, item)] = _module(where, item, "target")
    for i, item in enumerate(_tables(doc, "attribute_alias", source)):
        where = _Where(source, "attribute_alias", i, item)
        _check_keys(where, item, _ATTRIBUTE_ALIAS_KEYS)
        _text(where, item, "reason")
        _text(where, item, "ref")
        attribute = _text(where, item, "attribute")
        if not _MODULE_RE.match(attribute) or "." in attribute:
            raise where.error(f"attribute {attribute!r} must be one identifier")
        kb.attribute_aliases[(_module(where, item), attribute)] = _module(where, item, "target")
    for i, item in enumerate(_tables(doc, "dangerous_attribute", source)):
        where = _Where(source, "dangerous_attribute", i, item)
        _check_keys(where, item, _DANGEROUS_ATTRIBUTE_KEYS)
        category = _category(where, DANGEROUS, _text(where, item, "category"))
        reason, ref = _text(where, item, "reason"), _text(where, item, "ref")
        for name in _names(where, item, wildcard=False):
            kb.dangerous_attributes[name] = RuleEntry(
                f"{source}:*:{name}", "*", name, DANGEROUS, category, reason, ref, source=source
            )
    return kb


def read_toml(data: bytes, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuleConfigError(f"{source}: not valid TOML: {exc}") from None


def load_shipped() -> KnowledgeBase:
    """Every `fastscan/rules/*.toml`, in file-name order, checked for cross-file consistency."""
    kb = KnowledgeBase()
    files = sorted(
        (f for f in resources.files(__package__).iterdir() if f.name.endswith(".toml")),
        key=lambda f: f.name,
    )
    for f in files:
        data = f.read_bytes()
        kb.extend(parse_shipped(read_toml(data, f.name), f.name))
        kb.digest_parts.append(f.name.encode() + b"\0" + data)
    check_consistency(kb)
    return kb


def check_consistency(kb: KnowledgeBase) -> None:
    """Alias chains must terminate, and one (module, name) may be listed once per class layer."""
    for start in kb.module_aliases:
        seen, current = {start}, kb.module_aliases[start]
        while current in kb.module_aliases:
            if current in seen:
                raise RuleConfigError(f"module alias cycle through {start!r}")
            seen.add(current)
            current = kb.module_aliases[current]
    seen_keys: dict[tuple[str, str, bool], RuleEntry] = {}
    for e in kb.entries:
        key = (e.module, e.name, e.user)
        if key in seen_keys:
            first = seen_keys[key]
            raise RuleConfigError(
                f"{e.source}: {e.module}:{e.name} listed twice (also in {first.source}, "
                f"as {first.verdict_class}); keep one entry"
            )
        seen_keys[key] = e
