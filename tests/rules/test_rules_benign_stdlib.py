"""Benign stdlib values that pickle through sink-shaped calls are not flagged by rules alone,
and their malicious twins, built with the same opcodes, stay malicious.

Enum members, classmethods and time zones pickle as `getattr(<class>, "<name>")` (ZoneInfo also
calls the result); `functools.partial(max, 1)` wraps a global. Benign objects are pickled here
by the real `pickle` module; nothing is ever unpickled.
"""

from __future__ import annotations

import collections
import datetime
import functools
import http
import inspect
import operator
import pickle
import re
import signal
import socket
import struct
import zoneinfo
from typing import Any

import pandas as pd
import pytest

from fastscan.findings import Severity
from fastscan.scan import Scanner
from fastscan.verdict import FileResult, settleable

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
CMD = "echo fastscan-test"

BENIGN: dict[str, Any] = {
    "partial(max, 1)": functools.partial(max, 1),
    "partial(int, base=2)": functools.partial(int, base=2),
    "partial(sorted, key=len)": functools.partial(sorted, key=len),
    "ZoneInfo(UTC)": zoneinfo.ZoneInfo("UTC"),
    "ZoneInfo(Europe/Paris)": zoneinfo.ZoneInfo("Europe/Paris"),
    "datetime with ZoneInfo": datetime.datetime(2024, 1, 2, tzinfo=zoneinfo.ZoneInfo("UTC")),
    "datetime with timezone.utc": datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
    "pandas Timestamp UTC": pd.Timestamp("2024-01-02", tz="UTC"),
    "pandas Timestamp ZoneInfo": pd.Timestamp("2024-01-02", tz=zoneinfo.ZoneInfo("Asia/Tokyo")),
    "pandas tz-aware Series": pd.Series(pd.date_range("2024-01-01", periods=3, tz="UTC")),
    "datetimes in several zones": [
        datetime.datetime(2024, 1, 2, tzinfo=zoneinfo.ZoneInfo(key))
        for key in ("UTC", "Asia/Tokyo", "Europe/Paris")
    ],
    "pandas Timestamps in two zones": {
        "a": pd.Timestamp("2024-01-02", tz=zoneinfo.ZoneInfo("UTC")),
        "b": pd.Timestamp("2024-01-02", tz=zoneinfo.ZoneInfo("Asia/Tokyo")),
        "c": [1.5, "x"],
    },
    "pandas DataFrame with two tz columns": pd.DataFrame(
        {
            "a": pd.date_range("2024-01-01", periods=2, tz=zoneinfo.ZoneInfo("Asia/Tokyo")),
            "b": pd.date_range("2024-01-01", periods=2, tz=zoneinfo.ZoneInfo("UTC")),
            "s": ["x", "y"],
        }
    ),
    "HTTPStatus.OK": http.HTTPStatus.OK,
    "HTTPMethod.GET": http.HTTPMethod.GET,
    "HTTPStatus.NOT_FOUND": http.HTTPStatus.NOT_FOUND,
    "Signals.SIGINT": signal.Signals.SIGINT,
    "RegexFlag.IGNORECASE": re.RegexFlag.IGNORECASE,
    "RegexFlag combined": re.IGNORECASE | re.MULTILINE,
    "Parameter.KEYWORD_ONLY": inspect.Parameter.KEYWORD_ONLY,
    "Parameter kinds": list(inspect._ParameterKind),
    "AddressFamily.AF_INET": socket.AddressFamily.AF_INET,
    "operator.itemgetter": operator.itemgetter(1, 2),
    "operator.attrgetter": operator.attrgetter("real", "imag.real"),
    "operator.methodcaller": operator.methodcaller("strip"),
    "classmethod dict.fromkeys": dict.fromkeys,
    "classmethod datetime.now": datetime.datetime.now,
    "classmethod int.from_bytes": int.from_bytes,
    "staticmethod str.maketrans": str.maketrans,
    "defaultdict(list)": collections.defaultdict(list, {"a": [1]}),
    "defaultdict(int) counter": collections.defaultdict(int, {"a": 3}),
    "OrderedDict": collections.OrderedDict(a=1),
    "mixed container": {
        "tz": zoneinfo.ZoneInfo("UTC"),
        "status": http.HTTPStatus.OK,
        "key": functools.partial(max, 0),
        "sig": signal.Signals.SIGTERM,
    },
}


def rules_only(data: bytes) -> FileResult:
    return Scanner(model=None).scan_bytes(data)


def flagged(result: FileResult) -> list[str]:
    return [
        f"{f.rule_id} {f.severity.name}: {f.message}"
        for f in result.findings
        if f.severity >= Severity.SUSPICIOUS
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_stdlib_value_is_not_flagged(name: str, protocol: int) -> None:
    result = rules_only(pickle.dumps(BENIGN[name], protocol=protocol))
    assert result.verdict == "clean", flagged(result)
    assert flagged(result) == []


# -- a tiny assembler: the same opcode shapes the pickler writes, with other operands ----------


class Asm:
    """Emits protocol 0 (text), 2 (GLOBAL + binary strings) or 4 (STACK_GLOBAL) opcodes."""

    def __init__(self, protocol: int) -> None:
        self.protocol = protocol
        self.out = bytearray(b"" if protocol < 2 else bytes([0x80, protocol]))

    def string(self, text: str) -> Asm:
        raw = text.encode()
        if self.protocol == 0:
            self.out += b"V" + raw + b"\n"
        elif self.protocol < 4:
            self.out += b"X" + struct.pack("<I", len(raw)) + raw
        else:
            self.out += b"\x8c" + bytes([len(raw)]) + raw
        return self

    def glob(self, module: str, name: str) -> Asm:
        if self.protocol < 4:
            self.out += f"c{module}\n{name}\n".encode()
        else:
            self.string(module).string(name)
            self.out += b"\x93"
        return self

    def call(self, *args: str | tuple[str, str] | None) -> Asm:
        """REDUCE the callable already on the stack with literal args (str, global, None)."""
        self.out += b"("
        for arg in args:
            if arg is None:
                self.out += b"N"
            elif isinstance(arg, tuple):
                self.glob(*arg)
            else:
                self.string(arg)
        self.out += b"tR"
        return self

    def build_partial_state(self, func: tuple[str, str], *args: str) -> Asm:
        """BUILD (func, args, {}, None) onto the partial on the stack (partial.__setstate__)."""
        self.out += b"("
        self.glob(*func)
        self.out += b"("
        for arg in args:
            self.string(arg)
        self.out += b"t(dNtb"
        return self

    def done(self) -> bytes:
        return bytes(self.out) + b"."


ASM_PROTOCOLS = (0, 2, 4)


def getattr_of(protocol: int, cls: tuple[str, str], attr: str) -> Asm:
    return Asm(protocol).glob("builtins", "getattr").call(cls, attr)


@pytest.mark.parametrize("protocol", ASM_PROTOCOLS)
def test_assembled_benign_shapes_are_not_flagged(protocol: int) -> None:
    # the shapes the pickler writes, rebuilt by hand: the assembler itself is not what fires
    shapes = {
        "enum by name": getattr_of(protocol, ("http", "HTTPStatus"), "OK").done(),
        "classmethod": getattr_of(protocol, ("builtins", "dict"), "fromkeys").done(),
        "zoneinfo": getattr_of(protocol, ("zoneinfo", "ZoneInfo"), "_unpickle").call("UTC").done(),
        "partial": Asm(protocol).glob("functools", "partial").call(("builtins", "max")).done(),
    }
    for name, data in shapes.items():
        assert flagged(rules_only(data)) == [], name


MALICIOUS_TWINS = {
    # getattr of a module, or with a sink attribute name, or whose result runs a command
    "getattr(__import__('os'), 'system')(cmd)": lambda p: (
        _import_then_getattr(p, "os", "system").call(CMD).done()
    ),
    "getattr(os.path module, 'os') uncalled": lambda p: getattr_of(p, ("os", "path"), "os").done(),
    "getattr(lowercase module-like global, 'system')": lambda p: getattr_of(
        p, ("torch", "serialization"), "system"
    ).done(),
    "getattr(HTTPStatus, 'system')": lambda p: (
        getattr_of(p, ("http", "HTTPStatus"), "system").call(CMD).done()
    ),
    "getattr(benign class, 'system') uncalled": lambda p: getattr_of(
        p, ("collections", "OrderedDict"), "system"
    ).done(),
    "getattr(dict, 'fromkeys')(shell string)": lambda p: (
        getattr_of(p, ("builtins", "dict"), "fromkeys").call(CMD).done()
    ),
    "getattr(ZoneInfo, '__init_subclass__')": lambda p: getattr_of(
        p, ("zoneinfo", "ZoneInfo"), "__init_subclass__"
    ).done(),
    "getattr(ZoneInfo, '__globals__')": lambda p: getattr_of(
        p, ("zoneinfo", "ZoneInfo"), "__globals__"
    ).done(),
    "getattr(ZoneInfo, 'from_file')(path)": lambda p: (
        getattr_of(p, ("zoneinfo", "ZoneInfo"), "from_file").call("/tmp/fastscan-twin").done()
    ),
    "partial(os.system, cmd)": lambda p: (
        Asm(p).glob("functools", "partial").call(("os", "system"), CMD).done()
    ),
    "partial(os.system, cmd)()": lambda p: (
        Asm(p).glob("functools", "partial").call(("os", "system"), CMD).call().done()
    ),
    "partial(max) whose BUILD state swaps in os.system": lambda p: (
        Asm(p)
        .glob("functools", "partial")
        .call(("builtins", "max"))
        .build_partial_state(("os", "system"), CMD)
        .done()
    ),
    # kept, never called, it runs nothing: run_shell's own FS112 then (rules/kept.py, below)
    "partial(unknown callable)()": lambda p: (
        Asm(p).glob("functools", "partial").call(("mylab.tools", "run_shell"), CMD).call().done()
    ),
    "attrgetter('system')": lambda p: Asm(p).glob("operator", "attrgetter").call("system").done(),
    "methodcaller('system', cmd)": lambda p: (
        Asm(p).glob("operator", "methodcaller").call("system", CMD).done()
    ),
    "attrgetter('real')(obj) called": lambda p: (
        Asm(p).glob("operator", "attrgetter").call("real").call(("builtins", "dict")).done()
    ),
}


def _import_then_getattr(protocol: int, module: str, attr: str) -> Asm:
    """getattr(__import__(module), attr): the first argument is a call result."""
    asm = Asm(protocol)
    asm.glob("builtins", "getattr")
    asm.out += b"("
    asm.glob("builtins", "__import__").call(module)
    asm.string(attr)
    asm.out += b"tR"
    return asm


def _computed_getattr(protocol: int) -> Asm:
    """A decoy getattr(ZoneInfo, "_unpickle") (popped), then getattr(ZoneInfo,
    codecs.decode(...)): the real name is computed between the class and the call."""
    asm = getattr_of(protocol, ("zoneinfo", "ZoneInfo"), "_unpickle")
    asm.out += b"0"  # POP
    asm.glob("builtins", "getattr")
    asm.out += b"("
    asm.glob("zoneinfo", "ZoneInfo")
    asm.glob("codecs", "decode").call("_hacvpxyr", "rot13")
    asm.out += b"tR"
    return asm


@pytest.mark.parametrize("protocol", ASM_PROTOCOLS)
@pytest.mark.parametrize("name", sorted(MALICIOUS_TWINS))
def test_malicious_twin_stays_malicious(name: str, protocol: int) -> None:
    data = MALICIOUS_TWINS[name](protocol)
    result = rules_only(data)
    assert result.verdict == "malicious", [
        f"{f.rule_id} {f.severity.name}: {f.message}" for f in result.findings
    ]


@pytest.mark.parametrize("protocol", ASM_PROTOCOLS)
def test_kept_partial_of_an_unknown_callable_bound_to_a_command_is_fs112(protocol: int) -> None:
    """partial(run_shell, cmd) never called: the partial runs nothing (low), the function bound
    to command text is FS112, which no classifier settles."""
    data = Asm(protocol).glob("functools", "partial").call(("mylab.tools", "run_shell"), CMD)
    result = rules_only(data.done())
    graded = {(f.rule_id, f.subject): f.severity for f in result.findings}
    assert graded[("FS112", "mylab.tools.run_shell")] == Severity.SUSPICIOUS, result.findings
    assert graded[("FS102", "functools.partial")] == Severity.LOW
    assert result.verdict == "suspicious" and not settleable(result.findings, "complete")


@pytest.mark.parametrize("protocol", ASM_PROTOCOLS)
def test_computed_attribute_name_is_never_graded_low(protocol: int) -> None:
    """The tokenizer does not record getattr's second argument; a call between the class and
    the getattr may compute the name, so a decoy "_unpickle" literal cannot buy a low grade."""
    result = rules_only(_computed_getattr(protocol).call(CMD).done())
    assert result.verdict != "clean"
    graded = {f.rule_id: f.severity for f in result.findings if f.rule_id in ("FS102", "FS107")}
    assert graded and min(graded.values()) >= Severity.SUSPICIOUS, result.findings


def test_benign_shape_findings_are_recorded_low() -> None:
    """The sink call is still reported (features and audits see it), only graded low."""
    result = rules_only(pickle.dumps(zoneinfo.ZoneInfo("UTC"), protocol=2))
    grades = {(f.rule_id, f.severity) for f in result.findings}
    assert ("FS102", Severity.LOW) in grades and ("FS107", Severity.LOW) in grades


def test_enum_class_entry_does_not_cover_its_attributes() -> None:
    from fastscan.rules import classify

    assert classify("http", "HTTPStatus").is_safe
    assert classify("http", "HTTPStatus.__init__.__globals__").is_dangerous
    assert classify("http.client", "HTTPSConnection").is_dangerous
    assert classify("signal", "signal").is_dangerous
    assert classify("inspect", "getattr_static").is_dangerous
    assert classify("zoneinfo", "ZoneInfo._unpickle").is_safe
    assert not classify("zoneinfo", "ZoneInfo.from_file").is_safe
