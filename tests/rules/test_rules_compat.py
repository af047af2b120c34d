"""Python-2 spellings: every `_compat_pickle` mapping is graded at least like its Python-3 target,
and exactly like it when the target is dangerous (issue #14: `cStringIO.open`, `dumbdbm.open`…)."""

from __future__ import annotations

import _compat_pickle

import pytest

from fastscan.rules import DANGEROUS, SAFE, UNKNOWN, RuleSet, classify, default_ruleset
from fastscan.rules.resolve import py3_spelling
from fastscan.tokenizer import tokenize

_RANK = {DANGEROUS: 0, UNKNOWN: 1, SAFE: 2}
_NAMES = sorted(_compat_pickle.NAME_MAPPING.items())
_MODULES = sorted(_compat_pickle.IMPORT_MAPPING.items())
_ENTRY_NAMES: dict[str, set[str]] = {}
for _e in default_ruleset().entries:
    if not _e.is_wildcard:
        _ENTRY_NAMES.setdefault(_e.module, set()).add(_e.name)


def _probes(module: str) -> list[str]:
    """Names to try under a mapped module: its reviewed entries plus generic spellings."""
    return sorted(_ENTRY_NAMES.get(module, set()) | {"open", "Thing", "helper"})


def test_the_tables_are_the_interpreters_own() -> None:
    assert len(_NAMES) + len(_MODULES) > 100
    assert py3_spelling("cStringIO", "StringIO") == ("io", "StringIO")
    assert py3_spelling("__builtin__", "reduce") == ("functools", "reduce")
    assert py3_spelling("builtins", "reduce") == ("functools", "reduce")  # tokenizer's spelling
    assert py3_spelling("os", "system") == ("os", "system")


@pytest.mark.parametrize(("py2", "py3"), _NAMES, ids=[f"{m}.{n}" for (m, n), _ in _NAMES])
def test_every_name_mapping_is_graded_like_its_target(
    py2: tuple[str, str], py3: tuple[str, str]
) -> None:
    old, new = classify(*py2), classify(*py3)
    assert _RANK[old.verdict_class] <= _RANK[new.verdict_class]
    if new.is_dangerous:
        assert (old.verdict_class, old.category) == (DANGEROUS, new.category)


@pytest.mark.parametrize(("py2", "py3"), _MODULES, ids=[m for m, _ in _MODULES])
def test_every_module_mapping_is_graded_like_its_target(py2: str, py3: str) -> None:
    for name in _probes(py3):
        if (py2, name) in _compat_pickle.NAME_MAPPING:
            continue  # the pair table decides first (tested above)
        old, new = classify(py2, name), classify(py3, name)
        assert _RANK[old.verdict_class] <= _RANK[new.verdict_class], name
        if new.is_dangerous:
            assert (old.verdict_class, old.category) == (DANGEROUS, new.category), name


@pytest.mark.parametrize(
    ("module", "name", "category"),
    [
        ("cStringIO", "open", "filesystem_write"),
        ("StringIO", "FileIO", "filesystem_write"),
        ("dumbdbm", "open", "filesystem_write"),
        ("__builtin__", "reduce", "callback_dispatch"),
        ("thread", "start_new_thread", "callback_dispatch"),
        ("SocketServer", "TCPServer", "network"),
        ("commands", "getoutput", "process"),
    ],
)
def test_issue_examples_are_sinks(module: str, name: str, category: str) -> None:
    hit = classify(module, name)
    assert (hit.verdict_class, hit.category) == (DANGEROUS, category)
    assert "Python 2 name of" in hit.reason or hit.resolved.startswith(
        py3_spelling(module, name)[0]
    )


def test_written_spelling_wins_when_a_reviewed_entry_grades_it_worse() -> None:
    # `dbm` is a real Python 3 module (reviewed dangerous); protocol >= 3 imports it as written.
    assert classify("dbm", "whichdb").is_dangerous
    # an unlisted py2 module does not exist on Python 3: the mapped reading decides alone
    assert (
        classify("exceptions", "ValueError").verdict_class
        == classify("builtins", "ValueError").verdict_class
    )


def test_protocol_0_stream_with_py2_global_is_flagged_end_to_end() -> None:
    data = b"cthread\nstart_new_thread\n(cposix\nsystem\n(S'echo hi'\nttR."
    facts = tokenize(data)
    assert next(g.qualname for g in facts.globals) == "thread.start_new_thread"
    from fastscan.rules import evaluate

    findings = evaluate([("", facts)], None, RuleSet.load())
    called = [f for f in findings if f.rule_id == "FS102"]
    assert called and called[0].subject == "thread.start_new_thread"
    assert "Python 2 name of _thread.start_new_thread" in called[0].message
