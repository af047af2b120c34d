"""Seed corpora for the fuzz runs, built from the project's own fixtures (never third-party files).

Malicious payloads (`fastscan.train.payloads`) wrapped in each container family
(`fastscan.train.wrappers`), plus cheap benign files from `fastscan.train.benign`. Deterministic
for a seed. Files above MAX_SEED_BYTES are left out: the fuzzer mutates small inputs faster.

    python fuzz/seeds.py OUT_DIR            # writes OUT_DIR/<group>/<name>
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

from fastscan.train import benign, payloads, wrappers

MAX_SEED_BYTES = 256 << 10
# A few payloads that exercise different parser paths (text protocol, memo, broken tails,
# junk between pickles, frames, nesting) wrapped in every container of a group.
WRAPPED_PAYLOADS = ("F:os.system", "C1", "C4", "C5", "C7", "D1", "H1")
GROUPS: dict[str, tuple[str, ...]] = {
    "zip": (
        "torch_zip", "torch_zip_renamed_member", "npz_stored", "npz_deflated", "zip_in_zip",
        "zip_flag_0x1", "zip_crc_mismatch", "zip_name_mismatch", "zip_prefix_data", "torchscript",
    ),
    "tar": ("tar", "tar_in_zip"),
    "legacy": ("torch_legacy", "torch_legacy_forged_magic"),
    "joblib": ("joblib_after_array", "joblib_zlib", "joblib_lzma"),
    "npy": ("npy_object",),
    "compressed": ("gzip", "bz2", "xz", "lz4"),
    "7z": ("7z",),
}  # fmt: skip
CHEAP_BENIGN = {
    "pickles": ("plain_python", "quirk_stack_global_in_proto2", "quirk_readonly_buffer"),
    "joblib": ("sklearn_joblib",),
    "npy": ("numpy_npy",),
    "zip": ("numpy_npz",),
}


def _rng(*parts: object) -> random.Random:
    return random.Random("|".join(map(str, ("seeds", *parts))))


def build(out: Path, *, torch: bool | None = None) -> dict[str, int]:
    """Write every group's seeds under `out`; returns the file count per group."""
    has_torch = benign.torch_available() if torch is None else torch
    files: dict[str, dict[str, bytes]] = {"pickles": {}}
    for key in sorted(payloads.PAYLOADS):
        if key.startswith("G5."):  # MiB-sized by design; the hostile tests cover them
            continue
        files["pickles"][key] = payloads.PAYLOADS[key](_rng(key)).data
    for group, containers in GROUPS.items():
        files.setdefault(group, {})
        for container in containers:
            spec = wrappers.CONTAINERS[container]
            if spec.needs_torch and not has_torch:
                continue
            for key in WRAPPED_PAYLOADS:
                if spec.accepts == "snippet" and key not in payloads.INJECTABLE:
                    continue
                sample = payloads.PAYLOADS[key](_rng(key, container))
                data, _ext = wrappers.wrap(container, sample.data, _rng("wrap", key, container))
                files[group][f"{container}-{key}"] = data
    for group, sources in CHEAP_BENIGN.items():
        for source in sources:
            if source in benign.SOURCES:
                data, _ext = benign.SOURCES[source](_rng("benign", source), "small")
                files.setdefault(group, {})[f"benign-{source}"] = data
    counts = {}
    for group, named in files.items():
        folder = out / group
        folder.mkdir(parents=True, exist_ok=True)
        kept = 0
        for name, data in named.items():
            if len(data) > MAX_SEED_BYTES:
                continue
            digest = hashlib.sha1(data).hexdigest()[:12]
            (folder / f"{name.replace(':', '_').replace('/', '_')}-{digest}").write_bytes(data)
            kept += 1
        counts[group] = kept
    return counts


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for group, count in build(Path(sys.argv[1])).items():
        print(f"{group}: {count} seeds")
