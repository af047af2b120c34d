"""Which fsspec file system a URL is read through: the optional extras it needs, and the storage
options of this process (the environment's, then the run's, then the caller's)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

S3_HINT = "reading s3:// URLs needs s3fs: pip install 'fastscan[s3]'"
HF_HINT = "reading hf:// URLs needs huggingface_hub: pip install 'fastscan[hf]'"
FSSPEC_HINT = "reading URLs needs fsspec: pip install 'fastscan[s3]'"


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


_configured: dict[str, Any] = {}


def configure(storage_options: Mapping[str, Any] | None) -> None:
    """Set the storage options this process uses for every URL (Dask workers get the client's)."""
    _configured.clear()
    _configured.update(storage_options or {})


def storage_options_from_env(protocol: str = "s3") -> dict[str, Any]:
    """Non-secret options from the environment: the S3 endpoint and `FASTSCAN_STORAGE_OPTIONS`.

    Credentials and region are left to the SDK's own lookup (AWS_* variables, config files,
    instance roles), on every machine that reads.
    """
    opts: dict[str, Any] = {}
    extra = os.environ.get("FASTSCAN_STORAGE_OPTIONS", "").strip()
    if extra:
        loaded = json.loads(extra)
        if not isinstance(loaded, dict):
            raise ValueError("FASTSCAN_STORAGE_OPTIONS must be a JSON object")
        opts.update(loaded)
    if protocol in ("s3", "s3a"):
        endpoint = os.environ.get("FASTSCAN_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            opts.setdefault("endpoint_url", endpoint)
    return opts


def filesystem_for(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """(fsspec file system, path inside it) for `url`; fsspec caches one instance per options."""
    protocol = url.split("://", 1)[0]
    try:
        from fsspec.core import url_to_fs
    except ImportError as exc:
        raise MissingExtra(FSSPEC_HINT) from exc
    if protocol in ("s3", "s3a"):
        try:
            import s3fs  # noqa: F401 (optional extra)
        except ImportError as exc:
            raise MissingExtra(S3_HINT) from exc
    if protocol == "hf":  # HfFileSystem reads HF_TOKEN and HF_ENDPOINT itself
        try:
            import huggingface_hub  # noqa: F401 (optional extra; registers hf:// with fsspec)
        except ImportError as exc:
            raise MissingExtra(HF_HINT) from exc
    opts = storage_options_from_env(protocol)
    opts.update(_configured)
    opts.update(storage_options or {})
    fs, path = url_to_fs(url, **opts)
    return fs, path
