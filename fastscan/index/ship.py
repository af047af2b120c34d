"""Build the shipped ecosystem index from pinned wheels (`pins.txt`) and this Python's stdlib.

    python -m fastscan.index.ship --out fastscan/index/data/ecosystem.fsidx [--cache DIR]
        [--other-stdlib /path/to/lib/python3.12 /path/to/lib/python3.13]

Each pin `name==version` is read from an installed distribution of exactly that version when
there is one (its files, through RECORD metadata), else from the wheel fetched with
`pip download name==version --no-deps --only-binary=:all:` into the cache; nothing is
installed or imported. Pins that cannot be fetched are reported and left out (exit status 1 with
--strict). Wheels over --keep-mb are deleted after reading.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata, resources
from pathlib import Path

from .sources import (
    _canonical,
    build_bytes,
    distribution_files,
    other_stdlib,
    stdlib,
    wheel,
    with_other_stdlibs,
)
from .symbols import ModuleInfo


def read_pins(text: str | None = None) -> list[tuple[str, str]]:
    if text is None:
        text = resources.files(__package__).joinpath("pins.txt").read_text()
    pins = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            if not version:
                raise ValueError(f"pins.txt: {line!r} is not name==version")
            pins.append((name.strip(), version.strip()))
    return pins


def _installed(name: str, version: str) -> metadata.Distribution | None:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    local = dist.version.split("+")[0]
    return dist if local == version else None


def _fetch(name: str, version: str, cache: Path, log: list[str]) -> Path | None:
    canon = _canonical(name).replace("-", "_")
    found = [
        p
        for p in cache.glob("*.whl")
        if _canonical(p.name.split("-")[0]).replace("-", "_") == canon
        and p.name.split("-")[1] == version
    ]
    if found:
        return sorted(found)[0]
    cmd = [sys.executable, "-m", "pip", "download", f"{name}=={version}", "--no-deps"]
    cmd += ["--only-binary=:all:", "--python-version", "3.11", "-q", "-d", str(cache)]
    for platform in ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "any"):
        cmd += ["--platform", platform]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        log.append(f"{name}=={version}: pip download failed: {proc.stderr.strip()[-300:]}")
        return None
    found = [
        p
        for p in cache.glob("*.whl")
        if _canonical(p.name.split("-")[0]).replace("-", "_") == canon
        and p.name.split("-")[1] == version
    ]
    return sorted(found)[0] if found else None


def pinned_modules(
    pins: list[tuple[str, str]], cache: Path, keep_mb: int, log: list[str]
) -> Iterator[ModuleInfo]:
    for name, version in pins:
        t0 = time.perf_counter()
        dist = _installed(name, version)
        if dist is not None:
            mods = list(distribution_files(dist))
            where = "installed"
        else:
            path = _fetch(name, version, cache, log)
            if path is None:
                continue
            mods = list(wheel(path))
            where = path.name
            if path.stat().st_size > keep_mb << 20:
                path.unlink()
        took = time.perf_counter() - t0
        log.append(f"{name}=={version}: {len(mods)} modules from {where} in {took:.1f}s")
        print(log[-1], flush=True)
        yield from mods


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fastscan.index.ship", description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default="/tmp/fastscan-wheels")
    ap.add_argument("--keep-mb", type=int, default=50)
    ap.add_argument("--strict", action="store_true", help="fail when a pin cannot be fetched")
    ap.add_argument("--only", nargs="*", help="restrict to these pinned names (for testing)")
    ap.add_argument("--other-stdlib", nargs="*", default=[], metavar="DIR",
                    help="standard libraries of the other supported Pythons (.../lib/python3.13):"
                    " their modules this Python lacks are added")  # fmt: skip
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    pins = read_pins()
    if args.only:
        pins = [p for p in pins if p[0] in args.only]
    log: list[str] = []
    t0 = time.perf_counter()
    python = with_other_stdlibs(stdlib(), [other_stdlib(d) for d in args.other_stdlib])
    data = build_bytes(itertools.chain(python, pinned_modules(pins, cache, args.keep_mb, log)))
    Path(args.out).write_bytes(data)
    failed = [line for line in log if "failed" in line]
    print(f"wrote {args.out}: {len(data) / 1e6:.1f} MB, {len(pins) - len(failed)}/{len(pins)} pins,"
          f" {time.perf_counter() - t0:.0f}s")  # fmt: skip
    for line in failed:
        print("MISSING", line, file=sys.stderr)
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
