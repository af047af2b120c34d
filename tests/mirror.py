"""A small model mirror for the bulk, Dask, S3 and Hub tests: Hugging Face cache layout, benign
files from real libraries, and hand-made hostile pickles whose payload is a harmless `echo`
(never loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

HF_SNAPSHOT = "hub/models--acme--tiny-bert/snapshots/0123abcd"


def hostile_pickle(command: str = "echo fastscan-test") -> bytes:
    """GLOBAL os.system + REDUCE on a harmless command; assembled by hand, never loaded."""
    arg = command.encode()
    return b"\x80\x02cos\nsystem\n(X" + len(arg).to_bytes(4, "little") + arg + b"tR."


def torch_zip_bytes(tensor_floats: int = 64, hostile: bool = False) -> bytes:
    """A real torch.save checkpoint; `hostile` swaps data.pkl for the echo payload."""
    import io
    import zipfile

    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"weight": torch.arange(tensor_floats, dtype=torch.float32)}, buf)
    if not hostile:
        return buf.getvalue()
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl"):
                data = hostile_pickle()
            dst.writestr(info, data)
    return out.getvalue()


def build_mirror(root: Path) -> dict[str, str]:
    """Write the mirror under `root`; returns relative path -> expected verdict."""
    import pickle

    import numpy as np

    expected: dict[str, str] = {}

    def put(rel: str, data: bytes, verdict: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[rel] = verdict

    for protocol in (2, 3, 4, 5):
        vocab = {"tokens": [f"t{j}" for j in range(40)], "protocol": protocol}
        put(f"{HF_SNAPSHOT}/vocab{protocol}.pkl", pickle.dumps(vocab, protocol=protocol), "clean")
    npy = root / HF_SNAPSHOT / "embeddings.npy"
    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, np.arange(300, dtype=np.float32))
    expected[f"{HF_SNAPSHOT}/embeddings.npy"] = "clean"
    put(f"{HF_SNAPSHOT}/pytorch_model.bin", torch_zip_bytes(), "clean")
    put(f"{HF_SNAPSHOT}/evil/pytorch_model.bin", torch_zip_bytes(hostile=True), "malicious")
    put("hub/models--acme--tiny-bert/blobs/deadbeef", torch_zip_bytes(32), "clean")
    put("uploads/user1/payload.pkl", hostile_pickle(), "malicious")
    put("uploads/user1/payload-renamed.json", hostile_pickle("echo renamed"), "malicious")
    put("uploads/user2/notes.txt", b"just text, no pickle\n", "clean")
    return expected
