"""Fixtures of the container tests: a real torch zip, and the same zip carrying the payload."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.containers_helpers import payload_pickle, zip_bytes


@pytest.fixture(scope="module")
def torch_zip_bytes() -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.arange(6, dtype=torch.float32)}, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def malicious_torch_zip(torch_zip_bytes: bytes) -> bytes:
    """A real torch zip whose data.pkl is swapped for the payload (every other member kept)."""
    zf = zipfile.ZipFile(io.BytesIO(torch_zip_bytes))
    members = [
        (n, payload_pickle(2) if n.endswith("/data.pkl") else zf.read(n)) for n in zf.namelist()
    ]
    return zip_bytes(members)
