"""`fastscan index PATH_OR_DISTRIBUTION... --out FILE [--site-packages [DIR]]`."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .sources import build_bytes, from_spec, site_packages, stdlib
from .symbols import ModuleInfo


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastscan index",
        description="Build an index of what package names are and run at load time, from their "
        "sources (wheels, directories, installed distributions); nothing is imported.",
    )
    p.add_argument("specs", nargs="*", metavar="PATH_OR_DISTRIBUTION",
                   help="a .whl, a package or source directory, an installed distribution name,"
                   " or 'python' for this interpreter's standard library")  # fmt: skip
    p.add_argument("--out", required=True, help="index file to write")
    p.add_argument(
        "--site-packages",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="also every distribution installed in DIR (default: this environment)",
    )
    p.add_argument(
        "--no-stdlib",
        action="store_true",
        help="do not follow calls into this Python's standard library (by default it is"
        " analysed with the packages, but not written unless 'python' is given)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.specs and args.site_packages is None:
        print("fastscan index: give at least one PATH_OR_DISTRIBUTION or --site-packages",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        sources: list[Iterator[ModuleInfo]] = [from_spec(s) for s in args.specs]
        if args.site_packages is not None:
            sources.append(site_packages(args.site_packages or None))
        context = stdlib() if not args.no_stdlib and "python" not in args.specs else iter(())
        t0 = time.perf_counter()
        data = build_bytes(itertools.chain.from_iterable(sources), context)
        Path(args.out).write_bytes(data)
    except (OSError, ValueError) as exc:
        print(f"fastscan index: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {len(data)} bytes in {time.perf_counter() - t0:.1f}s", file=sys.stderr
    )
    return 0
