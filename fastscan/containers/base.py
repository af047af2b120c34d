"""Types every container reader shares: what it yields and how it reports what it saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .formats import KIND_PICKLE

# bytes-like: bytes, bytearray, memoryview or mmap; readers avoid copies.
Buffer = bytes | bytearray | memoryview

# File-level status, shared with verdicts.
COMPLETE = "complete"  # every pickle found was read to its end
PARTIAL = "partial"  # facts extracted, but something was cut short
UNSUPPORTED = "unsupported"  # a format fastscan does not read (not a pickle container)
ENCRYPTED = "encrypted"  # content is encrypted and cannot be read
ERROR = "error"  # nothing could be read (I/O error, broken symlink, directory…)


@dataclass(frozen=True, slots=True)
class PickleStream:
    """One buffer to tokenize: a whole member, or a region of one."""

    member: str  # path inside the container ("" for the file itself; "a.zip/b.tar/x.pkl" nested)
    offset: int  # offset of `data` inside that member (or inside the file)
    data: Buffer  # bytes, memoryview or mmap slice; never copied when avoidable
    kind: str = KIND_PICKLE  # formats.KIND_*


@dataclass(frozen=True, slots=True)
class ContainerAnomaly:
    code: str  # e.g. zip_flag_encrypted, zip_crc_mismatch, zip_name_mismatch, zip_prefix_data
    member: str = ""
    detail: str = ""


@dataclass(slots=True)
class Container:
    """What `open_container` found: the format, the streams to tokenize, and the facts about it."""

    format: str  # raw_pickle | torch_zip | torch_legacy | torchscript | joblib | npy | npz | zip |
    #              tar | 7z | gzip | bz2 | xz | lz4 | git_lfs_pointer | empty | unknown ...
    extension: str  # recorded only, never trusted
    streams: list[PickleStream] = field(default_factory=list)
    anomalies: list[ContainerAnomaly] = field(default_factory=list)
    status: str = COMPLETE
    message: str = ""
    wrappers: list[str] = field(default_factory=list)  # outer layers, e.g. ["gzip"], ["zip", "7z"]
    members_total: int = 0  # members seen in archives
    bytes_read: int = 0  # bytes actually read or decompressed (tensor data is skipped)
    budget: str = ""  # name of a container budget that was hit
    # Facts that are not anomalies, e.g. {"torch_version": "3", "byteorder": "little"}.
    notes: dict[str, str] = field(default_factory=dict)
    # Open mmaps/files/views, released by close(); not part of the result.
    _resources: list[Any] = field(default_factory=list, repr=False, compare=False)

    def close(self) -> None:
        """Release memoryviews, then mmaps and files (in that order: views pin the mmap)."""
        resources, self._resources = self._resources, []
        for res in reversed(resources):
            try:
                if isinstance(res, memoryview):
                    res.release()
                else:
                    res.close()
            except (BufferError, OSError, ValueError):
                pass  # a caller still holds a view; the object is freed when that view dies

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
