"""literals: what literal text could be to a callee."""

from __future__ import annotations

import pytest

from fastscan.rules import literals


@pytest.mark.parametrize("text", ["x", "x_1", "alpha", "Integer", "2", "-3.5", "1e-9", ".5"])
def test_names_and_numbers_are_inert_as_code(text: str) -> None:
    assert literals.inert_as_code(text)


@pytest.mark.parametrize(
    "text",
    ["__import__", "os.system", "exit()", "x+y", "a[0]", "1/3", "x y", "", "lambda: 0", "x\n"],
)
def test_anything_else_is_not_inert_as_code(text: str) -> None:
    assert not literals.inert_as_code(text)
