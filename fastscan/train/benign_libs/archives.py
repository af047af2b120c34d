"""Shapes rather than libraries: a pickle with millions of memo entries, and encrypted archives
that hold no pickle at all (data files a mirror also carries)."""

from __future__ import annotations

import io
import pickle
import random

from ._base import source, words

BIG_MEMO = {"small": 200_000, "medium": 2_000_000, "large": 2_000_000}


@source("python-stdlib", "pickle")
def big_memo_dict(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A vocabulary dict with one memoized string per entry (2M at medium scale): the memo
    table, not the byte size, is what stresses a scanner."""
    n = BIG_MEMO[scale] if rng.random() < 0.2 else rng.randint(1_000, 50_000)  # few big ones
    vocab = {f"{rng.choice(words(rng, 1))}_{i}": i for i in range(n)}
    return pickle.dumps(vocab, protocol=rng.choice((2, 4, 5))), ".pkl"


def _payload_files(rng: random.Random) -> dict[str, bytes]:
    rows = "\n".join(f"{i},{rng.random():.6f},{rng.choice(words(rng, 1))}" for i in range(200))
    return {"data/train.csv": rows.encode(), "README.txt": b"synthetic data\n",
            "config.json": b'{"n": 200}'}  # fmt: skip


@source("pyzipper")
def zip_aes_no_pickle(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A WinZip-AES zip of CSV/JSON/text members: no pickle inside. (pyzipper cannot write
    ZipCrypto; wrappers.FIXTURES["zip_encrypted"] covers that.)"""
    import pyzipper

    from ..benign import _fixed_clock

    out = io.BytesIO()
    method = rng.choice([pyzipper.ZIP_DEFLATED, pyzipper.ZIP_STORED, pyzipper.ZIP_LZMA])
    with _fixed_clock(), pyzipper.AESZipFile(out, "w", compression=method,
                                             encryption=pyzipper.WZ_AES) as zf:  # fmt: skip
        zf.setpassword(b"secret-" + str(rng.randrange(999)).encode())
        for name, data in _payload_files(rng).items():
            zf.writestr(name, data)
    return out.getvalue(), ".zip"


@source("py7zr")
def sevenzip_aes_no_pickle(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A 7z archive with AES-256 (headers encrypted or not) of data files: no pickle inside."""
    import py7zr

    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w", password=f"pw{rng.randrange(999)}",
                            header_encryption=rng.random() < 0.5) as archive:  # fmt: skip
        for name, data in _payload_files(rng).items():
            archive.writestr(data, name)
    return out.getvalue(), ".7z"


SOURCES = [big_memo_dict, zip_aes_no_pickle, sevenzip_aes_no_pickle]
# A scanner cannot read inside these: it reports them encrypted (docs/threats.md B5), so, like the
# archive-abuse fixtures, they are generated only when asked for by name and stay out of the
# benign false-positive rates.
ENCRYPTED = frozenset({zip_aes_no_pickle.name, sevenzip_aes_no_pickle.name})
