"""Stage 2 (containers): the zip family (PyTorch zip, TorchScript) and zip tricks: flag bits,
CRC and name mismatches, missing central directory, zip64, duplicates, encryption.

Malicious fixtures carry `os.system('echo fastscan-test')` and are only inspected with
pickletools (see containers_helpers.imports_of); benign files written here may be loaded.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest

from fastscan.containers.base import COMPLETE, ENCRYPTED
from tests.containers_helpers import (
    break_crc,
    codes,
    encrypted_zip,
    imports_of,
    payload_members,
    payload_pickle,
    rename_central,
    scan,
    set_flags,
    sparse_zip,
    strip_central,
    zip_bytes,
)

torch = pytest.importorskip("torch")


# -- PyTorch zip and TorchScript ------------------------------------------------------------


def test_benign_torch_zip(tmp_path: Path, torch_zip_bytes: bytes) -> None:
    c = scan(torch_zip_bytes)
    assert (c.format, c.status) == ("torch_zip", COMPLETE)
    assert [s.member for s in c.streams] == ["archive/data.pkl"]
    assert "torch._utils._rebuild_tensor_v2" in imports_of(c.streams[0].data)
    assert c.notes["byteorder"] == "little" and c.notes["torch_version"].isdigit()
    assert not c.anomalies


def test_torch_zip_any_member_that_parses_is_a_stream(torch_zip_bytes: bytes) -> None:
    zf = zipfile.ZipFile(io.BytesIO(torch_zip_bytes))
    members = [(n, zf.read(n)) for n in zf.namelist()] + [
        ("archive/extra/notes", payload_pickle(0))
    ]
    c = scan(zip_bytes(members))
    assert payload_members(c) == ["archive/extra/notes"]
    assert "archive/data/0" not in [s.member for s in c.streams]  # tensor bytes never streamed


def test_torchscript_notes_code_and_constants() -> None:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    c = scan(buf.getvalue())
    assert c.format == "torchscript"
    assert int(c.notes["torchscript_code_members"]) >= 1
    kinds = {s.member.rsplit("/", 1)[-1]: s.kind for s in c.streams}
    assert kinds["constants.pkl"] == "torchscript_constants"
    assert "data.pkl" in kinds
    assert not any(m.endswith(".py") for m in kinds)  # source is noted, not tokenized


@pytest.mark.parametrize(
    ("flag", "code"),
    [(0x1, "zip_flag_encrypted"), (0x20, "zip_flag_patched"), (0x40, "zip_flag_strong_encryption")],
)
def test_zip_flag_bits_are_ignored_and_recorded(
    malicious_torch_zip: bytes, flag: int, code: str
) -> None:
    data = set_flags(malicious_torch_zip, flag)
    with pytest.raises((RuntimeError, NotImplementedError, zipfile.BadZipFile)):
        zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")  # what strict readers do
    c = scan(data)
    assert payload_members(c) == ["archive/data.pkl"]
    assert code in codes(c)
    assert c.status == COMPLETE  # forged flag: the members were readable


def test_crc_mismatch(malicious_torch_zip: bytes) -> None:
    c = scan(break_crc(malicious_torch_zip))
    assert payload_members(c) == ["archive/data.pkl"]
    assert "zip_crc_mismatch" in codes(c)


def test_central_local_name_mismatch(malicious_torch_zip: bytes) -> None:
    c = scan(rename_central(malicious_torch_zip, b"archive/data.pkl", b"archive/datap.kl"))
    assert payload_members(c) == ["archive/datap.kl"]
    mismatch = [a for a in c.anomalies if a.code == "zip_name_mismatch"]
    assert mismatch and "data.pkl" in mismatch[0].detail


def test_data_before_first_header(malicious_torch_zip: bytes) -> None:
    c = scan(b"\x00JUNK" * 200 + malicious_torch_zip)
    assert c.format == "torch_zip"
    assert payload_members(c) == ["archive/data.pkl"]
    assert "zip_prefix_data" in codes(c)


@pytest.mark.parametrize("deflate", [False, True])
def test_missing_central_directory_walks_local_headers(deflate: bool) -> None:
    data = strip_central(
        zip_bytes([("x/a.bin", b"\0" * 100), ("x/data.txt", payload_pickle(0))], deflate=deflate)
    )
    c = scan(data)
    assert payload_members(c) == ["x/data.txt"]
    assert "zip_no_central_directory" in codes(c)
    assert "zip_crc_mismatch" not in codes(c)


def test_zip64_member() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, zf.open("m/data.pkl", "w", force_zip64=True) as fh:
        fh.write(payload_pickle(4))
    c = scan(buf.getvalue())
    assert payload_members(c) == ["m/data.pkl"]


def test_duplicate_traversal_and_symlink_members() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../etc/evil.pkl", payload_pickle(2))
        link = zipfile.ZipInfo("link")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
        with pytest.warns(UserWarning):
            zf.writestr("dup.pkl", b"N.")
            zf.writestr("dup.pkl", payload_pickle(0))
    c = scan(buf.getvalue())
    assert {"zip_path_traversal", "zip_symlink_member", "zip_duplicate_name"} <= codes(c)
    assert payload_members(c) == ["../../etc/evil.pkl", "dup.pkl"]


def test_password_protected_zip_is_encrypted() -> None:
    data = encrypted_zip("data.pkl", pickle.dumps({"benign": 1}), b"secret")
    zf = zipfile.ZipFile(io.BytesIO(data))
    zf.setpassword(b"secret")
    assert pickle.loads(zf.read("data.pkl")) == {"benign": 1}  # our own benign file
    c = scan(data)
    assert (c.status, c.streams) == (ENCRYPTED, [])
    assert {"zip_flag_encrypted", "zip_encrypted_member"} <= codes(c)


def test_large_sparse_checkpoint_reads_a_few_bytes(tmp_path: Path, torch_zip_bytes: bytes) -> None:
    zf = zipfile.ZipFile(io.BytesIO(torch_zip_bytes))
    small = [(n, zf.read(n)) for n in zf.namelist() if not n.endswith("/data/0")]
    path = tmp_path / "big.pt"
    sparse_zip(str(path), small, "archive/data/0", 3 << 30)
    size = path.stat().st_size
    assert size > 3 << 30
    c = scan(path)
    assert (c.format, c.status) == ("torch_zip", COMPLETE)
    assert [s.member for s in c.streams] == ["archive/data.pkl"]
    assert c.bytes_read < 64 * 1024 < size // 10_000


def test_stored_member_with_encryption_flag_and_noise_is_encrypted() -> None:
    noise = bytes((i * 37 + 11) % 251 for i in range(300))
    c = scan(set_flags(zip_bytes([("data.pkl", noise)]), 0x1))
    assert (c.status, c.streams) == (ENCRYPTED, [])


def test_zip_trailing_data_and_unknown_member_content() -> None:
    c = scan(zip_bytes([("a.pkl", payload_pickle(2)), ("blob", b"\x01\x02" * 50)]) + b"TAIL")
    assert "trailing_data" in codes(c)
    assert payload_members(c) == ["a.pkl"]
    assert c.status == COMPLETE
