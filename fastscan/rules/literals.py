"""What literal str/bytes operands could be to a callee: something a loader runs, or text a
command line, code, a path or a URL needs (issue #15: call sites judged by their arguments).

`loadable` fails closed for nested loaders (callsites, nested_loaders); `reads_as_command` and
`bytes_read_as_command` decide whether an unlisted callable's literal arguments describe state
(unknown_calls). Pure functions over bytes and text: nothing here loads what it reads.
"""

from __future__ import annotations

import ast
import re
import warnings

from ..facts import STATUS_BUDGET, STATUS_OK, ScanLimits
from ..tokenizer import tokenize

# Text a runner needs beyond one bare word (`reads_as_command`). A bare word can be a command
# without arguments (`reboot`), a module or a file in the working directory: it passes, as before,
# and such a call is settled only by a confident classifier, like any FS103. Regex syntax
# (`\d`, `(?:`, `[^a]`, `{2,3}`, `^...$`, `a|b` after an escape) and punctuation tokens are no
# reason by themselves.
_SHELL = (
    r"\S\s+\S"  # a command and its arguments, or two commands on two lines
    r"|\$[\w{(@*#?!$'-]"  # expansion: `$(id)`, `${IFS}` (arguments without a space), `$HOME`
    # `;`, `&`, `|` after a word a program name could be (a pipeline `cat|dog` of programs is
    # no regex to a shell); a shell word that starts `\`, `^`, `?`, `[` names no program on PATH
    r"|(?<![^\s;&|()<>'\"`])[A-Za-z0-9_][\w.+-]*[;&|]+[\w./~$-]"
    r"|[<>][>&|]?[\w./~$(-]"  # a redirection: `>/tmp/x`, `>x`, `sh<x`, `2>&1`, `<(id)`
    r"|\{(?![\d,]*\})[^{}\s,]{0,99},[^{}\s]{0,99}\}"  # brace expansion `{rm,-rf,*}` (not `{2,3}`)
)
_PATH_OR_URL = (
    r"|^(?:[/~]|\\\\|[A-Za-z]:[\\/]|\.(?!\d+$)|-(?![\d.]*$))"  # `/`, `~`, UNC, `C:\`, `.`,
    # `..`, `./x`, `.ssh`, an option `-rf` (not `-`, `.5` or `-3`)
    r"|[\w.~(-]/[\w.~-]"  # a path joint `a/b`, `(/x` (`\d+/\d+` is none)
    r"|^[A-Za-z][\w+.-]{0,30}:/"  # a URL `http://x`, `file:/etc/passwd`
    r"|\.[0-9]*[A-Za-z][A-Za-z0-9]{0,4}$"  # a file name `tokenizer.bin`, `run.sh` (not `1.5`)
    r"|(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"  # an IPv4 address `127.0.0.1`
)
_CODE = (
    r"|__[A-Za-z]\w*__"  # a dunder: what `getattr` chains and format strings reach
    r"|\w="  # an assignment or a keyword argument (`a=1`, `LD_PRELOAD=...`)
    r"|^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"  # an object reference `os:system` (resolve_name)
    # a call in a format string a newer parser reads (PEP 701 reuses the quotes: `f"{f("x")}"`)
    r"|(?<![\w\\])[fFtT][rR]?[\"'][^{]{0,99}\{[^}]{0,99}[A-Za-z_]\w*\("
)
_HOSTILE_TEXT = re.compile(_SHELL + _PATH_OR_URL + _CODE)
_PUNCTUATION = re.compile(r"[\s;|&`$<>(){}\[\]'\"=/\\~*?!#%^]")  # for binary bytes only
# Regex group syntax a shell would read as a redirection: `(?P<name>`, `(?<name>`, `(?<=`,
# `(?<!`, `(?>`, `(?P>name)`, `(?P=name)`, `\k<name>`, `\g<name>`. Dropping them can only
# hide the truncation of a bare-named file in the working directory (`(?>x)`).
_REGEX_GROUPS = re.compile(
    r"\(\?(?:P?<[A-Za-z_]\w*>|<[=!]|>|P[>=][A-Za-z_]\w*\))|\\[kg]<[A-Za-z_]\w*>"
)
_ZONE_NAME = re.compile(r"[A-Z][\w+-]{0,39}(?:/[A-Z][\w+-]{0,39}){1,2}")
# Python source worth parsing: a call, a subscript, an attribute, an import or a lambda needs one.
_MAYBE_CODE = re.compile(r"[(\[]|\.\s*[A-Za-z_]|\bimport\b|\blambda\b")
_PARSE_MAX = 10_000  # longer text that might be code is not parsed: it counts as code
# What Python source needs to do anything when run: a bare name or constant does nothing.
_ACTING_NODES = (ast.Call, ast.Import, ast.ImportFrom, ast.Attribute, ast.Subscript, ast.Lambda)


def reads_as_command(text: str) -> bool:
    """`text` is more than a bare word to a runner: a shell command with arguments or operators
    (`sh -c`), Python source that calls, imports, subscripts or reads an attribute
    (`exec`/`eval`), a path or a URL (`open`, `os.remove`, `urllib`), a dotted module name
    (`importlib`), a file name or an address. IANA zone names (`America/New_York`) pass."""
    cleaned = _REGEX_GROUPS.sub("(", text) if "(?" in text or "<" in text else text
    if _HOSTILE_TEXT.search(cleaned) or _substitutes(text):
        return not _ZONE_NAME.fullmatch(text)
    return acts_as_code(text)


def _substitutes(text: str) -> bool:
    """A command substitution `` `id` ``: backticks pair up left to right, as a shell reads them
    (spaCy's "``" quote token, an empty pair, substitutes nothing; one left open is an error)."""
    parts = text.split("`")
    return any(parts[i] for i in range(1, len(parts) - 1, 2))


def acts_as_code(text: str) -> bool:
    """`text` parses as Python source (parsing only: `ast.parse` builds a tree and runs
    nothing) holding a call, an import, an attribute, a subscript or a lambda. Text that does
    not parse is no Python code (`exec` would refuse it too)."""
    if not _MAYBE_CODE.search(text):
        return False
    if len(text) > _PARSE_MAX:
        return True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in string literals warn
            tree = ast.parse(text.strip())  # a runner may strip an indented line
    except (SyntaxError, ValueError):  # ValueError: a NUL byte
        return False
    except (RecursionError, MemoryError):
        return True  # too deep to look at: fail closed
    return any(isinstance(node, _ACTING_NODES) for node in ast.walk(tree))


def bytes_read_as_command(raw: bytes) -> bool:
    """Bytes that could be a command, code, a path or a URL: no NUL byte (os.system, exec,
    subprocess, open and http.client all refuse an embedded NUL) and, as latin-1 text,
    `reads_as_command`, or binary (not `printable`) with any shell or code punctuation
    (`_PUNCTUATION`): binary without a NUL is no state a library wrote by itself (integers,
    floats, WKB, array buffers nearly always hold one) but may be a loader's input (marshal)."""
    if b"\0" in raw:
        return False
    text = raw.decode("latin-1")
    return reads_as_command(text) or (not printable(raw) and bool(_PUNCTUATION.search(text)))


# A Python name (not a dunder) or a number: source that, evaluated, looks a name up or makes a
# number and can call nothing (no call, attribute, subscript or operator syntax).
_NAME_OR_NUMBER = re.compile(
    r"(?!__)[A-Za-z_][A-Za-z0-9_]{0,99}|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
)


def inert_as_code(text: str) -> bool:
    """`text` run as Python source only names something or writes a number (`_NAME_OR_NUMBER`):
    what sympy's parser makes of a Symbol's name, never a call."""
    return _NAME_OR_NUMBER.fullmatch(text) is not None


_PRINTABLE = re.compile(rb"[\t\n\r\x20-\x7e]*")


def printable(raw: bytes) -> bool:
    """Only printable ASCII and line whitespace: text, not binary state."""
    return _PRINTABLE.fullmatch(raw) is not None


# What a loader opens besides a pickle: zip (torch, npz), compressed streams (joblib), npy.
_ARCHIVE_MAGIC = (
    b"PK", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18",
    b"\x93NUMPY", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda",
)  # fmt: skip


_PROTO = 0x80  # the PROTO opcode every protocol >= 2 pickle opens with
_LOADABLE_LIMITS = ScanLimits(max_opcodes=1_000_000, max_resync_opcodes=0)


def latin1_loadable(raw: bytes) -> bool:
    """The bytes `_codecs.encode(text, "latin1")` makes of UTF-8 text `raw` are loadable (not
    latin-1: encoding it raises, no bytes are made)."""
    try:
        return loadable(raw.decode("utf-8").encode("latin-1"))
    except UnicodeError:
        return False


def archive(buf: bytes) -> bool:
    """An archive or compressed stream a loader may open (its content is not a pickle here)."""
    return buf.startswith(_ARCHIVE_MAGIC) or b"PK\x05\x06" in buf


def loadable(buf: bytes) -> bool:
    """Whether a loader handed `buf` could run something: it imports a name where the
    tokenizer finds a pickle (anywhere, as `pickle.load` of a stream or a later segment would),
    or it is an archive or compressed stream whose content the scan does not open.

    A stream whose only imports are names the tokenizer cannot resolve (an extension-registry
    code, EXT1/2/4) counts only when it is a pickle: it reaches STOP, or opens with PROTO.
    Binary state often starts with such a byte (msgpack's map header 0x84 is EXT4) and then
    runs out; a loader fails there, on an unregistered code, before anything runs. A
    resolvable import counts however the stream ends: what runs before a failure has run."""
    if len(buf) < 4:
        return False
    if archive(buf):
        return True
    # a loader reads from the first byte (torch's legacy format: pickles back to back), so
    # no search for later pickles; a budget hit counts as loadable
    facts = tokenize(buf, _LOADABLE_LIMITS)
    if facts.nested or facts.status == STATUS_BUDGET:
        return True
    if any(g.resolved for g in facts.globals):
        return True
    return bool(facts.globals) and (facts.status == STATUS_OK or buf[0] == _PROTO)
