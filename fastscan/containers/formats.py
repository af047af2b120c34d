"""Every file format fastscan names (`Container.format`, wrapper layers) and what it implies,
and the kinds of stream a container hands to the tokenizer (`PickleStream.kind`).

Sniffing and the readers return the constants below; the sets that route a format (archive.py,
sparse.py), the engine's torch and single-pickle judgements and the feature one-hots are read
from this table, so each fact about a format is written once, here.

`FEATURE_FORMATS` and `FEATURE_WRAPPERS` are the model's contract (the `fmt_*` and `wrap_*`
columns, in order); a format without a column of its own is counted as `other`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Format:
    name: str
    pickle: bool = False  # its bytes are pickles, read by the raw reader when sniffed
    compressed: bool = False  # one compressed layer: decompressed, then sniffed again
    archive: bool = False  # members, each routed like a file
    torch: bool = False  # written by torch.save / torch.jit.save
    single_pickle: bool = False  # one object graph: a second pickle in it is a trick
    no_pickle: str = ""  # never holds a pickle: why the file is unsupported

    @property
    def nested(self) -> bool:
        """Holds other files (archive members or a compressed layer), scanned in turn."""
        return self.compressed or self.archive


BY_NAME: dict[str, Format] = {}


def _format(name: str, **properties: bool | str) -> str:
    if name in BY_NAME:
        raise ValueError(f"duplicate format {name}")
    BY_NAME[name] = Format(name, **properties)  # type: ignore[arg-type]
    return name


# Pickle containers.
RAW_PICKLE = _format("raw_pickle", pickle=True)
TORCH_ZIP = _format("torch_zip", torch=True, single_pickle=True)
TORCHSCRIPT = _format("torchscript", torch=True, single_pickle=True)
TORCH_LEGACY = _format("torch_legacy", pickle=True, torch=True)
JOBLIB = _format("joblib")  # a raw pickle with joblib's inline arrays (containers/joblib_dump)
NPY = _format("npy", single_pickle=True)
NPZ = _format("npz", single_pickle=True)
# Archives and compressed layers (archive.py).
ZIP = _format("zip", archive=True)
TAR = _format("tar", archive=True)
SEVENZ = _format("7z", archive=True)
GZIP = _format("gzip", compressed=True)
BZ2 = _format("bz2", compressed=True)
XZ = _format("xz", compressed=True)
LZMA = _format("lzma", compressed=True)
LZ4 = _format("lz4", compressed=True)
ZLIB = _format("zlib", compressed=True)
JOBLIB_ZFILE = _format("joblib_zfile", compressed=True)  # joblib < 0.9.3: "ZF" + hex + zlib
# Formats that can never hold a pickle (unsupported, with the reason as the row's message).
PNG = _format("png", no_pickle="PNG image")
JPEG = _format("jpeg", no_pickle="JPEG image")
GIF = _format("gif", no_pickle="GIF image")
PDF = _format("pdf", no_pickle="PDF document")
JSON = _format("json", no_pickle="JSON text (no pickle)")
TEXT = _format("text", no_pickle="text file (no pickle)")
SAFETENSORS = _format(
    "safetensors", no_pickle="safetensors file: tensors and a JSON header, contains no pickle"
)
ONNX = _format("onnx", no_pickle="ONNX protobuf model: contains no pickle")
HDF5 = _format("hdf5", no_pickle="HDF5 file (e.g. Keras .h5): contains no pickle")
GIT_LFS_POINTER = _format(
    "git_lfs_pointer", no_pickle="Git LFS pointer: the real file was never downloaded"
)
EMPTY = _format("empty", no_pickle="empty file: nothing to scan")
UNKNOWN = _format(
    "unknown", no_pickle="unknown format: no pickle, archive or known container found"
)


def _names(has: str) -> frozenset[str]:
    return frozenset(name for name, f in BY_NAME.items() if getattr(f, has))


PICKLE_FORMATS = _names("pickle")
COMPRESSED_FORMATS = _names("compressed")
ARCHIVE_FORMATS = _names("archive")
NESTED_FORMATS = _names("nested")
TORCH_FORMATS = _names("torch")
SINGLE_PICKLE_FORMATS = _names("single_pickle")
# format -> why it is unsupported
NO_PICKLE_FORMATS = {name: f.no_pickle for name, f in BY_NAME.items() if f.no_pickle}

# The `fmt_*` columns (FEATURE_SCHEMA_VERSION 3, frozen order); any other format counts as `other`.
OTHER = "other"
FEATURE_FORMATS = (
    RAW_PICKLE, TORCH_ZIP, TORCHSCRIPT, TORCH_LEGACY, JOBLIB, JOBLIB_ZFILE, NPY, NPZ, ZIP, TAR,
    SEVENZ, GZIP, BZ2, XZ, LZMA, LZ4, ZLIB, EMPTY, OTHER,
)  # fmt: skip
# The `wrap_*` columns: the layers a file can be wrapped in (Container.wrappers), frozen order.
FEATURE_WRAPPERS = (GZIP, BZ2, XZ, LZMA, LZ4, ZLIB, JOBLIB_ZFILE, ZIP, TAR, SEVENZ)

# Stream kinds: what one tokenized buffer is inside its container.
KIND_PICKLE = "pickle"  # a whole pickle (or a region of one) read as itself
KIND_TORCHSCRIPT_CONSTANTS = "torchscript_constants"  # a TorchScript archive's constants.pkl
KIND_NPY_OBJECT = "npy_object"  # the pickled data of an object-dtype npy array
KIND_JOBLIB = "joblib"  # a joblib dump's main pickle, inline arrays cut out (joblib_dump.py)
KIND_LEGACY_TORCH = "legacy_torch"  # one of the pickles of a legacy torch file
# Kinds whose pickle is a single object graph (as SINGLE_PICKLE_FORMATS): a second is a trick.
SINGLE_PICKLE_KINDS = frozenset({KIND_NPY_OBJECT, KIND_TORCHSCRIPT_CONSTANTS})
# The `kind_*` columns (frozen order); any other kind counts as `other`.
FEATURE_STREAM_KINDS = (
    KIND_PICKLE, KIND_TORCHSCRIPT_CONSTANTS, KIND_NPY_OBJECT, KIND_JOBLIB, KIND_LEGACY_TORCH, OTHER,
)  # fmt: skip
