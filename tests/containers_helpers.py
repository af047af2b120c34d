"""Byte-level builders for container edge cases (zip tricks, payload pickles, ZipCrypto).

Payload pickles are built by hand and only ever inspected with pickletools: never unpickled.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import tarfile
import zipfile
import zlib
from typing import Any

import numpy as np

from fastscan.containers import Container, open_container

PAYLOAD_CMD = b"echo fastscan-test"


def payload_pickle(protocol: int = 2) -> bytes:
    """A harmless `os.system('echo fastscan-test')` pickle; protocol 0 has no PROTO header."""
    call = b"cos\nsystem\n(S'" + PAYLOAD_CMD + b"'\ntR."
    if protocol == 0:
        return call
    if protocol < 4:
        return b"\x80" + bytes([protocol]) + call
    body = (
        b"\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c"
        + bytes([len(PAYLOAD_CMD)])
        + PAYLOAD_CMD
        + b"\x94\x85\x94R\x94."
    )
    return b"\x80" + bytes([protocol]) + body


def imports_of(data: Any) -> list[str]:
    """'module.name' of every GLOBAL/STACK_GLOBAL/INST in the pickle(s) of `data` (genops only)."""
    found: list[str] = []
    buf = bytes(data)
    pos = 0
    while pos < len(buf):
        strings: list[str] = []
        stream = io.BytesIO(buf)
        stream.seek(pos)
        end = None
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
            end = stream.tell()
        except ValueError:
            break
        pos = end
    return found


def zip_bytes(members: list[tuple[str, bytes]], deflate: bool = False) -> bytes:
    out = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return out.getvalue()


def _headers(data: bytes, sig: bytes) -> list[int]:
    out, pos = [], data.find(sig)
    while pos >= 0:
        out.append(pos)
        pos = data.find(sig, pos + 4)
    return out


def set_flags(data: bytes, flag: int) -> bytes:
    """OR `flag` into the general-purpose flags of every local and central header."""
    buf = bytearray(data)
    for pos in _headers(data, b"PK\x03\x04"):
        (old,) = struct.unpack_from("<H", buf, pos + 6)
        struct.pack_into("<H", buf, pos + 6, old | flag)
    for pos in _headers(data, b"PK\x01\x02"):
        (old,) = struct.unpack_from("<H", buf, pos + 8)
        struct.pack_into("<H", buf, pos + 8, old | flag)
    return bytes(buf)


def break_crc(data: bytes) -> bytes:
    """Invert every CRC (local and central): zipfile refuses to read, torch does not care."""
    buf = bytearray(data)
    for pos in _headers(data, b"PK\x03\x04"):
        (crc,) = struct.unpack_from("<I", buf, pos + 14)
        struct.pack_into("<I", buf, pos + 14, crc ^ 0xFFFFFFFF)
    for pos in _headers(data, b"PK\x01\x02"):
        (crc,) = struct.unpack_from("<I", buf, pos + 16)
        struct.pack_into("<I", buf, pos + 16, crc ^ 0xFFFFFFFF)
    return bytes(buf)


def rename_central(data: bytes, old: bytes, new: bytes) -> bytes:
    """Change a name in the central directory only (same length), as in CVE-2025-1944."""
    assert len(old) == len(new)
    cd = data.find(b"PK\x01\x02")
    return data[:cd] + data[cd:].replace(old, new)


def strip_central(data: bytes) -> bytes:
    """Drop the central directory and EOCD: only local headers remain."""
    return data[: data.find(b"PK\x01\x02")]


# -- ZipCrypto (traditional PKWARE encryption), to build a real password-protected zip --------

_CRC_TABLE = [0] * 256
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
    _CRC_TABLE[_i] = _c


def _crc_byte(crc: int, b: int) -> int:
    return (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]


def _zipcrypto(plain: bytes, password: bytes, check: int) -> bytes:
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(b: int) -> None:
        keys[0] = _crc_byte(keys[0], b)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = _crc_byte(keys[2], keys[1] >> 24)

    for b in password:
        update(b)
    out = bytearray()
    for b in os.urandom(11) + bytes([check]) + plain:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(b ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(b)
    return bytes(out)


def encrypted_zip(name: str, plain: bytes, password: bytes) -> bytes:
    """A deflated, ZipCrypto-encrypted one-member zip that `zipfile` can open with the password."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = comp.compress(plain) + comp.flush()
    crc = zlib.crc32(plain) & 0xFFFFFFFF
    body = _zipcrypto(deflated, password, crc >> 24)
    raw_name = name.encode()
    local = (
        struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            1,
            8,
            0,
            0x21,
            crc,
            len(body),
            len(plain),
            len(raw_name),
            0,
        )
        + raw_name
    )
    central = (
        struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            1,
            8,
            0,
            0x21,
            crc,
            len(body),
            len(plain),
            len(raw_name),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + raw_name
    )
    cd_offset = len(local) + len(body)
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), cd_offset, 0)
    return local + body + central + eocd


def sparse_zip(path: str, small: list[tuple[str, bytes]], big_name: str, big_size: int) -> None:
    """A stored zip whose member `big_name` is `big_size` bytes of file hole (costs no disk)."""
    entries = []
    with open(path, "wb") as fh:
        for name, data in [*small, (big_name, None)]:
            raw_name = name.encode()
            size = big_size if data is None else len(data)
            crc = 0 if data is None else zlib.crc32(data) & 0xFFFFFFFF
            offset = fh.tell()
            fh.write(
                struct.pack(
                    "<4sHHHHHIIIHH",
                    b"PK\x03\x04",
                    20,
                    0,
                    0,
                    0,
                    0x21,
                    crc,
                    size,
                    size,
                    len(raw_name),
                    0,
                )
                + raw_name
            )
            if data is None:
                fh.seek(size, 1)
            else:
                fh.write(data)
            entries.append((raw_name, crc, size, offset))
        cd_offset = fh.tell()
        for raw_name, crc, size, offset in entries:
            fh.write(
                struct.pack(
                    "<4sHHHHHHIIIHHHHHII",
                    b"PK\x01\x02",
                    20,
                    20,
                    0,
                    0,
                    0,
                    0x21,
                    crc,
                    size,
                    size,
                    len(raw_name),
                    0,
                    0,
                    0,
                    0,
                    0,
                    offset,
                )
                + raw_name
            )
        cd_size = fh.tell() - cd_offset
        fh.write(
            struct.pack(
                "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), cd_size, cd_offset, 0
            )
        )


def joblib_bytes(obj: object, compress: object = 0) -> bytes:
    """What `joblib.dump(obj, compress=compress)` writes (benign objects only)."""
    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf, compress=compress)
    return buf.getvalue()


def splice_after_array(call: bytes) -> bytes:
    """joblib dump of [array, <call>] where <call> replaces a placeholder after the array."""
    data = joblib_bytes([np.arange(100, dtype=np.float32), "PLACEHOLDER"])
    frame = data.rindex(b"\x95")  # the frame joblib opens after the array bytes
    body = call + b"e."
    return data[:frame] + b"\x95" + struct.pack("<Q", len(body)) + body


def stack_call(module: bytes, name: bytes, arg: bytes | None) -> bytes:
    out = b"\x8c" + bytes([len(module)]) + module + b"\x94\x8c" + bytes([len(name)]) + name
    out += b"\x94\x93\x94"
    if arg is None:
        return out + b")\x94R\x94"
    return out + b"\x8c" + bytes([len(arg)]) + arg + b"\x94\x85\x94R\x94"


def legacy_tar(pickle_member: bytes) -> bytes:
    """A torch 0.1.x tar checkpoint: storages + tensors records around `pickle_member`."""
    storages = (
        pickle.dumps(1, protocol=2)
        # (key, location, storage class) as torch writes it: the class is a GLOBAL.
        + b"\x80\x02X\x02\x00\x00\x00k0X\x03\x00\x00\x00cpuctorch\nFloatStorage\n\x87."
        + struct.pack("<q", 2)
        + b"\0" * 8
        + pickle.dumps([], protocol=2)
    )
    tensors = (
        pickle.dumps(1, protocol=2)
        + pickle.dumps(("t0", "k0", "FloatTensor"), protocol=2)
        + struct.pack("<ii", 1, 0)
        + struct.pack("<qq", 2, 1)
        + struct.pack("<q", 0)
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, body in (("storages", storages), ("tensors", tensors), ("pickle", pickle_member)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def scan(source: object, **kw: object) -> Container:
    """open_container, with each stream's bytes copied (the views are released on exit)."""
    with open_container(source, **kw) as c:  # type: ignore[arg-type]
        c.streams = [s.__class__(s.member, s.offset, bytes(s.data), s.kind) for s in c.streams]
        return c


def payload_members(c: Container) -> list[str]:
    return [s.member for s in c.streams if "os.system" in imports_of(s.data)]


def codes(c: Container) -> set[str]:
    return {a.code for a in c.anomalies}
