"""Generate the labelled training/test corpus: benign files from real libraries, malicious
families from `payloads` in every applicable container of `matrix`, and a manifest.

    python -m fastscan.train.corpus OUT --seed 0 --scale small

Layout: OUT/benign/<source>/…, OUT/benign/lib/<library>/<source>/…,
OUT/benign/wrapped/<container>/…, OUT/benign/fixtures/…, OUT/malicious/<group>/<family>/…,
OUT/manifest.jsonl (one object per file, sorted by path) and OUT/summary.json (files per library,
sources skipped because their library is not installed, sources that failed). Every benign row
names its `library` (the distribution whose objects it holds; `benign_libs` adds 50+ of them) for
leave- one-library-out. The benign `custom_*` sources (group "custom", see benign_custom.py)
reference user code outside every allowlist: rules call them suspicious (FS103), and the model must
learn they are benign. Every file's bytes depend only on the seed: each one has its own
`random.Random` seeded from a string naming it, so adding a family does not shift the others.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastscan.train import benign, benign_custom, benign_libs, matrix, payloads, wrappers

__all__ = ["PLANS", "Plan", "generate", "main"]


@dataclass(frozen=True)
class Plan:
    benign_per_source: int  # files per benign.SOURCES entry
    benign_wrapped: int  # benign raw pickles put into random stream containers
    seeds: int  # samples per (payload, container) cell
    containers_per_payload: int  # 0: every container the matrix row lists
    f_containers: int  # containers per section-F callable
    injected_per_position: int  # real benign torch models with a spliced payload, per position
    fixtures: int  # copies of each archive-abuse / non-pickle fixture
    lib_per_source: int  # files per benign_libs.SOURCES entry


PLANS = {
    "small": Plan(4, 40, 1, 2, 1, 3, 1, 3),
    "medium": Plan(40, 400, 2, 0, 2, 40, 3, 12),
    "large": Plan(200, 2000, 6, 0, 4, 200, 10, 60),
}
POSITIONS = ("start", "middle", "end")


@dataclass
class _Entry:
    path: str
    label: str
    family: str
    group: str
    container: str
    extra: dict[str, Any]


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: list[tuple[_Entry, str, int]] = []
        self.skipped: dict[str, list[str]] = {}  # lib source -> modules not installed
        self.failed: dict[str, str] = {}  # lib source -> first error

    def add(self, rel: str, data: bytes, entry: _Entry) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        entry.path = rel
        self.entries.append((entry, hashlib.sha256(data).hexdigest(), len(data)))

    def manifest(self) -> Path:
        out = self.root / "manifest.jsonl"
        rows = []
        for entry, digest, size in sorted(self.entries, key=lambda e: e[0].path):
            row = {"path": entry.path, "label": entry.label, "family": entry.family,
                   "group": entry.group, "container": entry.container, "sha256": digest,
                   "size": size, **entry.extra}  # fmt: skip
            rows.append(json.dumps(row, sort_keys=True))
        out.write_text("".join(line + "\n" for line in rows))
        libraries: dict[str, int] = {}
        for entry, _digest, _size in self.entries:
            if library := entry.extra.get("library"):
                libraries[library] = libraries.get(library, 0) + 1
        summary = {"files": len(rows), "benign_files_per_library": dict(sorted(libraries.items())),
                   "skipped_not_installed": self.skipped, "failed": self.failed}  # fmt: skip
        (self.root / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
        return out


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random("|".join(map(str, (seed, *parts))))  # str seeds hash with SHA-512


def _safe(name: str) -> str:
    return name.replace(":", "_").replace("/", "_")


def _wanted(families: set[str] | None, *names: str) -> bool:
    return families is None or any(n in families for n in names)


def _usable(container: str, key: str, has_torch: bool) -> bool:
    spec = wrappers.CONTAINERS[container]
    if spec.needs_torch and not has_torch:
        return False
    return spec.accepts == "stream" or key in payloads.INJECTABLE


def _malicious_cells(plan: Plan, seed: int, has_torch: bool) -> Iterator[tuple[str, str, int]]:
    """(payload key, container, sample index) for every applicable matrix cell, once each."""
    seen: set[tuple[str, str, int]] = set()
    for row in matrix.ROWS:
        if row.not_applicable:
            continue
        for key in row.payloads:
            containers = [c for c in row.containers if _usable(c, key, has_torch)]
            per_key = plan.f_containers if row.id == "F" else plan.containers_per_payload
            if per_key and len(containers) > per_key:
                rest = [c for c in containers if c != "raw"]
                chosen = _rng(seed, "cells", row.id, key).sample(rest, per_key - 1)
                containers = (["raw"] if "raw" in containers else [rest[0]]) + chosen
            for container in containers:
                for index in range(plan.seeds):
                    cell = (key, container, index)
                    if cell not in seen:
                        seen.add(cell)
                        yield cell


def _row_of(key: str) -> matrix.Row:
    threat = key.split(":", maxsplit=1)[0].split(".", maxsplit=1)[0]
    return matrix.row(threat)


def _malicious(
    w: _Writer, plan: Plan, seed: int, families: set[str] | None, has_torch: bool
) -> None:
    for key, container, index in _malicious_cells(plan, seed, has_torch):
        build = payloads.PAYLOADS[key]
        sample = build(_rng(seed, "payload", key, container, index))
        if not _wanted(families, key, sample.threat, sample.family):
            continue
        data, ext = wrappers.wrap(container, sample.data, _rng(seed, "wrap", key, container, index))
        rel = f"malicious/{sample.family}/{_safe(key)}/{container}-{index}{ext}"
        w.add(rel, data, _malicious_entry(sample, container))
    _injected(w, plan, seed, families, has_torch)


def _malicious_entry(sample: payloads.Sample, container: str, **more: Any) -> _Entry:
    row = _row_of(sample.key)
    extra = {
        "threat": sample.threat,
        "globals": list(sample.globals),
        "hidden": list(sample.hidden),
        "reaches": wrappers.CONTAINERS[container].reaches,
        "expected": row.expected,
        **more,
    }
    return _Entry("", "malicious", sample.key, sample.family, container, extra)


def _injected(
    w: _Writer, plan: Plan, seed: int, families: set[str] | None, has_torch: bool
) -> None:
    """Real benign torch models of many shapes with a payload spliced into data.pkl."""
    if not has_torch:
        return
    keys = sorted(payloads.INJECTABLE)
    for position in POSITIONS:
        for index in range(plan.injected_per_position):
            rng = _rng(seed, "inject", position, index)
            key = rng.choice(keys)
            sample = payloads.PAYLOADS[key](rng)
            if not _wanted(families, key, sample.threat, sample.family, "injected"):
                continue
            model, _ext = benign.torch_state_dict(rng, rng.choice(["small", "small", "medium"]))
            data = wrappers.inject_into_torch_zip(model, payloads.as_snippet(sample.data), position)
            rel = f"malicious/{sample.family}/{_safe(key)}/injected-{position}-{index}.pt"
            w.add(rel, data, _malicious_entry(sample, "torch_zip_injected", position=position))


def _benign(
    w: _Writer, plan: Plan, *, seed: int, scale: str, families: set[str] | None, has_torch: bool
) -> None:
    for source, fn in benign.SOURCES.items():
        if source in benign.NEEDS_TORCH and not has_torch:
            continue
        if not _wanted(families, source, "benign"):
            continue
        for index in range(plan.benign_per_source):
            data, ext = fn(_rng(seed, "benign", source, index), scale)
            expected = _benign_expected(source)
            group = "non_pickle" if source in benign.NON_PICKLE else source.split("_")[0]
            extra = {"expected": expected, "library": library_of(source)}
            entry = _Entry("", "benign", source, group, _benign_container(source, data), extra)
            w.add(f"benign/{source}/{source}-{index}{ext}", data, entry)
    _benign_libs(w, plan, seed, scale, families)
    if _wanted(families, "benign", "benign_wrapped"):
        _benign_wrapped(w, plan, seed, has_torch)
    # Archive-abuse fixtures (B5/B6) are neither model files nor pickle attacks: a scanner must
    # report them (encrypted, traversal, bomb), so they stay out of the benign false-positive
    # rate unless asked for by name.
    for name, (make, ext) in wrappers.FIXTURES.items():
        if families is None or not _wanted(families, name, "fixtures"):
            continue
        expected = matrix.row("B5" if name == "zip_encrypted" else "B6").expected
        for index in range(plan.fixtures):
            data = make(_rng(seed, "fixture", name, index))
            entry = _Entry("", "benign", name, "archive_abuse", name, {"expected": expected})
            w.add(f"benign/fixtures/{name}-{index}{ext}", data, entry)


def _benign_libs(w: _Writer, plan: Plan, seed: int, scale: str, families: set[str] | None) -> None:
    """benign_libs sources, grouped by library; a library that is not installed is skipped and
    a generator that raises is recorded (summary.json), neither stops the build."""
    for name, src in benign_libs.SOURCES.items():
        if name in benign_libs.ENCRYPTED:  # opt-in, see benign_libs.ENCRYPTED
            if families is None or not _wanted(families, name, "encrypted_archives"):
                continue
        elif not _wanted(families, name, src.library, "benign", "benign_libs"):
            continue
        if missing := src.missing():
            w.skipped[name] = missing
            continue
        for index in range(plan.lib_per_source):
            try:
                data, ext = src.fn(_rng(seed, "benign-lib", name, index), scale)
            except Exception as exc:
                w.failed.setdefault(name, f"{type(exc).__name__}: {exc}"[:300])
                continue
            expected = "encrypted" if name in benign_libs.ENCRYPTED else "clean"
            extra = {"expected": expected, "library": src.library}
            entry = _Entry("", "benign", name, src.library, _benign_container(name, data), extra)
            w.add(f"benign/lib/{src.library}/{name}-{index}{ext}", data, entry)


_LIBRARY_PREFIXES = (("torch", "torch"), ("sklearn", "scikit-learn"), ("numpy", "numpy"),
                     ("pandas", "pandas"), ("dill", "dill"), ("cloudpickle", "cloudpickle"),
                     ("plain", "python-stdlib"), ("quirk", "python-stdlib"),
                     ("custom", "user-code"))  # fmt: skip


def library_of(source: str) -> str | None:
    """The distribution whose objects a benign.SOURCES file holds (`custom_*`: the generated
    user package); None for files that are not pickles (they have no library to leave out)."""
    if source in benign.NON_PICKLE:
        return None
    for prefix, library in _LIBRARY_PREFIXES:
        if source.startswith(prefix):
            return library
    return None


def _benign_expected(source: str) -> str:
    """What a scanner should answer by rules: user-code files are benign but reference globals
    no allowlist can know (FS103 suspicious), which is the noise the model must judge."""
    if source in benign.NON_PICKLE:
        return "unsupported"
    return "suspicious" if source in benign_custom.CUSTOM_SOURCES else "clean"


_RAW_BENIGN = ("plain_python", "sklearn_pickle", "dill_function", "cloudpickle_function")


def _benign_wrapped(w: _Writer, plan: Plan, seed: int, has_torch: bool) -> None:
    """Benign pickles in the same containers as the malicious ones: the wrapper is no label."""
    containers = [c for c in matrix.STREAM_CONTAINERS if _usable(c, "", has_torch)]
    for index in range(plan.benign_wrapped):
        rng = _rng(seed, "benign-wrapped", index)
        source = rng.choice(_RAW_BENIGN)
        data, _ = benign.SOURCES[source](rng, "small")
        container = containers[index % len(containers)]
        wrapped, ext = wrappers.wrap(container, data, rng)
        extra = {"expected": "clean", "library": library_of(source)}
        entry = _Entry("", "benign", source, "wrapped", container, extra)
        w.add(f"benign/wrapped/{container}/{source}-{index}{ext}", wrapped, entry)


_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x78", "zlib"),
    (b"\x5d\x00\x00", "lzma"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
)


def _benign_container(source: str, data: bytes) -> str:
    if data[:2] == b"PK":
        return (
            "torchscript"
            if source == "torchscript"
            else ("npz" if source == "numpy_npz" else "zip")
        )
    if source.startswith("torch_legacy"):
        return "torch_legacy"
    if data[:6] == b"\x93NUMPY":
        return "npy"
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return "raw"


def generate(
    out_dir: str | Path,
    *,
    seed: int = 0,
    scale: str = "small",
    families: Iterable[str] | None = None,
) -> Path:
    """Write the corpus under `out_dir` and return the path of its manifest.jsonl.

    `families` filters by payload key ("C7", "F:os.system"), threat id ("C9"), coarse group
    ("process"), benign source ("sklearn_joblib"), "benign" (all benign), "injected" or "fixtures",
    "benign_libs" (every benign_libs source), a library ("gensim"), or "encrypted_archives"
    (benign_libs.ENCRYPTED, opt-in like "fixtures"). Same seed, scale and families give byte-
    identical files in any process started with the same PYTHONHASHSEED (except
    benign_libs.STAMPED) (`main` pins it to 0): TorchScript orders constants by set iteration, and
    whole-module torch pickles memoize interned strings. In one process, a second run differs only
    in those whole-module files (string interning remembers the first run).
    """
    if scale not in PLANS:
        raise ValueError(f"scale must be one of {sorted(PLANS)}")
    plan = PLANS[scale]
    wanted = set(families) if families is not None else None
    writer = _Writer(Path(out_dir))
    has_torch = benign.torch_available()
    _benign(writer, plan, seed=seed, scale=scale, families=wanted, has_torch=has_torch)
    _malicious(writer, plan, seed, wanted, has_torch)
    return writer.manifest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastscan.train.corpus", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out", help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", choices=sorted(PLANS), default="small")
    parser.add_argument("--families", default=None, help="comma-separated filter (see generate)")
    args = parser.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != "0":  # str hashing order leaks into some files
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        argv = sys.argv[1:] if argv is None else argv
        command = [sys.executable, "-m", "fastscan.train.corpus", *argv]
        return subprocess.run(command, env=env, check=False).returncode
    families = [f for f in args.families.split(",") if f] if args.families else None
    manifest = generate(args.out, seed=args.seed, scale=args.scale, families=families)
    count = sum(1 for _ in manifest.open())
    print(f"wrote {count} files; manifest {manifest}", file=sys.stderr)
    summary = json.loads((manifest.parent / "summary.json").read_text(encoding="utf-8"))
    libraries = summary["benign_files_per_library"]
    print(f"benign files from {len(libraries)} libraries", file=sys.stderr)
    for name, missing in summary["skipped_not_installed"].items():
        print(f"skipped {name}: not installed: {', '.join(missing)}", file=sys.stderr)
    for name, error in summary["failed"].items():
        print(f"FAILED {name}: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
