"""fastscan: find malicious pickle-based ML model files without loading them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one home of the version: pyproject.toml reads it (dynamic)

if TYPE_CHECKING:
    from .verdict import FileResult

__all__ = ["__version__", "scan_bytes", "scan_path"]


def scan_path(path: str, **options: Any) -> FileResult:
    """Scan one file (any supported container) and return its verdict row."""
    from .scan import scan_path as _scan_path

    return _scan_path(path, **options)


def scan_bytes(data: bytes, name: str = "<bytes>", **options: Any) -> FileResult:
    """Scan an in-memory file and return its verdict row."""
    from .scan import scan_bytes as _scan_bytes

    return _scan_bytes(data, name, **options)
