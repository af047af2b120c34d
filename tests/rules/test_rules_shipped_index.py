"""The issue #14 cases against the shipped ecosystem index (skipped in a checkout without it).

Misses that executed and false alarms from the issue, each now judged through the index; the
malicious pickles are hand-written with a harmless `echo` payload, the benign ones are written by
the real libraries and never loaded here."""

from __future__ import annotations

import pickle

import pytest

from fastscan.rules import RuleSet, default_ruleset
from fastscan.rules.indexed import KNOWN, UNDEFINED
from fastscan.rules.knowledge import load_shipped
from fastscan.scan import Scanner

pytestmark = pytest.mark.skipif(
    default_ruleset().index is None, reason="no shipped index in this checkout"
)

INNER = b"\x80\x02cposix\nsystem\nX\x07\x00\x00\x00echo hiq\x85R."
WRAPPER = (
    b"\x80\x02ctorch.utils.data.datapipes.datapipe\n_IterDataPipeSerializationWrapper\n)\x81}"
    b"X\x09\x00\x00\x00_datapipeC" + bytes([len(INNER)]) + INNER + b"sb."
)


@pytest.fixture(scope="module")
def scanners() -> tuple[Scanner, Scanner]:
    return Scanner(model=None), Scanner(model=None, rules=RuleSet(load_shipped()))


def test_datapipe_wrapper_setstate_is_a_nested_loader(scanners: tuple[Scanner, Scanner]) -> None:
    # reviewed into the denylist from the index's finding; the index's path stays attached
    indexed, _plain = scanners
    result = indexed.scan_bytes(WRAPPER, "w.pkl")
    assert result.verdict == "malicious" and "FS102" in result.rule_ids
    cls = default_ruleset().classify(
        "torch.utils.data.datapipes.datapipe", "_IterDataPipeSerializationWrapper"
    )
    assert cls.category == "nested_loader"
    assert any(r.hook == "setstate" and r.category == "nested_loader" for r in cls.reaches)


def test_an_unlisted_setstate_nested_loader_is_found_by_the_index_alone() -> None:
    kb = load_shipped()
    kb.entries = [e for e in kb.entries if e.module != "torch.utils.data.datapipes.datapipe"]
    rules = RuleSet(kb, index=default_ruleset().index)
    result = Scanner(model=None, rules=rules).scan_bytes(WRAPPER, "w.pkl")
    reach = [f for f in result.findings if f.rule_id == "FS110"]
    assert result.verdict == "malicious" and reach
    assert "[nested_loader]" in reach[0].message and "__setstate__" in reach[0].message


@pytest.mark.parametrize(
    ("module", "name", "verdict_class", "origin"),
    [
        ("sklearn.callback._progressbar", "Thread", "dangerous", "threading.Thread"),
        ("sklearn.externals.array_api_compat.torch", "load", "dangerous", ""),
        ("torch.serialization", "os.system", "dangerous", "posix.system"),
        ("psutil", "Popen", "dangerous", ""),
    ],
)
def test_laundering_is_judged_by_origin(
    module: str, name: str, verdict_class: str, origin: str
) -> None:
    cls = default_ruleset().classify(module, name)
    assert cls.verdict_class == verdict_class
    if origin:
        assert cls.origin == origin


def test_typo_in_an_allowlisted_package_is_undefined() -> None:
    cls = default_ruleset().classify("sklearn.linear_model._base", "LinearRegresion")
    assert cls.index == UNDEFINED and cls.verdict_class == "unknown"
    assert default_ruleset().classify("sklearn.linear_model._base", "LinearRegression").is_safe


def test_issue_false_alarms_are_known_and_clean(scanners: tuple[Scanner, Scanner]) -> None:
    np = pytest.importorskip("numpy")
    sp = pytest.importorskip("scipy.sparse")
    indexed, plain = scanners
    for obj in (
        sp.csr_matrix(np.eye(3)),
        np.rec.array([(1, 2.0)], dtype=[("a", int), ("b", float)]),
    ):
        data = pickle.dumps(obj, protocol=4)
        assert plain.scan_bytes(data).verdict == "suspicious"  # FS103 without the index
        result = indexed.scan_bytes(data)
        assert result.verdict == "clean" and "FS111" in result.rule_ids
    cls = default_ruleset().classify("scipy.sparse._csr", "csr_matrix")
    assert cls.index == KNOWN and cls.package == "scipy"
