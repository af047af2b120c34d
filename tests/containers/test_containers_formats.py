"""Stage 2 (containers): PyTorch legacy, joblib, numpy, compression wrappers and archives
(nested zip, tar, 7z, polyglots), each built with the real library.

Malicious fixtures carry `os.system('echo fastscan-test')` and are only inspected with
pickletools (see containers_helpers.imports_of); benign files written here may be loaded.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import struct
import tarfile

import numpy as np
import pytest

from fastscan.containers.base import COMPLETE, ENCRYPTED
from tests.containers_helpers import (
    PAYLOAD_CMD,
    codes,
    imports_of,
    joblib_bytes,
    legacy_tar,
    payload_members,
    payload_pickle,
    scan,
    splice_after_array,
    stack_call,
    zip_bytes,
)

torch = pytest.importorskip("torch")
joblib = pytest.importorskip("joblib")


# -- PyTorch legacy -------------------------------------------------------------------------


def test_legacy_five_stacked_pickles() -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    c = scan(data)
    assert (c.format, c.status) == ("torch_legacy", COMPLETE)
    assert len(c.streams) == 5 and all(s.kind == "legacy_torch" for s in c.streams)
    assert [s.offset for s in c.streams][:2] == [0, 15]
    assert int(c.notes["legacy_storage_bytes"]) == 8 + 4 * 4


def test_legacy_payload_in_later_pickle() -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(1)}, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    streams = scan(data).streams
    sys_info_end = streams[2].offset + len(streams[2].data)
    evil = data[:sys_info_end] + payload_pickle(2) + data[streams[4].offset :]
    c = scan(evil)
    assert payload_members(c) == [""]
    assert c.streams[3].offset == sys_info_end


def test_forged_legacy_magic_reads_whole_file() -> None:
    magic = b"0x1950a86a20f9469cfc6c"
    forged = (
        b"\x80\x02cbuiltins\neval\n(X"
        + struct.pack("<I", len(magic))
        + magic
        + b"tR."
        + pickle.dumps(1001, protocol=2)
        + payload_pickle(2)
    )
    c = scan(forged)
    assert c.format == "torch_legacy"
    assert "legacy_magic_forged" in codes(c)
    assert [s.offset for s in c.streams] == [0] and len(c.streams[0].data) == len(forged)
    assert "os.system" in imports_of(c.streams[0].data)


def test_legacy_tar_layout() -> None:
    c = scan(legacy_tar(payload_pickle(2)))
    assert c.format == "torch_legacy"
    assert payload_members(c) == ["pickle"]
    storages = [s for s in c.streams if s.member == "storages"]
    assert len(storages) == 3  # count, one record, storage views: raw data skipped exactly
    assert len([s for s in c.streams if s.member == "tensors"]) == 2
    assert "legacy_tar_unparsed" not in codes(c)


# -- joblib -----------------------------------------------------------------------------------

JOBLIB_COMPRESSORS = ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"]


@pytest.mark.parametrize("compressor", [None, *JOBLIB_COMPRESSORS])
def test_joblib_dump_with_each_compressor(compressor: str | None) -> None:
    if compressor == "lz4":
        pytest.importorskip("lz4")
    obj = {"a": np.arange(50, dtype=np.float64), "o": np.array([1, "x"], dtype=object), "z": 7}
    data = joblib_bytes(obj, (compressor, 3) if compressor else 0)
    c = scan(data)
    assert (c.format, c.status) == ("joblib", COMPLETE)
    assert c.wrappers == ([compressor] if compressor else [])
    # the main pickle is one stream with the raw array bytes cut out; object arrays are their own
    assert [s.kind for s in c.streams] == ["joblib", "npy_object"]
    assert c.notes["joblib_joined_segments"] == "3"
    assert int(c.notes["joblib_array_bytes"]) >= 50 * 8
    assert not codes(c)


def test_joblib_payload_after_inline_array() -> None:
    benign = splice_after_array(stack_call(b"collections", b"OrderedDict", None))
    loaded = joblib.load(io.BytesIO(benign))  # the splice is a file joblib really loads
    assert loaded[0].shape == (100,) and type(loaded[1]).__name__ == "OrderedDict"
    evil = splice_after_array(stack_call(b"os", b"system", PAYLOAD_CMD))
    c = scan(evil)
    assert c.format == "joblib" and c.status == COMPLETE
    assert payload_members(c) == [""]
    array_at = evil.index(np.arange(100, dtype=np.float32).tobytes())
    payload = next(s for s in c.streams if "os.system" in imports_of(s.data))
    # one stream: the pickle before the array and the payload after it, joined as the loader reads
    assert payload.offset == 0
    joined = bytes(payload.data)
    assert evil[array_at : array_at + 400] not in joined  # the array bytes (and padding) are cut
    assert joined.endswith(evil[array_at + 400 :]) and evil.startswith(joined[:200])
    assert "joblib_array_extent_mismatch" not in codes(c)


def test_joblib_wrong_extent_is_flagged() -> None:
    data = joblib_bytes([np.arange(100, dtype=np.float32), "x"])
    shape_at = data.index(b"K\x64\x85")  # BININT1 100, TUPLE1: the shape (100,)
    forged = data[:shape_at] + b"K\x63" + data[shape_at + 2 :]  # claims 99 elements
    c = scan(forged)
    assert "joblib_array_extent_mismatch" in codes(c)
    assert c.streams[-1].offset < len(forged) - 400  # the raw region is handed over, not lost


# -- numpy ------------------------------------------------------------------------------------


def test_npy_plain_and_object() -> None:
    plain = io.BytesIO()
    np.save(plain, np.arange(10))
    c = scan(plain.getvalue(), name="x.npy")
    assert (c.format, c.status, c.streams, c.anomalies) == ("npy", COMPLETE, [], [])
    obj = io.BytesIO()
    np.save(obj, np.array([{"k": 1}], dtype=object), allow_pickle=True)
    c = scan(obj.getvalue())
    assert [s.kind for s in c.streams] == ["npy_object"]
    assert c.streams[0].data.startswith(b"\x80")


@pytest.mark.parametrize("saver", [np.savez, np.savez_compressed])
def test_npz_stored_and_deflated(saver: object) -> None:
    buf = io.BytesIO()
    saver(buf, a=np.arange(5), o=np.array([None, 1], dtype=object))  # type: ignore[operator]
    c = scan(buf.getvalue())
    assert (c.format, c.status) == ("npz", COMPLETE)
    assert [(s.member, s.kind) for s in c.streams] == [("o.npy", "npy_object")]


# -- archives and compression wrappers ------------------------------------------------------


@pytest.mark.parametrize(
    ("compress", "name"),
    [(gzip.compress, "gzip"), (bz2.compress, "bz2"), (lzma.compress, "xz")],
)
def test_single_file_wrappers(compress: object, name: str) -> None:
    c = scan(compress(payload_pickle(2)))  # type: ignore[operator]
    assert (c.format, c.wrappers, c.status) == ("raw_pickle", [name], COMPLETE)
    assert payload_members(c) == [""]


def test_lz4_wrapper() -> None:
    lz4_frame = pytest.importorskip("lz4.frame")
    c = scan(lz4_frame.compress(payload_pickle(2)))
    assert (c.format, c.wrappers) == ("raw_pickle", ["lz4"])
    assert payload_members(c) == [""]


def test_nested_zip_tar_7z_paths(torch_zip_bytes: bytes) -> None:
    py7zr = pytest.importorskip("py7zr")
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as tf:
        info = tarfile.TarInfo("data.pkl")
        body = payload_pickle(2)
        info.size = len(body)
        tf.addfile(info, io.BytesIO(body))
    inner = zip_bytes([("inner.tar", tar_buf.getvalue())])
    outer = zip_bytes([("inner.zip", inner), ("model.pt", torch_zip_bytes)], deflate=True)
    c = scan(outer)
    assert c.format == "zip"
    assert payload_members(c) == ["inner.zip/inner.tar/data.pkl"]
    assert "model.pt/archive/data.pkl" in [s.member for s in c.streams]
    seven = io.BytesIO()
    with py7zr.SevenZipFile(seven, "w") as archive:
        archive.writestr(outer, "outer.zip")
    c7 = scan(seven.getvalue(), name="model.pt")
    assert c7.format == "7z"
    assert payload_members(c7) == ["outer.zip/inner.zip/inner.tar/data.pkl"]


def test_password_protected_7z_is_encrypted() -> None:
    py7zr = pytest.importorskip("py7zr")
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password="pw") as archive:
        archive.writestr(pickle.dumps(1), "a.pkl")
    assert scan(buf.getvalue()).status == ENCRYPTED


def test_tar_zip_polyglot_reads_both() -> None:
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("a.pkl")
        info.size = len(payload_pickle(2))
        tf.addfile(info, io.BytesIO(payload_pickle(2)))
    c = scan(tar_buf.getvalue() + zip_bytes([("b.pkl", payload_pickle(0))]))
    assert "polyglot_tar_zip" in codes(c)
    assert payload_members(c) == ["a.pkl", "b.pkl"]


def test_joblib_pre_093_zfile() -> None:
    compat = pytest.importorskip("joblib.numpy_pickle_compat")
    buf = io.BytesIO()
    compat.write_zfile(buf, payload_pickle(2))
    assert buf.getvalue().startswith(b"ZF")
    c = scan(buf.getvalue())
    assert (c.format, c.wrappers) == ("raw_pickle", ["joblib_zfile"])
    assert payload_members(c) == [""]
