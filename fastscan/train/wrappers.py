"""Put a raw pickle (malicious or benign) into every container a loader accepts.

`wrap(container, payload, rng)` returns `(file bytes, typical extension)`. Archives are written
by a small zip writer here (fixed timestamps, optional flag/CRC/name tricks) around members taken
from real `torch.save` / `joblib.dump` / `numpy.save` outputs built by `benign.py`, so everything
except the payload is exactly what the libraries write. Output is deterministic for a seed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from fastscan.containers import anomalies as A
from fastscan.train import benign
from fastscan.train.payloads import as_snippet

__all__ = [
    "CONTAINERS",
    "FIXTURES",
    "ContainerSpec",
    "ZipMember",
    "build_zip",
    "inject",
    "inject_into_torch_zip",
    "wrap",
]


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    reaches: bool  # does the usual loader of this container execute the payload?
    how: str  # which loader (and options) reaches it, or why none does
    accepts: str = "stream"  # stream: any pickle bytes; snippet: a spliceable payload only
    needs_torch: bool = False


class ZipMember(NamedTuple):
    name: str
    data: bytes
    deflate: bool = False
    flags: int = 0  # general-purpose bits to force (0x1, 0x20, 0x40 …)
    crc: int | None = None  # force a (wrong) CRC
    local_name: str | None = None  # local-header name that differs from the central directory
    encrypted_with: bytes | None = None  # ZipCrypto password (B5)
    stored_body: bytes | None = None  # compressed bytes copied from a real archive (deflate=True)


def build_zip(members: list[ZipMember], prefix: bytes = b"") -> bytes:
    """A zip laid out exactly like PyTorch's writer, plus the anomalies tests need.

    Like `torch.save`: version 0, flags 0x808, DOS time/date 0, CRC and sizes in a data
    descriptor, "FB" extra padding to 64-byte data alignment, zip64 end records. Benign and
    malicious torch archives must not differ in layout, or a classifier learns the writer.
    """
    out = bytearray(prefix)
    central = bytearray()
    for m in members:
        crc = zlib.crc32(m.data)
        body = m.data
        if m.stored_body is not None:
            body = m.stored_body
        elif m.deflate:
            comp = zlib.compressobj(6, zlib.DEFLATED, -15)
            body = comp.compress(m.data) + comp.flush()
        flags = m.flags | 0x808
        if m.encrypted_with is not None:
            body = _zipcrypto(m.encrypted_with, body)
            flags |= 0x1
        crc_field = crc if m.crc is None else m.crc
        local = (m.local_name or m.name).encode()
        offset = len(out) - len(prefix)
        gap = (-(len(out) + 30 + len(local) + 4)) % 64
        extra = struct.pack("<HH", 0x4246, gap) + b"Z" * gap  # torch's "FB" padding record
        method, version = (8, 20) if m.deflate else (0, 0)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, version, flags, method, 0, 0, 0, 0, 0,
                           len(local), len(extra))  # fmt: skip
        out += local + extra + body
        out += struct.pack("<IIII", 0x08074B50, crc_field, len(body), len(m.data))
        fields = (0, version, flags, method, 0, 0, crc_field, len(body), len(m.data))
        central += struct.pack("<IHHHHHHIII", 0x02014B50, *fields)
        central += struct.pack("<HHHHHII", len(m.name.encode()), 0, 0, 0, 0, 0, offset)
        central += m.name.encode()
    cd_offset = len(out) - len(prefix)
    out += central
    n, zip64_at = len(members), len(out) - len(prefix)
    out += struct.pack(
        "<IQHHIIQQQQ", 0x06064B50, 44, 0x31E, 45, 0, 0, n, n, len(central), cd_offset
    )
    out += struct.pack("<IIQI", 0x07064B50, 0, zip64_at, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), cd_offset, 0)
    return bytes(out)


def plain_zip(members: list[tuple[str, bytes]], *, deflate: bool, zip64: bool = False) -> bytes:
    """A zip as Python's zipfile writes it (numpy's savez uses force_zip64=True)."""
    out = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", compression=method, allowZip64=True) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            with zf.open(info, "w", force_zip64=zip64) as fh:
                fh.write(data)
    return out.getvalue()


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _crc_table()


def _zipcrypto(password: bytes, data: bytes) -> bytes:
    """Traditional PKWARE encryption, so B5 has a really encrypted member."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = (keys[0] >> 8) ^ _CRC[(keys[0] ^ byte) & 0xFF]
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = (keys[2] >> 8) ^ _CRC[(keys[2] ^ (keys[1] >> 24)) & 0xFF]

    for byte in password:
        update(byte)
    # The last header byte checks the password: with a data descriptor (flag 0x8, always set
    # here) it is the high byte of the DOS time, which is 0.
    header = bytes(range(11)) + b"\x00"
    out = bytearray()
    for byte in header + data:
        t = keys[2] | 2
        out.append(byte ^ (((t * (t ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def _zip_members(data: bytes) -> list[ZipMember]:
    """Members of a zip written by a real library (our own benign file: zipfile is fine)."""
    members = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            deflated = info.compress_type == zipfile.ZIP_DEFLATED
            stored = None
            if deflated:  # keep the writer's own deflate stream, byte for byte
                start = info.header_offset + 26
                skip = sum(struct.unpack_from("<HH", data, start))
                begin = start + 4 + skip
                stored = data[begin : begin + info.compress_size]
            members.append(ZipMember(info.filename, zf.read(info), deflated, stored_body=stored))
    return members


def _data_pkl(members: list[ZipMember]) -> int:
    return next(i for i, m in enumerate(members) if m.name.endswith("/data.pkl"))


def inject(stream: bytes, snippet: bytes, position: str) -> bytes:
    """Splice a stack-neutral snippet into a benign stream at start, middle or end."""
    import pickletools

    offsets = [pos for _, _, pos in pickletools.genops(stream)]
    if position == "start":  # right after PROTO (and FRAME, which C loaders do not enforce)
        at = offsets[1] if stream[:1] == b"\x80" else 0
    elif position == "end":
        at = offsets[-1]  # before STOP
    else:
        at = offsets[len(offsets) // 2]
    return stream[:at] + snippet + stream[at:]


def inject_into_torch_zip(archive: bytes, snippet: bytes, position: str) -> bytes:
    """A real torch.save archive with `snippet` spliced into its data.pkl at `position`."""
    members = _zip_members(archive)
    i = _data_pkl(members)
    spliced = inject(members[i].data, snippet, position)
    members[i] = members[i]._replace(data=spliced, stored_body=None)
    return build_zip(members)


def _torch_zip(payload: bytes, rng: random.Random, mode: str, **tweak: object) -> bytes:
    members = _zip_members(benign.torch_zip_base(rng.randrange(16)))
    i = _data_pkl(members)
    prefix = members[i].name.rsplit("/", 1)[0]
    if mode == "replace":
        if tweak.get("local_name") == "swap":  # same length, so only the names disagree
            tweak["local_name"] = members[i].name.replace("data.pkl", "datap.kl")
        members[i] = members[i]._replace(data=payload, stored_body=None, **tweak)  # type: ignore[arg-type]
    elif mode == "extra":
        name = rng.choice(["extra.pkl", "data/99", "tokenizer.pkl", ".data/meta.pkl"])
        members.insert(rng.randrange(len(members) + 1), ZipMember(f"{prefix}/{name}", payload))
    elif mode == "rename":
        new = rng.choice(["data.txt", "data", "config.json", "weights.bin"])
        members[i] = ZipMember(f"{prefix}/{new}", payload)
    else:  # inject a snippet into the real data.pkl
        position = str(tweak.get("position") or rng.choice(["start", "middle", "end"]))
        members[i] = members[i]._replace(data=inject(members[i].data, payload, position))
        members[i] = members[i]._replace(stored_body=None)
    return build_zip(members)


def _legacy(payload: bytes, rng: random.Random, forged: bool) -> bytes:
    """Legacy torch file: magic, protocol, sys_info, main pickle, storage keys, raw storages."""
    data = benign.torch_legacy_base(rng.randrange(16))
    bounds = benign.pickle_bounds(data, 5)
    parts = [data[a:b] for a, b in bounds]
    if forged:  # A5: the magic comes from eval(); the payload is the main pickle
        from fastscan.train.payloads import forged_legacy_magic

        parts[0], parts[3] = forged_legacy_magic(rng), payload
    else:
        parts[rng.randrange(4)] = payload  # magic, protocol, sys_info or the main pickle
    return b"".join(parts) + data[bounds[-1][1] :]


def _joblib_after_array(snippet: bytes, rng: random.Random) -> bytes:
    data, array_bytes = benign.joblib_with_array(rng.randrange(16))
    at = data.index(array_bytes) + len(array_bytes)
    return data[:at] + snippet + data[at:]


def npy_object(payload: bytes, rng: random.Random) -> bytes:
    """`.npy` header declaring an object array, followed by the pickle `np.load` unpickles."""
    shape = (rng.randint(1, 16),)
    header = f"{{'descr': '|O', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin-1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


def _npz(payload: bytes, rng: random.Random, deflate: bool) -> bytes:
    """An npz as numpy writes it, with one object-array member holding the payload."""
    members = [(f"{rng.choice(['arr_0', 'labels', 'meta'])}.npy", npy_object(payload, rng))]
    for k in range(rng.randint(0, 2)):
        members.append((f"x{k}.npy", benign.npy_numeric(rng.randrange(1000))))
    rng.shuffle(members)
    return plain_zip(members, deflate=deflate, zip64=True)


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _sevenzip(members: list[tuple[str, bytes]]) -> bytes:
    from unittest import mock

    import py7zr
    from py7zr.helpers import ArchiveTimestamp

    fixed = ArchiveTimestamp.from_datetime(315532800.0)  # 1980-01-01: deterministic archives
    out = io.BytesIO()
    pin = mock.patch.object(ArchiveTimestamp, "from_now", staticmethod(lambda: fixed))
    with pin, py7zr.SevenZipFile(out, "w") as archive:
        for name, data in members:
            archive.writestr(data, name)
    return out.getvalue()


def _zlib(data: bytes, wbits: int) -> bytes:
    comp = zlib.compressobj(3, zlib.DEFLATED, wbits)
    return comp.compress(data) + comp.flush()


def _lz4(data: bytes) -> bytes:
    import lz4.frame

    return bytes(lz4.frame.compress(data))


def _torchscript(payload: bytes, rng: random.Random) -> bytes:
    members = _zip_members(benign.torchscript_base(rng.randrange(2)))
    target = rng.choice(["/data.pkl", "/constants.pkl"])
    i = next(k for k, m in enumerate(members) if m.name.endswith(target))
    members[i] = members[i]._replace(data=payload, stored_body=None)
    return build_zip(members)


_Wrapper = Callable[[bytes, random.Random], bytes]
_EXT: dict[str, list[str]] = {
    "raw": [".pkl", ".pickle", ".bin", ".pt", ".p", ".dat", ".data", ".distcp", ".metadata", ""],
    "torch": [".pt", ".pth", ".bin", ".ckpt"],
    "joblib": [".joblib", ".pkl", ".jbl"],
    "zip": [".zip", ".pt", ".bin"],
}


def _spec(
    name: str, reaches: bool, how: str, fn: _Wrapper, ext: str | list[str], **kw: object
) -> None:
    CONTAINERS[name] = ContainerSpec(name, reaches, how, **kw)  # type: ignore[arg-type]
    _WRAPPERS[name] = (fn, [ext] if isinstance(ext, str) else ext)


CONTAINERS: dict[str, ContainerSpec] = {}
_WRAPPERS: dict[str, tuple[_Wrapper, list[str]]] = {}
_T = {"needs_torch": True}

_spec("raw", True, "pickle.load", lambda p, r: p, _EXT["raw"])
_spec(
    "torch_zip",
    True,
    "torch.load(weights_only=False): data.pkl",
    lambda p, r: _torch_zip(p, r, "replace"),
    _EXT["torch"],
    **_T,
)
_spec(
    "torch_zip_injected",
    True,
    "torch.load(weights_only=False): spliced into data.pkl",
    lambda p, r: _torch_zip(p, r, "inject"),
    _EXT["torch"],
    accepts="snippet",
    **_T,
)
_spec(
    "torch_zip_extra_member",
    False,
    "torch.load ignores members it does not reference",
    lambda p, r: _torch_zip(p, r, "extra"),
    _EXT["torch"],
    **_T,
)
_spec(
    "torch_zip_renamed_member",
    False,
    "only via torch.load(pickle_file=…) trampolines (A2)",
    lambda p, r: _torch_zip(p, r, "rename"),
    _EXT["torch"],
    **_T,
)
_spec(
    "torch_legacy",
    True,
    "torch.load(weights_only=False) legacy path loads pickles 1–4",
    lambda p, r: _legacy(p, r, False),
    _EXT["torch"],
    **_T,
)
_spec(
    "torch_legacy_forged_magic",
    True,
    "legacy loader evaluates the forged magic first (A5)",
    lambda p, r: _legacy(p, r, True),
    _EXT["torch"],
    **_T,
)
_spec(
    "torchscript",
    False,
    "torch.jit.load uses a restricted C++ unpickler",
    _torchscript,
    [".pt", ".torchscript"],
    **_T,
)
_spec(
    "joblib_after_array",
    True,
    "joblib.load resumes unpickling after the raw array (A12)",
    _joblib_after_array,
    _EXT["joblib"],
    accepts="snippet",
)
_spec("npy_object", True, "numpy.load(allow_pickle=True)", npy_object, ".npy")
_spec(
    "npz_stored",
    True,
    "numpy.load(allow_pickle=True)[member]",
    lambda p, r: _npz(p, r, False),
    ".npz",
)
_spec(
    "npz_deflated",
    True,
    "numpy.load(allow_pickle=True)[member]",
    lambda p, r: _npz(p, r, True),
    ".npz",
)


def _flagged(flag: int) -> _Wrapper:
    return lambda p, r: _torch_zip(p, r, "replace", flags=flag)


for _flag in (0x1, 0x20, 0x40):
    _spec(
        f"zip_flag_{_flag:#x}",
        False,
        "torch 2.13 miniz refuses these flags; older torch read them (B1/B2)",
        _flagged(_flag),
        _EXT["torch"],
        **_T,
    )
_spec(
    A.ZIP_CRC_MISMATCH.code,  # named after the anomaly it shows the scanner
    True,
    "torch does not check CRCs (B4)",
    lambda p, r: _torch_zip(p, r, "replace", crc=zlib.crc32(p) ^ 0xA5A5A5A5),
    _EXT["torch"],
    **_T,
)
_spec(
    A.ZIP_NAME_MISMATCH.code,  # named after the anomaly it shows the scanner
    True,
    "torch reads central-directory names (B3)",
    lambda p, r: _torch_zip(p, r, "replace", local_name="swap"),
    _EXT["torch"],
    **_T,
)
_spec(
    A.ZIP_PREFIX_DATA.code,  # named after the anomaly it shows the scanner
    True,
    "torch sees no PK magic and unpickles the prefix (B7)",
    lambda p, r: p + benign.torch_zip_base(r.randrange(16)),
    _EXT["torch"],
    **_T,
)
_spec(
    "zip_in_zip",
    False,
    "needs an extracting loader",
    lambda p, r: plain_zip(
        [("model/inner.zip", plain_zip([("model.pkl", p)], deflate=False))],
        deflate=r.random() < 0.5,
    ),
    _EXT["zip"],
)
_spec(
    "tar_in_zip",
    False,
    "needs an extracting loader",
    lambda p, r: plain_zip([("model.tar", _tar([("model.pkl", p)]))], deflate=r.random() < 0.5),
    _EXT["zip"],
)
_spec(
    "tar",
    True,
    "torch.load(weights_only=False) legacy tar reads 'storages' first",
    lambda p, r: _tar([("storages", p), ("sys_info", benign.plain_pickle(r.randrange(9)))]),
    [".tar", ".pt"],
)
_spec(
    "7z",
    False,
    "only custom loaders unpack 7z (A7)",
    lambda p, r: _sevenzip([("model.pkl", p)]),
    [".7z", ".pt"],
)
_spec(
    "gzip",
    True,
    "pandas.read_pickle / joblib.load sniff gzip",
    lambda p, r: gzip.compress(p, 6, mtime=0),
    [".pkl.gz", ".gz"],
)
_spec(
    "bz2",
    True,
    "pandas.read_pickle / joblib.load sniff bz2",
    lambda p, r: bz2.compress(p, 9),
    [".pkl.bz2", ".bz2"],
)
_spec(
    "xz",
    True,
    "pandas.read_pickle / joblib.load sniff xz",
    lambda p, r: lzma.compress(p),
    [".pkl.xz", ".xz"],
)
_spec(
    "lz4",
    True,
    "joblib.load sniffs the lz4 frame magic",
    lambda p, r: _lz4(p),
    [".pkl.lz4", ".lz4"],
)
_spec("joblib_zlib", True, "joblib.load", lambda p, r: _zlib(p, 15), [".joblib", ".pkl.z"])
_spec("joblib_gzip", True, "joblib.load", lambda p, r: _zlib(p, 31), [".joblib", ".pkl.gz"])
_spec("joblib_bz2", True, "joblib.load", lambda p, r: bz2.compress(p, 3), [".joblib", ".pkl.bz2"])
_spec(
    "joblib_xz",
    True,
    "joblib.load",
    lambda p, r: lzma.compress(p, lzma.FORMAT_XZ, preset=3),
    [".joblib", ".pkl.xz"],
)
_spec(
    "joblib_lzma",
    True,
    "joblib.load",
    lambda p, r: lzma.compress(p, lzma.FORMAT_ALONE, preset=3),
    [".joblib", ".pkl.lzma"],
)
_spec("joblib_lz4", True, "joblib.load", lambda p, r: _lz4(p), [".joblib", ".pkl.lz4"])


def wrap(container: str, payload: bytes, rng: random.Random) -> tuple[bytes, str]:
    """File bytes holding `payload` in `container`, and a typical extension for it.

    Snippet containers (`CONTAINERS[c].accepts == "snippet"`) need a payload that
    `payloads.as_snippet` accepts; it is converted here.
    """
    fn, exts = _WRAPPERS[container]
    if CONTAINERS[container].accepts == "snippet":
        payload = as_snippet(payload)
    return fn(payload, rng), rng.choice(exts)


# -- archive-abuse fixtures (B5, B6): benign content, unusual archives ------------------------
def _encrypted(rng: random.Random) -> bytes:
    data = benign.plain_pickle(rng.randrange(99))
    return build_zip(
        [ZipMember("model.pkl", data, encrypted_with=b"fastscan-%d" % rng.randrange(99))]
    )


def _traversal(rng: random.Random) -> bytes:
    name = rng.choice(["../../../tmp/fastscan.pkl", "/tmp/fastscan-abs.pkl", "a/../../b.pkl"])
    return plain_zip([(name, benign.plain_pickle(rng.randrange(99)))], deflate=False)


def _symlink(rng: random.Random) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        link = tarfile.TarInfo("model.pkl")
        link.type, link.linkname, link.mtime = (
            tarfile.SYMTYPE,
            rng.choice(["/etc/passwd", "../../x"]),
            0,
        )
        tar.addfile(link)
        data = benign.plain_pickle(rng.randrange(99))
        info = tarfile.TarInfo("config.pkl")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _bomb(rng: random.Random) -> bytes:
    size = rng.choice([64, 128]) << 20  # deflates ~1000:1; the file stays ~100 KiB
    return plain_zip([("model.pkl", b"\x00" * size)], deflate=True)


FIXTURES: dict[str, tuple[Callable[[random.Random], bytes], str]] = {
    "zip_encrypted": (_encrypted, ".zip"),
    "zip_path_traversal": (_traversal, ".zip"),
    "tar_symlink": (_symlink, ".tar"),
    "zip_bomb": (_bomb, ".zip"),
}
