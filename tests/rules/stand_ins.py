"""Stand-in registry packages for the rules' tests: modules `pickle` can name while fixtures are
written (their functions raise if anything ever calls them), and an object that pickles as a
chosen `__reduce__` value. One home for what the unknown-call tests share."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


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


class Reduce:
    """Pickles as `value` (what a hostile or a custom `__reduce__` returns)."""

    def __init__(self, value: tuple[object, ...]) -> None:
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        return self.value
