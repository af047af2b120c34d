"""BENIGN files written by the real libraries (torch, scikit-learn, joblib, numpy, pandas, dill,
cloudpickle, pickle), in many shapes, deterministic for a seed.

Every `SOURCES` entry is `fn(rng, scale) -> (bytes, extension)`. Heavy libraries are imported
inside the functions: they are training-time dependencies only. Wall-clock time never leaks into
the bytes: zip writers see a fixed clock, gzip gets mtime=0, cloudpickle's tracker ids come from
the seed, and TorchScript's name-mangling counter is reset before each export.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import pickle
import pickletools
import random
import struct
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from .benign_custom import CUSTOM_SOURCES, CUSTOM_TORCH_SOURCES
from .scales import SCALES

__all__ = ["SOURCES", "TORCH_ARCHS", "torch_available"]

TORCH_ARCHS = ("mlp", "cnn", "transformer", "lstm", "gru", "embedding", "batchnorm")
_EPOCH_1980 = 315532800.0


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _fixed_clock() -> Iterator[None]:
    """zipfile stamps members with time.localtime(time.time()); pin it to 1980-01-01."""
    fixed = time.gmtime(_EPOCH_1980)
    with (
        mock.patch("time.time", lambda: _EPOCH_1980),
        mock.patch("time.localtime", lambda *_: fixed),
    ):
        yield


def _width(rng: random.Random, scale: str, lo: int = 4, hi: int = 48) -> int:
    return rng.randint(lo, hi * SCALES[scale])


# -- torch ---------------------------------------------------------------------------------------
def _torch_model(rng: random.Random, scale: str, arch: str | None = None) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(rng.randrange(2**31))
    arch = arch or rng.choice(TORCH_ARCHS)
    w = _width(rng, scale)
    if arch == "mlp":
        layers: list[nn.Module] = []
        dims = [_width(rng, scale) for _ in range(rng.randint(2, 5))]
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), rng.choice([nn.ReLU(), nn.GELU(), nn.Tanh()])]
        return nn.Sequential(*layers)
    if arch == "cnn":
        c = rng.randint(2, 16) * SCALES[scale]
        return nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, c, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10),
        )  # fmt: skip
    if arch == "transformer":
        heads = rng.choice([1, 2, 4])
        layer = nn.TransformerEncoderLayer(heads * rng.randint(2, 8) * SCALES[scale], heads,
                                           dim_feedforward=w, batch_first=True)  # fmt: skip
        return nn.TransformerEncoder(layer, rng.randint(1, 3), enable_nested_tensor=False)
    if arch == "lstm":
        return nn.LSTM(w, _width(rng, scale), num_layers=rng.randint(1, 2), batch_first=True)
    if arch == "gru":
        return nn.GRU(w, _width(rng, scale), bidirectional=rng.random() < 0.5)
    if arch == "embedding":
        return nn.Sequential(nn.Embedding(rng.randint(50, 500) * SCALES[scale], w), nn.LayerNorm(w))
    return nn.Sequential(nn.Linear(w, w), nn.BatchNorm1d(w), nn.ReLU(), nn.Dropout(0.1))


def _torch_bytes(obj: Any, **kw: Any) -> bytes:
    import torch

    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(obj, out, **kw)
    return out.getvalue()


def torch_state_dict(rng: random.Random, scale: str) -> tuple[bytes, str]:
    model = _torch_model(rng, scale)
    return _torch_bytes(model.state_dict()), rng.choice([".pt", ".pth", ".bin"])


def torch_full_model(rng: random.Random, scale: str) -> tuple[bytes, str]:
    return _torch_bytes(_torch_model(rng, scale)), rng.choice([".pt", ".pth"])


def torch_optimizer_checkpoint(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import torch

    model = _torch_model(rng, scale, rng.choice(["mlp", "cnn", "embedding"]))
    params = list(model.parameters())
    if rng.random() < 0.5:
        opt: Any = torch.optim.Adam(params, lr=1e-3)
    else:
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    for p in params:  # one step so the optimizer has per-parameter state
        p.grad = torch.ones_like(p)
    opt.step()
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": rng.randrange(90)}
    return _torch_bytes(ckpt), rng.choice([".ckpt", ".pt", ".tar"])


def torch_checkpoint_dict(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import torch

    ckpt = {
        "state_dict": _torch_model(rng, scale).state_dict(),
        "epoch": rng.randrange(200),
        "global_step": rng.randrange(10**6),
        "config": {
            "lr": rng.uniform(1e-5, 1e-2),
            "batch_size": rng.choice([16, 32, 64]),
            "arch": rng.choice(TORCH_ARCHS),
            "tags": ["fastscan", "benign"],
        },
        "metrics": {"loss": torch.tensor(rng.random()), "acc": rng.random()},
    }
    return _torch_bytes(ckpt), rng.choice([".ckpt", ".pt"])


def torch_legacy(rng: random.Random, scale: str) -> tuple[bytes, str]:
    model = _torch_model(rng, scale)
    obj = model.state_dict() if rng.random() < 0.7 else model
    return _legacy_bytes(obj), rng.choice([".pt", ".pth"])


def pickle_bounds(data: bytes, count: int) -> list[tuple[int, int]]:
    """(start, end) of the first `count` pickles of a benign multi-pickle file."""
    stream = io.BytesIO(data)
    bounds = []
    for _ in range(count):
        start = stream.tell()
        for _op in pickletools.genops(stream):
            pass
        bounds.append((start, stream.tell()))
    return bounds


_ELEMENT_SIZE = {"Double": 8, "Long": 8, "ComplexFloat": 8, "ComplexDouble": 16, "Half": 2,
                 "BFloat16": 2, "Short": 2, "Char": 1, "Byte": 1, "Bool": 1}  # fmt: skip


def _legacy_bytes(obj: Any) -> bytes:
    """Legacy torch.save made deterministic.

    Its storage keys are memory addresses, and the raw storages follow in sorted-key order.
    Keys are renamed by first use in the main pickle and the raw blocks reordered to match.
    """
    data = _torch_bytes(obj, _use_new_zipfile_serialization=False)
    bounds = pickle_bounds(data, 5)
    sorted_keys = [
        a for _, a, _ in pickletools.genops(data[slice(*bounds[4])]) if isinstance(a, str)
    ]
    order: list[str] = []
    elem: dict[str, int] = {}
    last_global = ""
    for info, arg, _ in pickletools.genops(data[slice(*bounds[3])]):
        if info.name == "GLOBAL":
            last_global = str(arg)
        elif arg in sorted_keys and arg not in elem:
            order.append(str(arg))
            kind = last_global.rsplit(" ", 1)[-1].removesuffix("Storage")
            elem[str(arg)] = _ELEMENT_SIZE.get(kind, 4)
    rename = {key: f"{rank:08d}" for rank, key in enumerate(order)}
    blocks, pos = {}, bounds[-1][1]
    for key in sorted_keys:
        (count,) = struct.unpack_from("<q", data, pos)
        size = 8 + count * elem[key]
        blocks[key], pos = data[pos : pos + size], pos + size
    parts = [_rename_strings(data[start:end], rename) for start, end in bounds[:4]]
    parts.append(pickle.dumps([rename[key] for key in order], protocol=2))  # as torch writes it
    return b"".join(parts) + b"".join(blocks[key] for key in order) + data[pos:]


def _rename_strings(chunk: bytes, rename: dict[str, str]) -> bytes:
    ops = list(pickletools.genops(chunk))
    out = bytearray()
    for i, (info, arg, pos) in enumerate(ops):
        stop = ops[i + 1][2] if i + 1 < len(ops) else len(chunk)
        if info.name == "BINUNICODE" and arg in rename:
            new = rename[arg].encode()
            out += b"X" + struct.pack("<I", len(new)) + new
        else:
            out += chunk[pos:stop]
    return bytes(out)


def _fresh_jit_state() -> None:
    """TorchScript mangles repeated class names with a per-CompilationUnit counter."""
    import torch

    torch.jit._state._python_cu = torch._C.CompilationUnit()
    torch.jit._state._clear_class_state()
    torch.jit._recursive.concrete_type_store = torch.jit._recursive.ConcreteTypeStore()


def torchscript(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import torch

    arch = rng.choice(["mlp", "cnn", "batchnorm"])
    model = _torch_model(rng, scale, arch).eval()
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _fresh_jit_state()
        if rng.random() < 0.5:
            compiled = torch.jit.script(model)
        else:
            first = next(model.parameters())
            shape = (2, 3, 16, 16) if arch == "cnn" else (2, first.shape[-1])
            compiled = torch.jit.trace(model, torch.randn(*shape))
        torch.jit.save(compiled, out)
    return out.getvalue(), rng.choice([".pt", ".torchscript"])


@functools.lru_cache(maxsize=16)
def torch_zip_base(index: int) -> bytes:
    """A small real torch.save archive for wrappers (cached: only a few distinct ones)."""
    return torch_state_dict(random.Random(f"zip-base-{index}"), "small")[0]


@functools.lru_cache(maxsize=16)
def torch_legacy_base(index: int) -> bytes:
    model = _torch_model(random.Random(f"legacy-base-{index}"), "small")
    return _legacy_bytes(model.state_dict())


@functools.lru_cache(maxsize=4)
def torchscript_base(index: int) -> bytes:
    return torchscript(random.Random(f"ts-base-{index}"), "small")[0]


# -- scikit-learn / joblib -------------------------------------------------------------------------
def _sklearn_estimator(rng: random.Random, scale: str) -> Any:
    import numpy as np
    from sklearn import (
        cluster,
        decomposition,
        ensemble,
        linear_model,
        pipeline,
        preprocessing,
        svm,
        tree,
    )

    seed = rng.randrange(2**31)
    gen = np.random.default_rng(seed)
    n, d = 40 * SCALES[scale], rng.randint(3, 12)
    x = gen.normal(size=(n, d))
    y = (x[:, 0] + gen.normal(scale=0.3, size=n) > 0).astype(int)
    trees = rng.randint(3, 10) * SCALES[scale]
    kind = rng.randrange(9)
    est: Any = [
        lambda: linear_model.LogisticRegression(max_iter=200),
        lambda: ensemble.RandomForestClassifier(trees, max_depth=6, random_state=seed),
        lambda: tree.DecisionTreeClassifier(max_depth=5, random_state=seed),
        lambda: svm.SVC(probability=False, random_state=seed),
        lambda: cluster.KMeans(rng.randint(2, 5), n_init=2, random_state=seed),
        lambda: pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.Ridge()),
        lambda: ensemble.GradientBoostingClassifier(n_estimators=trees, random_state=seed),
        lambda: pipeline.make_pipeline(decomposition.PCA(2), linear_model.LogisticRegression()),
        lambda: ensemble.IsolationForest(n_estimators=trees, random_state=seed),
    ][kind]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(x, y)
    return est


def sklearn_pickle(rng: random.Random, scale: str) -> tuple[bytes, str]:
    est = _sklearn_estimator(rng, scale)
    return pickle.dumps(est, protocol=rng.randint(2, 5)), rng.choice([".pkl", ".pickle", ".sav"])


JOBLIB_COMPRESSORS = (None, "zlib", "gzip", "bz2", "xz", "lzma", "lz4")


def sklearn_joblib(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import joblib

    est = _sklearn_estimator(rng, scale)
    compressor = rng.choice(JOBLIB_COMPRESSORS)
    out = io.BytesIO()
    joblib.dump(est, out, compress=(compressor, 3) if compressor else 0)
    return out.getvalue(), rng.choice([".joblib", ".pkl"])


@functools.lru_cache(maxsize=16)
def joblib_with_array(index: int) -> tuple[bytes, bytes]:
    """An uncompressed joblib dump holding an inline array, plus that array's raw bytes."""
    import joblib
    import numpy as np

    gen = np.random.default_rng(index)
    arr = gen.normal(size=(8 + index * 5, 3)).astype(np.float32)
    out = io.BytesIO()
    joblib.dump({"weights": arr, "classes": ["a", "b"], "version": index}, out)
    return out.getvalue(), arr.tobytes()


# -- numpy / pandas ------------------------------------------------------------------------------
def _np_bytes(arr: Any, allow_pickle: bool = False) -> bytes:
    import numpy as np

    out = io.BytesIO()
    np.save(out, arr, allow_pickle=allow_pickle)
    return out.getvalue()


def _numeric_array(rng: random.Random, scale: str) -> Any:
    import numpy as np

    gen = np.random.default_rng(rng.randrange(2**31))
    shape = tuple(rng.randint(1, 32 * SCALES[scale]) for _ in range(rng.randint(1, 3)))
    dtype = rng.choice(["float32", "float64", "int64", "int8", "bool", "complex64"])
    return gen.normal(size=shape).astype(dtype)


@functools.lru_cache(maxsize=64)
def npy_numeric(index: int) -> bytes:
    return _np_bytes(_numeric_array(random.Random(index), "small"))


def numpy_npy(rng: random.Random, scale: str) -> tuple[bytes, str]:
    return _np_bytes(_numeric_array(rng, scale)), ".npy"


def numpy_npy_object(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import numpy as np

    items = [rng.choice([{"id": i, "label": f"cls{i % 7}"}, f"token-{i}", None, i * 0.5])
             for i in range(rng.randint(1, 40))]  # fmt: skip
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return _np_bytes(arr, allow_pickle=True), ".npy"


def numpy_npz(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import numpy as np

    arrays = {f"a{i}": _numeric_array(rng, scale) for i in range(rng.randint(1, 4))}
    out = io.BytesIO()
    with _fixed_clock():
        (np.savez_compressed if rng.random() < 0.5 else np.savez)(out, **arrays)
    return out.getvalue(), ".npz"


def pandas_pickle(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import numpy as np
    import pandas as pd

    gen = np.random.default_rng(rng.randrange(2**31))
    n = rng.randint(3, 50 * SCALES[scale])
    frame = pd.DataFrame({"x": gen.normal(size=n), "y": gen.integers(0, 9, n),
                          "name": [f"row{i}" for i in range(n)],
                          "when": pd.date_range("2020-01-01", periods=n, freq="h")})  # fmt: skip
    obj: Any = frame if rng.random() < 0.7 else frame["x"]
    method = rng.choice([None, "gzip", "bz2", "xz", "zip"])
    out = io.BytesIO()
    compression: Any = {"method": method, "mtime": 0} if method == "gzip" else method
    with _fixed_clock():
        obj.to_pickle(out, compression=compression, protocol=rng.randint(2, 5))
    ext = {None: ".pkl", "gzip": ".pkl.gz", "bz2": ".pkl.bz2", "xz": ".pkl.xz", "zip": ".zip"}
    return out.getvalue(), ext[method]


# -- plain Python, dill, cloudpickle ------------------------------------------------------------
def _plain_value(rng: random.Random) -> Any:
    import collections
    import datetime
    import decimal

    return {
        "name": rng.choice(["tokenizer", "vocab", "config", "labels"]),
        "vocab": {f"w{i}": i for i in range(rng.randint(0, 200))},
        "floats": [rng.random() for _ in range(rng.randint(0, 50))],
        "nested": ({"a": (1, 2, 3)}, frozenset({1, 2}), b"\x00\x01" * rng.randint(0, 8)),
        "ordered": collections.OrderedDict(k=rng.randrange(9)),
        "when": datetime.datetime(2024, 1, 1 + rng.randrange(27)),
        "price": decimal.Decimal("3.14"),
        "ok": rng.random() < 0.5,
        "none": None,
        "big": 2 ** rng.randint(60, 200),
    }


@functools.lru_cache(maxsize=128)
def plain_pickle(index: int) -> bytes:
    rng = random.Random(index)
    return pickle.dumps(_plain_value(rng), protocol=rng.randint(0, 5))


def plain_python(rng: random.Random, scale: str) -> tuple[bytes, str]:
    return pickle.dumps(_plain_value(rng), protocol=rng.randint(0, 5)), rng.choice([".pkl", ".p"])


_DYNAMIC_SOURCE = """
def scale(x, k={k}):
    return x * k

square = lambda v: v * v + {k}

class Preprocessor:
    factor = {k}
    def __call__(self, values):
        return [scale(v, self.factor) for v in values]
"""


def _dynamic_objects(rng: random.Random) -> list[Any]:
    """Functions, a lambda and a class from a module that is not importable (pickled by value)."""
    namespace: dict[str, Any] = {"__name__": "__fastscan_dynamic__"}
    code = compile(_DYNAMIC_SOURCE.format(k=rng.randint(1, 99)), "<fastscan-benign>", "exec")
    exec(code, namespace)  # our own fixed source text, not generated-malicious content
    return [namespace["scale"], namespace["square"], namespace["Preprocessor"]]


def _seeded_uuid(rng: random.Random) -> Any:
    import uuid

    return mock.patch("uuid.uuid4", lambda: uuid.UUID(int=rng.getrandbits(128)))


def dill_function(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import dill

    obj = rng.choice(_dynamic_objects(rng))
    return dill.dumps(obj, protocol=rng.randint(2, 5)), rng.choice([".pkl", ".dill"])


def cloudpickle_function(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import cloudpickle

    objs = _dynamic_objects(rng)
    obj = rng.choice([*objs, {"fn": objs[0], "pre": objs[2]()}])
    with _seeded_uuid(rng):
        data = cloudpickle.dumps(obj, protocol=rng.randint(2, 5))
    return data, rng.choice([".pkl", ".cloudpickle"])


# -- hand-written benign quirks and non-pickles (C15, A18) ----------------------------------------
def quirk_stack_global_in_proto2(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """Protocol-2 header with protocol-4 opcodes (STACK_GLOBAL, MEMOIZE): seen in real files."""
    from fastscan.train.payloads import Call, G, Ops

    ops = Ops(2, stack_global=True)
    ops.memo_on = False
    ops.value({"meta": Call(G("collections", "OrderedDict")), "n": rng.randrange(99)})
    return ops.finish(), ".pt"


def quirk_readonly_buffer(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """Protocol-5 READONLY_BUFFER after an in-band BYTEARRAY8 (joblib/numpy style)."""
    blob = rng.randbytes(rng.randint(1, 64))
    body = b"\x96" + struct.pack("<Q", len(blob)) + blob + b"\x98\x94."
    proto = rng.choice([4, 5])
    return b"\x80" + bytes([proto]) + b"\x95" + struct.pack("<Q", len(body)) + body, ".pkl"


def git_lfs_pointer(rng: random.Random, scale: str) -> tuple[bytes, str]:
    oid = rng.randbytes(32).hex()
    size = rng.randrange(10**9)
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
    return text.encode(), rng.choice([".pt", ".bin", ".safetensors.pt"])


def png_as_pt(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    w, h = rng.randint(1, 16), rng.randint(1, 16)
    raw = b"".join(b"\x00" + rng.randbytes(w * 3) for _ in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
    return png + chunk(b"IEND", b""), ".pt"


Source = Callable[[random.Random, str], tuple[bytes, str]]
TORCH_SOURCES = ("torch_state_dict", "torch_full_model", "torch_optimizer_checkpoint",
                 "torch_checkpoint_dict", "torch_legacy", "torchscript")  # fmt: skip
# every source that needs torch installed to generate
NEEDS_TORCH = (*TORCH_SOURCES, *CUSTOM_TORCH_SOURCES)
SOURCES: dict[str, Source] = {
    "torch_state_dict": torch_state_dict,
    "torch_full_model": torch_full_model,
    "torch_optimizer_checkpoint": torch_optimizer_checkpoint,
    "torch_checkpoint_dict": torch_checkpoint_dict,
    "torch_legacy": torch_legacy,
    "torchscript": torchscript,
    "sklearn_pickle": sklearn_pickle,
    "sklearn_joblib": sklearn_joblib,
    "numpy_npy": numpy_npy,
    "numpy_npy_object": numpy_npy_object,
    "numpy_npz": numpy_npz,
    "pandas_pickle": pandas_pickle,
    "plain_python": plain_python,
    "dill_function": dill_function,
    "cloudpickle_function": cloudpickle_function,
    "quirk_stack_global_in_proto2": quirk_stack_global_in_proto2,
    "quirk_readonly_buffer": quirk_readonly_buffer,
    "git_lfs_pointer": git_lfs_pointer,
    "png_as_pt": png_as_pt,
    # user classes/functions outside any allowlist (group "custom"): FS103 noise, see
    # benign_custom.py
    **CUSTOM_SOURCES,
}
# Benign by construction but not a pickle stream at all (A18): a scanner answers "unsupported".
NON_PICKLE = ("git_lfs_pointer", "png_as_pt")
