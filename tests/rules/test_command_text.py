"""FS112 by the text an unlisted function is handed (issue #15; `literals.reads_as_command`): a
reconstructor handed a regex pattern or punctuation tokens with its result kept (the regex
module's `_regex.compile(pattern, flags, code, ...)` when the index does not know it) is a
restoration, settleable like FS103; the same call handed text a shell, Python, a file API, a URL
fetcher or an importer could act on stays FS112, never settled. Through the real tokenizer,
call-site walk, rules and verdict; nothing scanned is loaded."""

from __future__ import annotations

import pickle
import types
from collections.abc import Iterator

import pytest

from tests.rules.stand_ins import Reduce, judged, never, stand_in_module
from tests.rules.test_literals import COMMANDS, REGEX_PATTERNS

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
MODULE = "thirdparty_cmdtext"  # a stand-in registry package; nothing of it runs while scanning
CODE = b"\x15\r\x03v\t\x01M\x10\x05value\x1d\x00\x02%\x01"  # compiled pattern code: a NUL byte


@pytest.fixture(scope="module", autouse=True)
def mod() -> Iterator[types.ModuleType]:
    def compile(*_args: object) -> None:  # the regex module's reconstructor shape
        never()

    with stand_in_module(MODULE, compile) as module:
        yield module


def _compiled(mod: types.ModuleType, pattern: str) -> object:
    return {"rule": Reduce((mod.compile, (pattern, 8226, CODE, {}, {}, [], (118, 97), 2, 0)))}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("pattern", REGEX_PATTERNS)
def test_a_compiled_pattern_kept_is_restoration(
    mod: types.ModuleType, protocol: int, pattern: str
) -> None:
    verdict, rules, ok = judged(pickle.dumps(_compiled(mod, pattern), protocol=protocol))
    assert "FS112" not in rules and "FS103" in rules and ok, rules
    assert verdict == "suspicious"  # by rules alone: FS103, a classifier's to settle


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("text", COMMANDS)
def test_the_same_call_handed_attacker_text_stays_fs112(
    mod: types.ModuleType, protocol: int, text: str
) -> None:
    verdict, rules, ok = judged(pickle.dumps(_compiled(mod, text), protocol=protocol))
    assert "FS112" in rules and not ok, rules
    assert verdict in ("suspicious", "malicious")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_attacker_text_beside_a_pattern_stays_fs112(
    mod: types.ModuleType, protocol: int
) -> None:
    value = Reduce((mod.compile, ("\\bvalue\\w{0,2}", 8226, CODE, {"g": "touch /tmp/x"})))
    _, rules, ok = judged(pickle.dumps([value], protocol=protocol))
    assert "FS112" in rules and not ok, rules
