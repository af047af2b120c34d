"""The Python specification of the zip listing's per-member fast path (`ZipEntry.routable`,
computed natively by `fastscan._zipdir` while listing a zip).

tests/containers/test_containers_native_equals_spec.py holds the native answer to this one and
this one to `sniff`.
"""

from __future__ import annotations

from fastscan.containers.base import Buffer
from fastscan.containers.sniff import ROUTE_FIRST, ZIP_EOCD, is_tar


def may_route(buf: Buffer, start: int, end: int) -> bool:
    """False only when `sniff` of buf[start:end] cannot name a format a member is read further for.

    `buf` is bytes or an mmap (searched in place); other buffers are copied.
    """
    if end <= start:
        return True  # empty: let the full path record it
    if ROUTE_FIRST[buf[start]]:
        return True
    if end - start >= 512 and is_tar(memoryview(buf)[start : start + 512]):
        return True
    find = getattr(buf, "find", None)
    if find is None:
        return bytes(memoryview(buf)[start:end]).find(ZIP_EOCD) >= 0
    return bool(find(ZIP_EOCD, start, end) >= 0)
