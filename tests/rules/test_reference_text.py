"""A denylisted callable named by text as `module:qualname` (the spelling import resolvers take:
`pkgutil.resolve_name`, entry points, toolz's `_restore_curry(curry, "posix:system", (), {}, (),
True)`, which imports the module and returns the attribute) is graded as if the pickle imported
it: FS101, malicious. References to anything else, times and paths are no finding. Through the
real tokenizer and rules; nothing scanned is loaded."""

from __future__ import annotations

import pickle

import pytest

from fastscan.rules import default_ruleset
from fastscan.scan import Scanner

SCANNER = Scanner(model=None)
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)

# hand-written: [_restore_curry(curry, "posix:system", (), {}, [], True)("echo fastscan")]
RESOLVER_PAYLOAD = (
    b"\x80\x04]("
    b"\x8c\x0ftoolz.functoolz\x8c\x0e_restore_curry\x93"
    b"(\x8c\x0ftoolz.functoolz\x8c\x05curry\x93\x8c\x0cposix:system)}]\x88tR"
    b"\x8c\x0decho fastscan\x85R"
    b"e."
)


def _named_by_text(data: bytes, scanner: Scanner = SCANNER) -> tuple[str, list[str]]:
    result = scanner.scan_bytes(data, "x.pkl")
    texts = [f.subject for f in result.findings if f.rule_id == "FS101"]
    return result.verdict, texts


def test_an_import_resolver_handed_a_sink_by_text_is_malicious() -> None:
    verdict, texts = _named_by_text(RESOLVER_PAYLOAD)
    assert verdict == "malicious" and texts == ["posix:system"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("text", ["os:system", "builtins:eval", "subprocess:Popen.__init__"])
def test_a_sink_named_by_text_anywhere_is_malicious(protocol: int, text: str) -> None:
    verdict, texts = _named_by_text(pickle.dumps({"target": text, "n": 1}, protocol=protocol))
    assert verdict == "malicious" and texts == [text]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_other_references_times_and_paths_are_no_finding(protocol: int) -> None:
    values = [
        "dask.array.wrap:_broadcast_trick_inner",  # what dask graphs really hold
        "mypkg.cli:main",
        "12:30",
        "C:/data/train.csv",
        "collections:OrderedDict",
        "note: see the docs",
    ]
    verdict, texts = _named_by_text(pickle.dumps(values, protocol=protocol))
    assert texts == [] and verdict == "clean"


def test_the_grade_follows_the_denylist() -> None:
    # with the name withheld (a novel family) the text is no finding; the call of the resolver's
    # result stays suspicious (FS107)
    rules = default_ruleset().withholding({"os.system"})
    verdict, texts = _named_by_text(RESOLVER_PAYLOAD, Scanner(model=None, rules=rules))
    assert texts == [] and verdict == "suspicious"
