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
    n = BIG_MEMO[scale] // rng.choice((1, 2, 4))
    vocab = {f"{rng.choice(words(rng, 1))}_{i}": i for i in range(n)}
    return pickle.dumps(vocab, protocol=rng.choice((2, 4, 5))), ".pkl"


def _payload_files(rng: random.Random) -> dict[str, bytes]:
    rows = "\n".join(f"{i},{rng.random():.6f},{rng.choice(words(rng, 1))}" for i in range(200))
    return {"data/train.csv": rows.encode(), "README.txt": b"synthetic data\n",
            "config.json": b'{"n": 200}'}  # fmt: skip


@source("pyzipper")
def zip_aes_no_pickle(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A password-protected zip (AES or ZipCrypto) of CSV/JSON/text members: no pickle inside."""
    import pyzipper

    from ..benign import _fixed_clock

    out = io.BytesIO()
    aes = rng.random() < 0.6
    maker = pyzipper.AESZipFile if aes else pyzipper.ZipFile
    kwargs = {"encryption": pyzipper.WZ_AES} if aes else {}
    with _fixed_clock(), maker(out, "w", compression=pyzipper.ZIP_DEFLATED, **kwargs) as zf:
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
# a scanner cannot read inside these: it should report them encrypted, not call them clean
ENCRYPTED = frozenset({zip_aes_no_pickle.name, sevenzip_aes_no_pickle.name})
