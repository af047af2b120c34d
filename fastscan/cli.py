"""Command line: thin commands over the library; `main(argv) -> int` returns the exit code.

Exit codes: 0 every file clean; 1 a file at or above --fail-on; 2 usage or operational error
(a file that could not be read at all, with nothing flagged).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__

EXIT_CLEAN, EXIT_FLAGGED, EXIT_ERROR = 0, 1, 2
_LEVELS = ("suspicious", "malicious")


def _add_scanner_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="default",
        help="ONNX model path, 'default' (shipped) or 'none' (rules only)",
    )
    p.add_argument("--config", help="TOML with extra allow/deny entries and suppressions")
    p.add_argument(
        "--strict-unknown",
        action="store_true",
        help="unlisted globals stay suspicious even when the classifier is sure (no FS903)",
    )
    p.add_argument(
        "--fail-on",
        choices=_LEVELS,
        default="suspicious",
        help="lowest verdict that makes the exit code 1 (default: suspicious)",
    )


def _scanner_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": None if args.model == "none" else args.model,
        "config": args.config,
        "strict_unknown": args.strict_unknown,
    }


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastscan",
        description="Find malicious pickle-based ML model files without loading them.",
        epilog="Exit codes: 0 clean, 1 flagged (at or above --fail-on), 2 error.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("scan", help="scan files and print a verdict per file")
    p.add_argument("files", nargs="+")
    p.add_argument("--format", choices=("console", "jsonl", "sarif"), default="console")
    _add_scanner_options(p)

    p = sub.add_parser("explain", help="show what a file's pickles import and call, and why")
    p.add_argument("file")
    p.add_argument("--max-ops", type=int, default=400, help="opcodes listed per pickle")
    _add_scanner_options(p)

    p = sub.add_parser("bulk", help="scan every file under a root (or URL) into Parquet")
    p.add_argument("root")
    p.add_argument("--out", required=True, help="output file ('-' for stdout with text formats)")
    p.add_argument("--format", choices=("parquet", "jsonl", "sarif", "console"), default="parquet")
    p.add_argument(
        "-j",
        "--workers",
        type=int,
        default=None,
        help="processes (default: all cores; 0: in-process, no crash isolation)",
    )
    p.add_argument("--chunk-size", type=int, default=64, help="files sent to a worker at once")
    p.add_argument("--include", action="append", default=[], help="glob on the relative path")
    p.add_argument("--exclude", action="append", default=[], help="glob on the relative path")
    p.add_argument("--follow-symlinks", action="store_true")
    p.add_argument("--since", help="previous verdicts Parquet: skip unchanged files")
    p.add_argument("--resume", action="store_true", help="complete an interrupted --out file")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per file")
    p.add_argument("--memory-mb", type=int, default=4096, help="allocation budget per worker")
    p.add_argument("--features", help="also write the feature batches to this Parquet file")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--strict-errors", action="store_true", help="exit 2 when any file errored")
    p.add_argument("--engine", choices=("local", "dask"), default="local")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:port)")
    _add_scanner_options(p)

    p = sub.add_parser("report", help="summarise a verdicts Parquet file")
    p.add_argument("parquet")
    p.add_argument("--html", help="also write a standalone HTML report here")
    p.add_argument("--top", type=int, default=20)

    for name, help_text in (
        ("corpus", "generate the labelled training corpus"),
        ("train", "fit the classifier and export it to ONNX"),
        ("eval", "precision/recall/F1 per family on a labelled corpus"),
    ):
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)

    sub.add_parser("version", help="print versions and the active implementation")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .isolation import harden

    harden()  # before any lazy import: nothing from the current directory (see isolation)
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as exc:  # BulkError is a RuntimeError
        print(f"fastscan: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _exit_code(verdicts: list[str], statuses: list[str], fail_on: str) -> int:
    level = _LEVELS.index(fail_on)
    if any(v in _LEVELS and _LEVELS.index(v) >= level for v in verdicts):
        return EXIT_FLAGGED
    if any(s == "error" for s in statuses):
        return EXIT_ERROR
    return EXIT_CLEAN


def _cmd_scan(args: argparse.Namespace) -> int:
    from .scan import Scanner
    from .sinks import ConsoleSink, open_sink, results_to_batch

    scanner = Scanner(**_scanner_options(args))
    results, _ = scanner.scan_refs([os.fspath(f) for f in args.files])
    sink: Any
    if args.format == "console":  # every file gets its line, flagged ones all their reasons
        sink = ConsoleSink(sys.stdout, show_clean=True, max_reasons=20, width=160)
    else:
        sink = open_sink(args.format, stream=sys.stdout, metadata=scanner.versions)
    sink.write(results_to_batch(results))
    sink.close()
    return _exit_code([r.verdict for r in results], [r.status for r in results], args.fail_on)


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import render
    from .scan import Scanner

    scanner = Scanner(**_scanner_options(args))
    analysis, result = scanner.explain_source(args.file, args.file, keep_data=64 << 20)
    for line in render(analysis, result, analysis.data, scanner.rules, max_ops=args.max_ops):
        print(line)
    return _exit_code([result.verdict], [result.status], args.fail_on)


def _cmd_bulk(args: argparse.Namespace) -> int:
    options = _scanner_options(args)
    if args.engine == "dask":
        from .scale.dask_backend import run_dask

        summary = run_dask(args, options)
    else:
        if args.workers is None or args.workers > 0:
            from . import forkserver

            forkserver.start()  # the workers' imports now overlap the ones below
        from .bulk import run_bulk

        out: Any = sys.stdout if args.out == "-" else args.out
        summary = run_bulk(
            args.root,
            out=out,
            fmt=args.format,
            workers=args.workers,
            chunk_size=args.chunk_size,
            include=args.include,
            exclude=args.exclude,
            follow_symlinks=args.follow_symlinks,
            since=args.since,
            resume=args.resume,
            timeout=args.timeout,
            memory_mb=args.memory_mb,
            features_out=args.features,
            progress=False if args.no_progress else None,
            scanner_options=options,
            fail_on=args.fail_on,
            strict_errors=args.strict_errors,
        )
    print(summary.render(), file=sys.stderr)
    return int(summary.exit_code)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import render_report

    print(render_report(args.parquet, html_path=args.html, top=args.top))
    return EXIT_CLEAN


def _cmd_corpus(args: argparse.Namespace) -> int:
    from .train.corpus import main as corpus_main

    return corpus_main(args.rest)


def _cmd_train(args: argparse.Namespace) -> int:
    from .train.fit import main as fit_main

    return fit_main(args.rest)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .train.evaluate import main as eval_main

    return eval_main(args.rest)


def _cmd_version(args: argparse.Namespace) -> int:
    import onnxruntime
    import pyarrow

    from .opcodes import table_hash
    from .tokenizer import IMPLEMENTATION

    print(f"fastscan {__version__} (tokenizer: {IMPLEMENTATION}, opcode table {table_hash()})")
    print(
        f"python {sys.version.split()[0]}, onnxruntime {onnxruntime.__version__},"
        f" pyarrow {pyarrow.__version__}"
    )
    return EXIT_CLEAN


_COMMANDS = {
    "scan": _cmd_scan,
    "explain": _cmd_explain,
    "bulk": _cmd_bulk,
    "report": _cmd_report,
    "corpus": _cmd_corpus,
    "train": _cmd_train,
    "eval": _cmd_eval,
    "version": _cmd_version,
}


if __name__ == "__main__":
    raise SystemExit(main())
