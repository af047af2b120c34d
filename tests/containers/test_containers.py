"""Stage 2 (containers): sniffing by content, files that cannot be read, budgets, resources
and mutated containers that must never raise.

Malicious fixtures carry `os.system('echo fastscan-test')` and are only inspected with
pickletools (see containers_helpers.imports_of); benign files written here may be loaded.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fastscan import containers
from fastscan.containers import ContainerLimits, open_container, sniff
from fastscan.containers.base import COMPLETE, ENCRYPTED, ERROR, PARTIAL, UNSUPPORTED
from tests.containers_helpers import (
    joblib_bytes,
    payload_members,
    payload_pickle,
    scan,
    zip_bytes,
)

torch = pytest.importorskip("torch")
pytest.importorskip("joblib")  # the mutated seed files include joblib dumps


# -- sniffing: content, never the extension -------------------------------------------------


def test_raw_pickle_named_bin_is_found() -> None:
    c = scan(payload_pickle(2), name="weights.bin")
    assert (c.format, c.status, c.extension) == ("raw_pickle", COMPLETE, ".bin")
    assert payload_members(c) == [""]
    assert c.streams[0].offset == 0


def test_torch_zip_named_txt_is_found(tmp_path: Path, malicious_torch_zip: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(malicious_torch_zip)
    c = scan(path)
    assert c.format == "torch_zip" and c.extension == ".txt"
    assert payload_members(c) == ["archive/data.pkl"]


@pytest.mark.parametrize("protocol", [0, 1])
def test_protocol_0_1_member_without_proto_header(protocol: int) -> None:
    data = payload_pickle(0) if protocol == 0 else pickle.dumps([1, 2], protocol=1)
    assert not data.startswith(b"\x80")
    c = scan(zip_bytes([("data.txt", data), ("weights", b"\x00" * 64)]))
    assert [s.member for s in c.streams] == ["data.txt"]
    assert c.status == COMPLETE


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "png"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 32, "jpeg"),
        (b"just some notes\n", "text"),
        (b'{"model": "bert"}', "json"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 32, "hdf5"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n", "git_lfs_pointer"),
        (b"\x01\x02\x03\x04 binary junk", "unknown"),
    ],
)
def test_non_pickle_named_pt_is_unsupported(data: bytes, fmt: str) -> None:
    c = scan(data, name="model.pt")
    assert (c.format, c.status, c.streams) == (fmt, UNSUPPORTED, [])
    assert c.message


def test_safetensors_and_onnx_say_no_pickle() -> None:
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    st = scan(struct.pack("<Q", len(header)) + header + b"\0" * 4, name="model.pt")
    assert (st.format, st.status) == ("safetensors", UNSUPPORTED)
    assert "no pickle" in st.message
    onnx = pytest.importorskip("onnx")
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Relu", ["x"], ["y"])],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    ox = scan(h.make_model(graph).SerializeToString(), name="model.pt")
    assert (ox.format, ox.status) == ("onnx", UNSUPPORTED)
    assert "no pickle" in ox.message


def test_sniff_is_content_only() -> None:
    assert sniff(b"") == "empty"
    assert sniff(payload_pickle(0)) == "raw_pickle"
    assert sniff(b"PK\x03\x04rest") == "zip"
    assert sniff(gzip.compress(b"x")) == "gzip"
    # A raw pickle starting with a 90-byte BINBYTES ("BZ") is not bzip2 (docs/threats.md C16).
    assert sniff(b"BZ\x00\x00\x00" + b"a" * 90 + b".") == "raw_pickle"


# -- files that cannot be read ---------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.pt").write_bytes(b"")
    c = scan(tmp_path / "e.pt")
    assert (c.format, c.status) == ("empty", UNSUPPORTED)
    assert "empty" in c.message


def test_unreadable_paths_are_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert scan(tmp_path).status == ERROR and "directory" in scan(tmp_path).message
    (tmp_path / "broken").symlink_to(tmp_path / "missing")
    assert "broken symlink" in scan(tmp_path / "broken").message
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    c = scan(tmp_path / "a")
    assert (c.status, c.message) == (ERROR, f"symlink loop: {tmp_path / 'a'}")
    target = tmp_path / "locked.pkl"
    target.write_bytes(payload_pickle(2))

    def deny(*_a: object, **_k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(containers, "open", deny, raising=False)  # root ignores chmod 000
    c = scan(target)
    assert c.status == ERROR and "permission denied" in c.message


def test_member_probe_accepts_pickles_and_rejects_source_and_data() -> None:
    from fastscan.containers._probe import prefix_is_pickle

    for protocol in (0, 1, 2, 4, 5):
        assert prefix_is_pickle(payload_pickle(protocol))
    assert prefix_is_pickle(payload_pickle(2)[:-3] + b"\xff\xfe junk")  # broken after payload
    for not_pickle in (b"class Linear(Module):\n  x = 1\n", b"hello world", b"\0" * 64, b"{}"):
        assert not prefix_is_pickle(not_pickle)
    # float tensor bytes that parse up to a b"." but underflow before any import
    assert not prefix_is_pickle(bytes.fromhex("4ae629bdd07546bca66d64bc0a2e63be") + bytes(16))


@pytest.mark.parametrize("tail", [bytes(64), b"\xff" * 64, b"0x12 garbage" + bytes(40)])
def test_two_letter_zf_prefix_is_not_a_joblib_zfile(tail: bytes) -> None:
    # tensor storages start with "ZF" by chance on a big mirror; routing them to the zlib reader
    # made a benign checkpoint "partial" (decompress error) and suspicious
    assert sniff(b"ZF" + tail) != "joblib_zfile"


# -- budgets ----------------------------------------------------------------------------------


def test_zip_bomb_stops_at_ratio() -> None:
    bomb = zip_bytes([("a.pkl", b"\0" * (40 << 20))], deflate=True)
    c = scan(bomb, limits=ContainerLimits(ratio_floor=1 << 20))
    assert (c.status, c.budget) == (PARTIAL, "compression_ratio")
    assert c.bytes_read < 16 << 20


def test_total_bytes_budget_on_gzip_keeps_what_was_seen() -> None:
    data = gzip.compress(payload_pickle(2)[:-1] + b"N0" * (1 << 20) + b".")
    c = scan(data, limits=ContainerLimits(max_total_bytes=1 << 16))
    assert (c.status, c.budget) == (PARTIAL, "total_bytes")
    assert payload_members(c) == [""]  # the start that was decompressed is still scanned


def test_deep_nesting_budget() -> None:
    data = payload_pickle(2)
    for level in range(6):
        data = zip_bytes([(f"l{level}.zip", data)])
    c = scan(data, limits=ContainerLimits(max_depth=3))
    assert (c.status, c.budget) == (PARTIAL, "depth")
    assert not c.streams


def test_member_count_budget() -> None:
    c = scan(
        zip_bytes([(f"m{i}", b"x") for i in range(40)]), limits=ContainerLimits(max_members=10)
    )
    assert (c.status, c.budget, c.members_total) == (PARTIAL, "members", 11)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        ContainerLimits(max_depth=-1)
    with pytest.raises(ValueError, match="max_ratio"):
        ContainerLimits(max_ratio=0)


# -- resources --------------------------------------------------------------------------------


def test_large_file_is_mmapped_and_released(tmp_path: Path) -> None:
    path = tmp_path / "big.pkl"
    path.write_bytes(payload_pickle(2) + b"\0" * (2 << 20))
    with open_container(path) as c:
        assert isinstance(c.streams[0].data, memoryview)
        view = c.streams[0].data
    with pytest.raises(ValueError):
        bytes(view)  # released on exit: the mmap can close
    assert os.path.exists(path)


STATUSES = {COMPLETE, PARTIAL, UNSUPPORTED, ENCRYPTED, ERROR}


@pytest.fixture(scope="module")
def seed_files(torch_zip_bytes: bytes) -> list[bytes]:
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as tf:
        info = tarfile.TarInfo("a.pkl")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"\x80\x02K\x01."))
    legacy = io.BytesIO()
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    return [
        torch_zip_bytes,
        legacy.getvalue(),
        joblib_bytes({"a": np.arange(20), "o": np.array([None], dtype=object)}),
        joblib_bytes({"a": np.arange(20)}, ("zlib", 3)),
        tar_buf.getvalue(),
        gzip.compress(payload_pickle(2)),
    ]


def test_mutated_containers_never_raise(seed_files: list[bytes]) -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
    @hypothesis.given(
        st.integers(0, len(seed_files) - 1),
        st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
        st.floats(0.2, 1.0),
    )
    def check(index: int, edits: list[tuple[float, int]], keep: float) -> None:
        data = bytearray(seed_files[index])
        for where, value in edits:
            data[int(where * (len(data) - 1))] = value
        data = data[: max(1, int(len(data) * keep))]
        c = scan(bytes(data), limits=ContainerLimits(max_total_bytes=1 << 22))
        assert c.status in STATUSES and c.format

    check()
