"""Name a buffer's format from its first bytes. The extension is never consulted.

`sniff` only routes; readers verify (a "zlib" that does not inflate falls back to a pickle probe).
Order matters: strict binary magics first, then the pickle probe (protocol 0/1 pickles start with
printable letters), then the text-like formats.
"""

from __future__ import annotations

import json
import re
import struct

from ..opcodes import START_BYTES
from ..tokenizer import breaks_before_import
from . import formats as F
from ._probe import parses_as_pickle, prefix_is_pickle
from .base import Buffer

# The legacy (pre-1.6) torch.save magic number, pickled as LONG1 by protocol 2.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_MAGIC_PICKLE = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little") + b"."

ZIP_LOCAL = b"PK\x03\x04"
ZIP_EOCD = b"PK\x05\x06"
NPY_MAGIC = b"\x93NUMPY"
LFS_PREFIX = b"version https://git-lfs.github.com/spec/"
# Two letters alone are too weak: tensor bytes start with "ZF" often enough on a big mirror.
_JOBLIB_ZFILE = re.compile(rb"ZF0x[0-9a-fA-F]{1,17}L? *\x78")


def has_zip_eocd(buf: Buffer) -> bool:
    """An end-of-central-directory record near the end (zip with prepended data, or polyglot)."""
    tail = bytes(memoryview(buf)[-(65536 + 22) :])
    return tail.rfind(ZIP_EOCD) >= 0


def is_tar(buf: Buffer) -> bool:
    head = memoryview(buf)
    if len(head) < 512:
        return False
    if bytes(head[257:262]) == b"ustar":
        return True
    # Old v7 tar: no magic; validate the header checksum instead.
    block = bytes(head[:512])
    try:
        stored = int(block[148:156].split(b"\0")[0].strip() or b"-1", 8)
    except ValueError:
        return False
    if stored < 0:
        return False
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return stored == computed and block[0] != 0


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack_from("<Q", head)
    return 2 <= n < 100_000_000 and head[8:9] == b"{" and head[9:10] in (b'"', b"}", b" ")


def _is_onnx(head: bytes) -> bool:
    # ModelProto: field 1 (ir_version, varint, tag 0x08) then usually 0x12/0x1a/0x3a strings.
    return len(head) > 4 and head[0] == 0x08 and head[1] < 0x20 and head[2] in b"\x12\x1a\x22\x3a"


_CONTROL_CHARS = re.compile("[\x00-\x08\x0e-\x1f]")  # not in text (tab..CR are)


def _text_kind(head: bytes) -> str:
    sample = head[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # a multibyte char cut by the sample is fine
            return ""
        text = sample[: exc.start].decode("utf-8")
    if _CONTROL_CHARS.search(text):
        return ""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(head)
            return F.JSON
        except RecursionError:  # b"[[[[…": too deep for the json module, still JSON-like text
            return F.TEXT
        except ValueError:
            return F.JSON if len(head) >= 4096 else F.TEXT
    return F.TEXT


def sniff(buf: Buffer) -> str:
    """Format name of `buf` by content (see `Container.format` for the vocabulary)."""
    view = memoryview(buf)
    if len(view) == 0:
        return F.EMPTY
    head = bytes(view[:4096])
    if head.startswith(ZIP_LOCAL) or head.startswith(b"PK\x05\x06"):
        return F.ZIP
    if head.startswith(NPY_MAGIC):
        return F.NPY
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return F.SEVENZ
    if head.startswith(b"\x1f\x8b"):
        return F.GZIP
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return F.BZ2
    if head.startswith(b"\xfd7zXZ\x00"):
        return F.XZ
    if head.startswith(b"\x04\x22\x4d\x18"):
        return F.LZ4
    if _JOBLIB_ZFILE.match(head):
        return F.JOBLIB_ZFILE  # joblib < 0.9.3 zlib dump: "ZF", hex length padded to 19, zlib
    if head.startswith(LEGACY_MAGIC_PICKLE):
        return F.TORCH_LEGACY
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return F.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return F.JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return F.GIF
    if head.startswith(b"%PDF-"):
        return F.PDF
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return F.HDF5
    if head.startswith(LFS_PREFIX):
        return F.GIT_LFS_POINTER
    if is_tar(view):
        return F.TAR
    if prefix_is_pickle(view):
        return F.RAW_PICKLE
    # zlib / raw lzma have weak magics; the reader confirms them by decompressing.
    zlib_levels = (b"\x01", b"\x5e", b"\x9c", b"\xda")
    if head[:1] == b"\x78" and head[1:2] in zlib_levels and (head[0] * 256 + head[1]) % 31 == 0:
        return F.ZLIB
    if head[:3] == b"\x5d\x00\x00":
        return F.LZMA
    if _is_safetensors(head):
        return F.SAFETENSORS
    if _is_onnx(head):
        return F.ONNX
    if has_zip_eocd(view):
        return F.ZIP  # data before the first local header (B7)
    if not breaks_before_import(view) and parses_as_pickle(view):
        return F.RAW_PICKLE
    kind = _text_kind(head)
    return kind or F.UNKNOWN


# First bytes of everything an archive member is read further for: a pickle's first opcode (the
# legacy torch magic is one) and the magics of zip, npy, 7z, gzip, bz2, xz, lz4, joblib ZF, zlib
# and raw lzma. Tar and a zip with prepended data have no leading magic; the native zip listing
# (`ZipEntry.routable`) checks them. Specification: tests/specs/may_route.py.
_ROUTE_FIRST_BYTES = START_BYTES | frozenset(b"P\x937\x1fB\xfd\x04Z\x78\x5d")
ROUTE_FIRST = bytes(int(b in _ROUTE_FIRST_BYTES) for b in range(256))
