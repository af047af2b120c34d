"""Command line: thin commands over the library; `main(argv) -> int` returns the exit code.

Exit codes (fastscan.exitcodes, the one rule for every command): 0 clean; 1 a file at or above
--fail-on; 2 a file that could not be read with nothing flagged, or an operational error;
130 Ctrl-C; 141 the reader of stdout went away.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Sequence
from typing import Any

from .exitcodes import EXIT_CLEAN, EXIT_ERROR, exit_code, outcomes
from .version import __version__

_LEVELS = ("suspicious", "malicious")
_PASSTHROUGH = ("corpus", "train", "eval", "index")  # their own parsers take every argument


def _add_scanner_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="default",
        help="ONNX model path, 'default' (shipped) or 'none' (rules only)",
    )
    p.add_argument("--config", help="TOML with extra allow/deny entries and suppressions")
    p.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="FILE",
        help="ecosystem index of your own packages (`fastscan index`), added to the shipped one;"
        " repeatable",
    )
    p.add_argument(
        "--strict-unknown",
        action="store_true",
        help="unlisted globals stay suspicious even when the classifier is sure (no FS903)",
    )
    p.add_argument(
        "--fail-on",
        choices=_LEVELS,
        default="suspicious",
        help="lowest verdict that makes the exit code 1",
    )


def _scanner_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": None if args.model == "none" else args.model,
        "config": args.config,
        "strict_unknown": args.strict_unknown,
        "index": tuple(os.path.abspath(p) for p in args.index),  # workers may chdir
    }


_HELP = argparse.ArgumentDefaultsHelpFormatter  # every option's help shows its default


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastscan",
        description="Find malicious pickle-based ML model files without loading them.",
        epilog="Exit codes: 0 clean, 1 flagged (at or above --fail-on), 2 error.",
        formatter_class=_HELP,
    )
    parser.add_argument("--version", action="version", version=f"fastscan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .scancmd import add_arguments as add_scan_arguments
    from .scancmd import add_walk_arguments

    p = sub.add_parser("scan", help="scan files, trees, URLs or stdin", formatter_class=_HELP)
    add_scan_arguments(p)
    _add_scanner_options(p)

    p = sub.add_parser(
        "explain", help="show what a file's pickles import and call, and why", formatter_class=_HELP
    )
    p.add_argument("file", help="the file to explain")
    p.add_argument("--max-ops", type=int, default=400, help="opcodes listed per pickle")
    _add_scanner_options(p)

    from .bulkoptions import ENGINES, option_default

    p = sub.add_parser(
        "bulk", help="scan every file under a root (or URL) into Parquet", formatter_class=_HELP
    )
    p.add_argument("root", help="directory, file or URL (s3://bucket/prefix, hf://ORG/NAME[@REV])")
    p.add_argument("--out", required=True, help="output file ('-' for stdout with text formats)")
    p.add_argument(
        "--format",
        choices=("parquet", "jsonl", "sarif", "console"),
        help="default: from --out (.jsonl/.json, .sarif, '-': jsonl; else parquet)",
    )
    p.add_argument(
        "-j",
        "--workers",
        type=int,
        default=option_default("workers"),
        help="processes (None: all cores or FASTSCAN_WORKERS; 0: in-process, no crash isolation)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=option_default("chunk_size"),
        help="files sent to a worker at once",
    )
    add_walk_arguments(p)
    p.add_argument(
        "--follow-symlinks", action="store_true", help="descend into symlinked directories"
    )
    p.add_argument("--since", help="previous verdicts Parquet: skip unchanged files")
    p.add_argument("--resume", action="store_true", help="complete an interrupted --out file")
    p.add_argument(
        "--timeout", type=float, default=option_default("timeout"), help="seconds per file"
    )
    p.add_argument(
        "--memory-mb",
        type=int,
        default=option_default("memory_mb"),
        help="allocation budget per worker",
    )
    p.add_argument("--features", help="also write the feature batches to this Parquet file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--strict-errors",
        action="store_true",
        help="an unread file exits 2 even when others are flagged",
    )
    p.add_argument(
        "--hash", action="store_true", help="fill the sha256 column (reads every local byte)"
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=option_default("engine"),
        help="where files are scanned",
    )
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:port)")
    _add_scanner_options(p)

    p = sub.add_parser(
        "report", help="summarise a verdicts Parquet file (or Dask dataset)", formatter_class=_HELP
    )
    p.add_argument("parquet", help="verdicts Parquet written by bulk")
    p.add_argument("--html", help="also write a standalone HTML report here")
    p.add_argument(
        "--format",
        choices=("text", "json", "csv"),
        default="text",
        help="stdout: text summary, JSON summary, or CSV of every row",
    )
    p.add_argument("--top", type=int, default=20, help="rows per table (rules, files, errors)")
    p.add_argument(
        "--fail-on", choices=_LEVELS, default="suspicious", help="lowest verdict that exits 1"
    )
    p.add_argument(
        "--strict-errors",
        action="store_true",
        help="an unread file exits 2 even when others are flagged",
    )

    from .rulescmd import add_arguments as add_rules_arguments

    p = sub.add_parser(
        "rules", help="list the finding rules, or look a global name up", formatter_class=_HELP
    )
    add_rules_arguments(p)

    for name, help_text in (
        ("corpus", "generate the labelled training corpus"),
        ("train", "fit the classifier and export it to ONNX"),
        ("eval", "precision/recall/F1 per family on a labelled corpus"),
        ("index", "build an ecosystem index from package sources (see fastscan index -h)"),
    ):
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of the command")

    sub.add_parser("version", help="print versions and the active implementation")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .isolation import harden

    harden()  # before any lazy import: nothing from the current directory (see isolation)
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    finally:
        if argv is None:  # the process's own entry point: it exits next
            # Objects frozen now are skipped by the collections of interpreter finalization
            # (~30 ms of a one-file scan's ~0.3 s); atexit handlers, flushes and module
            # teardown still run.
            gc.freeze()


def _run(argv: list[str]) -> int:
    try:
        if argv and argv[0] in _PASSTHROUGH:  # `corpus --help` reaches the corpus parser
            return int(_COMMANDS[argv[0]](argparse.Namespace(rest=argv[1:])))
        args = _build_parser().parse_args(argv)
        return int(_COMMANDS[args.command](args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exit_code({}, stopped_by="SIGINT")
    except BrokenPipeError:
        # The reader left (`| head`): no traceback, and no second error when Python flushes
        # stdout at exit; the code says so, as a process killed by SIGPIPE would.
        with contextlib.suppress(OSError, ValueError):  # e.g. stdout is not a real file
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exit_code({}, stopped_by="SIGPIPE")
    except (OSError, ValueError, RuntimeError) as exc:  # BulkError is a RuntimeError
        print(f"fastscan: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ImportError as exc:
        from .sources.stores import MissingExtra

        if not isinstance(exc, MissingExtra):
            raise
        print(f"fastscan: error: {exc}", file=sys.stderr)  # says which extra to install
        return EXIT_ERROR


def _cmd_scan(args: argparse.Namespace) -> int:
    from .scancmd import run_scan

    counted = run_scan(args, _scanner_options(args))  # baseline-accepted files do not count
    return exit_code(
        outcomes([r.verdict for r in counted], [r.status for r in counted]), args.fail_on
    )


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import render
    from .scan import Scanner
    from .sources.local import local_ref

    ref = local_ref(args.file)
    if ref.error:  # nothing to explain: one line, exit 2 (an error row in scan and bulk)
        print(f"fastscan: error: {args.file}: {ref.error}", file=sys.stderr)
        return EXIT_ERROR
    scanner = Scanner(**_scanner_options(args))
    analysis, result = scanner.explain_source(args.file, args.file, keep_data=64 << 20, rel=ref.rel)
    data = analysis.data if analysis is not None else {}
    for line in render(analysis, result, data, scanner.rules, max_ops=args.max_ops):
        print(line)
    return exit_code(outcomes([result.verdict], [result.status]), args.fail_on)


def _cmd_bulk(args: argparse.Namespace) -> int:
    from .bulkoptions import BulkOptions

    scanner_options = _scanner_options(args)
    if args.hash:
        scanner_options["hash_files"] = True
    options = BulkOptions(
        root=args.root,
        out=sys.stdout if args.out == "-" else args.out,
        fmt=args.format,
        engine=args.engine,
        scheduler=args.scheduler,
        workers=args.workers,
        chunk_size=args.chunk_size,
        include=args.include,
        exclude=args.exclude,
        with_safetensors=args.with_safetensors,
        follow_symlinks=args.follow_symlinks,
        since=args.since,
        resume=args.resume,
        timeout=args.timeout,
        memory_mb=args.memory_mb,
        features_out=args.features,
        fail_on=args.fail_on,
        strict_errors=args.strict_errors,
        scanner_options=scanner_options,
    )
    if args.engine == "local" and (args.workers is None or args.workers > 0):
        from . import forkserver

        forkserver.start()  # the workers' imports now overlap the ones below
    from .bulk import run

    summary = run(options, progress=False if args.no_progress else None)
    print(summary.render(), file=sys.stderr)
    return int(summary.exit_code)


def _cmd_report(args: argparse.Namespace) -> int:
    from .reportcmd import report

    text, code = report(
        args.parquet,
        html_path=args.html,
        top=args.top,
        fmt=args.format,
        fail_on=args.fail_on,
        strict_errors=args.strict_errors,
    )
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return code


def _training(module: str, args: argparse.Namespace) -> int:
    """Run `fastscan.train.<module>.main(args.rest)`; its imports need the `train` extra."""
    import importlib

    try:
        entry = importlib.import_module(f"fastscan.train.{module}").main
    except ImportError as exc:
        from .sources.stores import MissingExtra

        hint = f"this command needs the train extra: pip install 'fastscan[train]' ({exc})"
        raise MissingExtra(hint) from exc
    return int(entry(args.rest))


def _cmd_rules(args: argparse.Namespace) -> int:
    from .rulescmd import run_rules

    return run_rules(args)


def _cmd_corpus(args: argparse.Namespace) -> int:
    return _training("corpus", args)


def _cmd_train(args: argparse.Namespace) -> int:
    return _training("fit", args)


def _cmd_eval(args: argparse.Namespace) -> int:
    return _training("evaluate", args)


def _cmd_index(args: argparse.Namespace) -> int:
    from .index.cli import main as index_main

    return index_main(list(args.rest))


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
    "rules": _cmd_rules,
    "corpus": _cmd_corpus,
    "train": _cmd_train,
    "eval": _cmd_eval,
    "index": _cmd_index,
    "version": _cmd_version,
}


if __name__ == "__main__":
    raise SystemExit(main())
