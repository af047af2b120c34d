"""What literal str/bytes operands could be to a callee: something a loader runs, or text a
command line, code, a path or a URL needs (issue #15: call sites judged by their arguments).

`loadable` fails closed for nested loaders (callsites, nested_loaders); `reads_as_command` and
`bytes_read_as_command` decide whether an unlisted callable's literal arguments describe state
(unknown_calls). Pure functions over bytes and text: nothing here loads what it reads.
"""

from __future__ import annotations

import re

from ..facts import STATUS_BUDGET, STATUS_OK, ScanLimits
from ..tokenizer import tokenize

# Text a command line, code, a path or a URL needs: whitespace (arguments), shell and code
# punctuation, quotes, `=`, `/`, `\\`, `~`, a leading `.` or `-`, a short final `.ext` (file
# names, dotted addresses); IANA zone names (`America/New_York`: `/` only between capitalised
# segments) excepted. Dotted/dashed tokens (`little`, `utf-8`, `Content-Type`) pass. A bare word
# can still be a command without arguments (`reboot`): such a call is settled only by a confident
# classifier, like any FS103.
_HOSTILE_TEXT = re.compile(
    r"[\s;|&`$<>(){}\[\]'\"=/\\~*?!#%^]|^[.-]"
    r"|\.[A-Za-z0-9]{1,5}$"  # a file name (`tokenizer.bin`, `run.sh`), an address (`127.0.0.1`)
)
_ZONE_NAME = re.compile(r"[A-Z][\w+-]{0,39}(?:/[A-Z][\w+-]{0,39}){1,2}")


def reads_as_command(text: str) -> bool:
    """`text` holds a character a command, code, a path or a URL needs (`_HOSTILE_TEXT`)."""
    return bool(_HOSTILE_TEXT.search(text)) and not _ZONE_NAME.fullmatch(text)


def bytes_read_as_command(raw: bytes) -> bool:
    """Bytes that could be a command, code, a path or a URL: no NUL byte (os.system, exec,
    subprocess, open and http.client all refuse an embedded NUL) and `reads_as_command` as
    latin-1 text. Binary state (integers, floats, WKB, array buffers) nearly always holds one."""
    return b"\0" not in raw and reads_as_command(raw.decode("latin-1"))


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
