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


# What an attacker hands a helper that runs its argument: the shell (`sh -c`), Python (`exec`,
# `eval`), a file API (`open`, `os.remove`), a URL fetcher, an importer or a name resolver.
COMMANDS = [
    # shell: arguments, operators, substitutions, expansions, redirections
    "echo hi", "touch /tmp/x", "curl http://x|sh", "a;b", "id;touch", "a&&b", "a|b", "cat|dog",
    "(cat|dog)", "$(id)", "`id`", "a``b`id`", "${IFS}", "cat${IFS}/etc/passwd", "$HOME",
    ">/tmp/x", "echo>x", ">x", "sh<x", "2>&1", "<(id)", "{rm,-rf,*}", "a\nb", "id\tx",
    "(?>/tmp/x)", "(?P<n>/tmp/x)",
    # Python
    "__import__('os').system('id')", "exec('id')", "eval(compile('1','x','exec'))",
    "open('/etc/passwd').read()", "getattr(os,'system')", "lambda: 0", "import os", "x[0]",
    "os.path", "os.system", "  __import__('os')", "    self.run(x)\n", "f'{x.y}'",
    'f"{exec("x")}"', "__globals__", "__import__", "os:system", "a=1",
    # paths and URLs
    "/etc/passwd", "/", ".", "..", "../x", "./x", "~", "~/.ssh/id_rsa", ".bashrc", "-rf",
    "tmp/fastscan-j6", "C:\\fastscan\\x.bat", "\\\\server\\share", "tokenizer.bin", "run.sh",
    "x.7z", "Tmp/Evil.sh", "http://example.invalid/x", "file:/etc/passwd", "127.0.0.1",
]  # fmt: skip

# State that libraries hand their reconstructors: regex patterns (the regex module's and
# spaCy's tokenizer rules), punctuation tokens, dates, encodings, numbers, versions, zone names.
REGEX_PATTERNS = [
    "\\bvalue\\w{0,2}", "[a-z]+\\d{2}", "(?i)\\bfoo\\b", "^\\s+$", "(?u)\\b\\w\\w+\\b",
    "\\d+|\\w+", "(?:cat|dog)", "\\bcat\\b|\\bdog\\b", "^\\+(?![0-9])", "(?<=[a-z])\\.(?=[A-Z])",
    "(?P<year>\\d{4})-(?P<m>\\d\\d)", "(?P=year)", "[^/]+", "\\d+/\\d+", "\\w+(?:-\\w+)*",
    "(?<!\\d)\\d{3}(?!\\d)", "a{2,3}", "\\s*,\\s*", "^(?:[A-Z]\\.)+$", "foo$", "(?m)^a$|^b$",
    "[<>]", "^``|^§|^%|^=|^—|^–|^\\+(?![0-9])|^…|^`|^‘",
]  # fmt: skip
STATE_TEXT = [
    *REGEX_PATTERNS, "``", "…", "«", "'s", "n't", "-", "(",
    ")", ";", "|", "'", '"', "''", "2024-01-01", "utf-8", "1.5e-3", "1.5", "-3", ".5", "x**2",
    "1.2.3", "Content-Type", "little", "America/New_York", "Europe/Amsterdam", "12:30", "[UNK]",
    "#0d0887", 'f"{x}"', "reboot",  # a bare word passes, as before (the classifier's to settle)
]  # fmt: skip


@pytest.mark.parametrize("text", COMMANDS)
def test_attacker_text_reads_as_a_command(text: str) -> None:
    assert literals.reads_as_command(text)
    assert literals.bytes_read_as_command(text.encode())


@pytest.mark.parametrize("text", STATE_TEXT)
def test_regex_punctuation_and_values_are_not_commands(text: str) -> None:
    assert not literals.reads_as_command(text)
    if text.isascii():  # other UTF-8 is not `printable`: bytes of it keep the punctuation test
        assert not literals.bytes_read_as_command(text.encode())


@pytest.mark.parametrize("text", ["a.b", "x[0]", "f(x)", "import os", "lambda: 0"])
def test_code_is_what_python_parses_to_an_action(text: str) -> None:
    assert literals.acts_as_code(text)
    assert not literals.acts_as_code(text.replace(".", "\\.").replace("(", "(?:") + "\\")


def test_text_too_long_to_parse_counts_as_code() -> None:
    assert literals.acts_as_code("x." * 6_000) and not literals.acts_as_code("x" * 20_000)


@pytest.mark.parametrize(
    ("raw", "command"),
    [
        (b"\xe3`\xda\xe4\xc6[\x8c\xe2zM\x8c&", True),  # binary, no NUL, punctuation: a loader's
        (b"\xe3\xda\xe4\xc6\x8c\xe2zM\x8c", False),  # binary without any
        (b"\x15\r\x03v\t\x01M\x00\x02%", False),  # a NUL byte: no runner takes it
        (b"echo fastscan\x00", False),
        (rb"\bvalue\w{0,2}", False),  # a regex pattern as bytes
    ],
)
def test_bytes_read_as_command(raw: bytes, command: bool) -> None:
    assert literals.bytes_read_as_command(raw) is command
