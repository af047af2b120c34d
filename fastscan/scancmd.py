"""`fastscan scan`: files, directories (recursed like `bulk`), URLs and stdin, in one process.

Results stream to the chosen writer chunk by chunk; `run_scan` returns the results that count
for the exit code (files accepted by a `--baseline` do not).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .verdict import CLEAN, FileResult

if TYPE_CHECKING:
    from .sources.ref import FileRef

CHUNK = 64  # files judged by one model call
STDIN = "-"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "files",
        nargs="+",
        metavar="PATH",
        help="files, directories (scanned recursively), URLs (s3://…, hf://ORG/NAME[@REV]) "
        "or - for standard input",
    )
    p.add_argument(
        "--format",
        choices=("console", "jsonl", "sarif"),
        default="console",
        help="output written to standard output",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print only flagged and errored files"
    )
    p.add_argument(
        "--hash",
        action="store_true",
        help="add each file's sha256 (reads every byte; implied by the baseline options)",
    )
    p.add_argument("--baseline", metavar="FILE", help="accept findings recorded in this file")
    p.add_argument(
        "--write-baseline",
        metavar="FILE",
        help="record the findings of every flagged file here (then exit 0)",
    )
    add_walk_arguments(p)
    p.add_argument(
        "--sarif-root",
        default=".",
        help="directory SARIF locations are relative to (%%SRCROOT%%)",
    )
    p.add_argument(
        "--sarif-all",
        action="store_true",
        help="SARIF results for clean files' findings and notes too",
    )


def add_walk_arguments(p: argparse.ArgumentParser) -> None:
    """The options that choose which files under a directory or URL are read (scan, bulk)."""
    p.add_argument(
        "--include", action="append", default=[], help="glob on paths inside a directory or URL"
    )
    p.add_argument(
        "--exclude", action="append", default=[], help="glob on paths inside a directory or URL"
    )
    p.add_argument(
        "--with-safetensors",
        action="store_true",
        help="also read *.safetensors files of hf:// repositories (they hold no pickle)",
    )


def _targets(args: argparse.Namespace) -> Iterator[FileRef | str]:
    """Named files become refs relative to the current directory (an unreadable one is an FS316
    row, as in `bulk`); directories and URLs are walked like `bulk` walks them."""
    import os

    from .sources import discover, hf_excludes
    from .sources.local import local_ref
    from .sources.ref import FileRef, is_remote

    for target in args.files:
        if target != STDIN and (is_remote(target) or os.path.isdir(target)):
            exclude = hf_excludes(target, args.exclude, args.with_safetensors)
            found = 0
            for ref in discover(target, args.include, exclude):
                found += 1
                yield ref
            if not found and is_remote(target) and not (args.include or args.exclude):
                # a mistyped object name lists as nothing: say so, never a silent clean
                yield FileRef(target, -1, 0.0, error="no object at this URL")
        elif target == STDIN:
            yield target
        else:
            yield local_ref(target)


def scan_all(scanner: Any, targets: list[FileRef | str]) -> list[FileResult]:
    """Results for `targets`, in order: local files and URLs (ranged reads) judged together."""
    from .sources.ref import hf_coordinates, unreadable_result

    results: list[FileResult | None] = [None] * len(targets)
    batch: list[int] = []
    for i, ref in enumerate(targets):
        if ref == STDIN:
            results[i] = scanner.scan_bytes(sys.stdin.buffer.read(), "<stdin>")
        elif not isinstance(ref, str) and ref.error:  # missing, dangling, a loop, a FIFO: FS316
            results[i] = unreadable_result(ref)
        else:
            batch.append(i)
    if batch:
        scanned, _ = scanner.scan_refs([targets[i] for i in batch])
        for i, result in zip(batch, scanned, strict=True):
            results[i] = result
    out = [r for r in results if r is not None]
    for r in out:
        r.hf_repo, r.hf_revision = hf_coordinates(r.path)
    return out


def run_scan(args: argparse.Namespace, scanner_options: dict[str, Any]) -> list[FileResult]:
    from .baseline import is_accepted, load_baseline, write_baseline
    from .results import results_to_batch
    from .scan import Scanner
    from .sinks import ConsoleSink, open_sink

    accepted = load_baseline(args.baseline) if args.baseline else frozenset()
    hashing = bool(args.hash or args.baseline or args.write_baseline)
    scanner = Scanner(**scanner_options, hash_files=hashing)
    sink: Any
    if args.format == "console":  # every file gets its line, flagged ones all their reasons
        sink = ConsoleSink(sys.stdout, show_clean=not args.quiet, max_reasons=20, accepted=accepted)
    else:
        sarif = {"root": args.sarif_root, "include_clean": args.sarif_all, "baseline": accepted}
        sink = open_sink(args.format, stream=sys.stdout, metadata=scanner.versions, sarif=sarif)
    counted: list[FileResult] = []
    flagged: list[FileResult] = []
    refs = list(_targets(args))
    try:
        for start in range(0, len(refs), CHUNK):
            results = scan_all(scanner, refs[start : start + CHUNK])
            sink.write(results_to_batch(results))
            flagged += [r for r in results if r.verdict != CLEAN]
            counted += [r for r in results if not is_accepted(r, accepted)]
    finally:
        sink.close()
    if args.write_baseline:
        n = write_baseline(args.write_baseline, flagged)
        print(f"fastscan: wrote {n} accepted findings to {args.write_baseline}", file=sys.stderr)
        return [r for r in counted if r.status == "error"]  # accepted now; errors still count
    return counted
