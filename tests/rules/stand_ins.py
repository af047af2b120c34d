"""Stand-in registry packages for the rules' tests: modules `pickle` can name while fixtures are
written (their functions raise if anything ever calls them), an object that pickles as a chosen
`__reduce__` value, and the rules-only judgement the tests read. One home for what the
unknown-call tests share."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastscan.scan import Scanner
from fastscan.verdict import settleable

RULES_ONLY = Scanner(model=None)


def never(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the scanner must never call what it scans")


@contextmanager
def stand_in_module(name: str, *objects: Any) -> Iterator[types.ModuleType]:
    """Module `name` holding `objects` under their own names, importable while the block runs."""
    module = types.ModuleType(name)
    for obj in objects:
        obj.__module__ = name
        obj.__qualname__ = obj.__name__
        setattr(module, obj.__name__, obj)
    sys.modules[name] = module
    try:
        yield module
    finally:
        del sys.modules[name]


def judged(data: bytes, scanner: Scanner = RULES_ONLY) -> tuple[str, set[str], bool]:
    """Verdict of `data` by rules alone, the rule ids found (not suppressed), and whether a
    confident classifier could settle it."""
    result = scanner.scan_bytes(data, "x.pkl")
    rules = {f.rule_id for f in result.findings if not f.suppressed}
    return result.verdict, rules, settleable(result.findings, result.status)


class Reduce:
    """Pickles as `value` (what a hostile or a custom `__reduce__` returns)."""

    def __init__(self, value: tuple[object, ...]) -> None:
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        return self.value
