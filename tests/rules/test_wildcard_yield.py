"""Module-wide network deny entries yield to the index for classes it read (issue #15).

A class under a `network` wildcard whose load-time hooks the index read and found reaching no
sink is graded as the index sees it when a pickle restores it (FS111), not by the wildcard.
Functions, methods fetched by getattr, classes whose hooks reach a sink or that the index cannot
follow, classes the pickle constructs, exact or user entries, other categories and withheld
libraries keep the wildcard's answer. Hand-written pickles with harmless payloads; nothing here
imports a scanned library or loads a pickle."""

from __future__ import annotations

import pytest

from fastscan.rules import RuleSet, default_ruleset
from fastscan.rules.indexed import KNOWN, YIELDING_CATEGORIES, readable_class
from fastscan.rules.knowledge import load_shipped
from fastscan.scan import Scanner
from tests.index_fake import FakeIndex, Reach

pytestmark = pytest.mark.skipif(
    default_ruleset().index is None, reason="no shipped index in this checkout"
)


def _g(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def _s(text: str) -> bytes:
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def _restored(module: str, name: str) -> bytes:
    """Protocol 2 restoration: NEWOBJ with no arguments, then BUILD with a state dict."""
    return b"\x80\x02" + _g(module, name) + b")\x81}" + _s("status_code") + b"K\xc8sb."


def _constructed(module: str, name: str, *args: str) -> bytes:
    """The class called by REDUCE with string arguments: its __init__ runs."""
    return b"\x80\x02" + _g(module, name) + b"(" + b"".join(map(_s, args)) + b"tR."


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(model=None)


def _ids(scanner: Scanner, data: bytes, subject: str) -> set[str]:
    return {f.rule_id for f in scanner.scan_bytes(data, "x.pkl").findings if f.subject == subject}


# -- benign shapes: graded by the index ----------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("requests.models", "Response"),
        ("requests.cookies", "RequestsCookieJar"),
        ("http.cookiejar", "Cookie"),
        ("huggingface_hub._commit_api", "CommitOperationAdd"),
        ("aiohttp.client", "ClientTimeout"),
        ("requests.sessions", "Session"),  # opens connections from public methods only
    ],
)
def test_restored_data_class_is_graded_by_the_index(
    scanner: Scanner, module: str, name: str
) -> None:
    cls = default_ruleset().classify(module, name)
    assert cls.verdict_class == "unknown" and cls.index == KNOWN and cls.kind == "class"
    assert cls.denied_by is not None and cls.denied_by.category == "network"
    result = scanner.scan_bytes(_restored(module, name), "x.pkl")
    assert result.verdict == "clean", result.findings
    assert _ids(scanner, _restored(module, name), f"{module}.{name}") == {"FS111"}


def test_protocol_0_reconstructor_is_restoration(scanner: Scanner) -> None:
    data = (
        _g("copy_reg", "_reconstructor")
        + b"("
        + _g("cookielib", "Cookie")  # the Python 2 name of http.cookiejar.Cookie
        + _g("__builtin__", "object")
        + b"NtR(dS'name'\nS'sid'\nsb."
    )
    result = scanner.scan_bytes(data, "x.pkl")
    assert result.verdict == "clean", result.findings


# -- attacker twins: the wildcard's answer stands ------------------------------------------------


def test_network_function_called_stays_malicious(scanner: Scanner) -> None:
    data = _constructed("requests.api", "get", "http://127.0.0.1:9/x")
    result = scanner.scan_bytes(data, "x.pkl")
    assert result.verdict == "malicious" and "FS102" in result.rule_ids


def test_method_fetched_by_getattr_and_called_stays_malicious(scanner: Scanner) -> None:
    # getattr(<restored Session>, "get")("http://...")
    data = (
        b"\x80\x02"
        + _g("builtins", "getattr")
        + b"("
        + _g("requests.sessions", "Session")
        + b")\x81"
        + _s("get")
        + b"tR("
        + _s("http://127.0.0.1:9/x")
        + b"tR."
    )
    result = scanner.scan_bytes(data, "x.pkl")
    assert result.verdict == "malicious", result.findings


def test_getattr_on_the_class_fetches_a_denied_method() -> None:
    cls = default_ruleset().classify("requests.sessions", "Session.get")
    assert cls.is_dangerous and cls.category == "network"


@pytest.mark.parametrize(
    ("module", "name"),
    [("http.server", "HTTPServer"), ("smtplib", "SMTP"), ("socketserver", "TCPServer")],
)
def test_class_whose_hook_reaches_a_sink_keeps_the_wildcard(
    scanner: Scanner, module: str, name: str
) -> None:
    cls = default_ruleset().classify(module, name)
    assert cls.is_dangerous and cls.denied_by is None
    assert any(r.hook == "init" and r.category == "network" for r in cls.reaches)
    for data in (_restored(module, name), _constructed(module, name, "127.0.0.1")):
        assert scanner.scan_bytes(data, "x.pkl").verdict == "malicious"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("xmlrpc.client", "ServerProxy"),  # __getattr__ answers BUILD's __setstate__ lookup
        ("urllib.request", "URLopener"),  # __del__ unlinks its temp files
        ("http.client", "HTTPResponse"),  # C base (_io._BufferedIOBase) the index did not read
    ],
)
def test_classes_the_index_cannot_follow_keep_the_wildcard(
    scanner: Scanner, module: str, name: str
) -> None:
    cls = default_ruleset().classify(module, name)
    assert cls.is_dangerous and cls.denied_by is None
    assert scanner.scan_bytes(_restored(module, name), "x.pkl").verdict == "malicious"


@pytest.mark.parametrize(
    ("module", "name"),
    [("requests.models", "Response"), ("huggingface_hub._commit_scheduler", "CommitScheduler")],
)
def test_a_yielded_class_the_pickle_constructs_keeps_the_wildcard(
    scanner: Scanner, module: str, name: str
) -> None:
    # CommitScheduler's __init__ uploads through `self.api`, which the index does not follow
    assert default_ruleset().classify(module, name).denied_by is not None
    data = _constructed(module, name, "attacker/repo")
    result = scanner.scan_bytes(data, "x.pkl")
    assert result.verdict == "malicious" and "FS102" in _ids(scanner, data, f"{module}.{name}")


def test_a_yielded_class_wrapped_in_partial_and_called_keeps_the_wildcard(
    scanner: Scanner,
) -> None:
    # partial(CommitScheduler, "attacker/repo")(): the wrapped class may be constructed
    subject = "huggingface_hub._commit_scheduler.CommitScheduler"
    data = (
        b"\x80\x02"
        + _g("functools", "partial")
        + b"("
        + _g(*subject.rsplit(".", 1))
        + _s("attacker/repo")
        + b"tR)R."
    )
    result = scanner.scan_bytes(data, "x.pkl")
    assert result.verdict == "malicious" and "FS101" in _ids(scanner, data, subject)


def test_withheld_library_keeps_the_wildcard() -> None:
    index = default_ruleset().index
    assert index is not None
    rules = RuleSet(load_shipped(), index=index.without({"requests"}))
    assert rules.classify("requests.models", "Response").is_dangerous
    result = Scanner(model=None, rules=rules).scan_bytes(
        _restored("requests.models", "Response"), "x.pkl"
    )
    assert result.verdict == "malicious"


def test_exact_and_user_entries_keep_their_answer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "rules.toml"
    config.write_text(
        '[[deny]]\nmodule = "requests.models"\nname = "Response"\ncategory = "network"\n'
        'reason = "exact"\n\n'
        '[[deny]]\nmodule = "cloudpathlib"\nname = "*"\ncategory = "network"\n'
        'reason = "a user wildcard"\n'
    )
    rules = RuleSet.load(config)
    assert rules.classify("requests.models", "Response").is_dangerous
    user_wild = rules.classify("cloudpathlib.cloudpath", "CloudPath")
    assert user_wild.is_dangerous and not user_wild.wildcard
    result = Scanner(model=None, rules=rules).scan_bytes(
        _restored("requests.models", "Response"), "x.pkl"
    )
    assert result.verdict == "malicious"


@pytest.mark.parametrize(
    ("module", "name"),
    [("zipfile", "ZipInfo"), ("tarfile", "TarInfo"), ("logging", "LogRecord")],
)
def test_filesystem_write_wildcards_do_not_yield(scanner: Scanner, module: str, name: str) -> None:
    assert "filesystem_write" not in YIELDING_CATEGORIES
    cls = default_ruleset().classify(module, name)
    assert cls.is_dangerous and cls.category == "filesystem_write"
    assert scanner.scan_bytes(_restored(module, name), "x.pkl").verdict == "malicious"


# -- the readability guard on a controlled index -------------------------------------------------


def _fake() -> FakeIndex:
    ix = FakeIndex()
    ix.add("netlib", "Plain", "class")
    ix.add("netlib", "Lazy", "class", Reach("method", "network", ("netlib.Lazy.send", "x")))
    ix.add("netlib", "Hooked", "class", Reach("setstate", "network", ("netlib.Hooked.s", "x")))
    ix.add("netlib", "Proxy", "class")
    ix.add("netlib", "Proxy.__getattr__", "function")
    ix.add("netlib", "Native", "class")
    ix.add("netlib", "Native.__init__", "builtin", origin="_netlib.Base.__init__")
    ix.add("netlib", "Text", "class")
    ix.add("netlib", "Text.__init__", "builtin", origin="builtins.str.__init__")
    ix.add("netlib", "Gen", "class")
    ix.add(
        "netlib",
        "Gen.__post_init__",
        "function",
        Reach("call", "network", ("netlib.Gen.__post_init__", "x")),
    )
    ix.add("netlib", "fetch", "function")
    return ix


@pytest.mark.parametrize(
    ("name", "readable"),
    [
        ("Plain", True),
        ("Lazy", True),  # a "method" reach is the application's call, not the loader's
        ("Text", True),  # a builtins base
        ("Hooked", False),
        ("Proxy", False),
        ("Native", False),
        ("Gen", False),
        ("fetch", False),
    ],
)
def test_readable_class(name: str, readable: bool) -> None:
    ix = _fake()
    symbol = ix.lookup("netlib", name)
    assert symbol is not None
    assert readable_class(ix, symbol) is readable  # type: ignore[arg-type]
