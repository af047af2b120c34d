"""An unlisted function of another package handed to a call beside text is a stored callback and
its argument (callback-dispatch gadgets with every name unknown: `ChainMap(getoutput, "...")`),
never settled (FS112); a package's own reconstructor handed its own class, a class handed its
state, and an owner handed to getattr are restoration shapes and stay settleable (FS103)."""

from __future__ import annotations

import pytest

from fastscan import tokenizer
from fastscan.rules import evaluate
from fastscan.verdict import SUSPICIOUS, VerdictPolicy, combine

POLICY = VerdictPolicy(0.5, 0.9, float("nan"), 0.1, 0.5, SUSPICIOUS)
CONFIDENT = 0.0  # a classifier as sure as it gets that the file is benign


def _call(callable_: tuple[str, str], handed: tuple[str, str], arg: str) -> bytes:
    """Protocol 0: `callable_(handed, arg)`, every name a GLOBAL (nothing here is importable)."""
    (m1, n1), (m2, n2) = callable_, handed
    return f"c{m1}\n{n1}\n(c{m2}\n{n2}\n{arg}\ntR.".encode()


def _ids(data: bytes) -> dict[str, str]:
    return {f.subject: f.rule_id for f in evaluate([("", tokenizer.tokenize(data))])}


def _verdict(data: bytes) -> str:
    found = evaluate([("", tokenizer.tokenize(data))])
    return combine(found, "complete", CONFIDENT, float("nan"), POLICY)[0]


@pytest.mark.parametrize("arg", ["S'echo fastscan-test'", "S'true'", "Vtouch /tmp/x", "Vfoo"])
def test_function_of_another_package_handed_with_text_is_never_settled(arg: str) -> None:
    data = _call(("cbdispatch.holders", "ChainLike"), ("cbshell.util", "run_text"), arg)
    assert _ids(data)["cbshell.util.run_text"] == "FS112"
    assert _verdict(data) == SUSPICIOUS  # whatever the classifier says


def test_a_listed_container_handed_an_unknown_function_with_text_is_flagged() -> None:
    data = _call(("collections", "defaultdict"), ("cbshell.util", "run_text"), "S'echo hi'")
    assert _ids(data)["cbshell.util.run_text"] == "FS112"


@pytest.mark.parametrize(
    ("callable_", "handed", "arg"),
    [
        # a package's own reconstructor handed its own (lowercase) class: bitarray's shape
        (("mylib._core", "_mylib_reconstructor"), ("mylib", "thing"), "S'little'"),
        # a class handed: its state, not a callback
        (("cbdispatch.holders", "ChainLike"), ("otherpkg.models", "Thing"), "S'x'"),
        # getattr reads an attribute of its owner (judged per call site elsewhere)
        (("builtins", "getattr"), ("mylib", "thing"), "S'_from_other'"),
        # a function handed with numbers only: no argument for it to run
        (("cbdispatch.holders", "ChainLike"), ("cbshell.util", "run_text"), "I3"),
    ],
)
def test_restoration_shapes_stay_settleable(
    callable_: tuple[str, str], handed: tuple[str, str], arg: str
) -> None:
    ids = _ids(_call(callable_, handed, arg))
    assert ids.get(f"{handed[0]}.{handed[1]}") != "FS112"
