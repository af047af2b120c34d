"""Replay corpus files through every fuzz target without atheris (for sanitizer builds).

    python fuzz/replay.py out/fuzz/corpus [more dirs or files]

atheris cannot run on top of a preloaded gcc libasan (its libFuzzer throws through an
uninitialised __cxa_throw interceptor at exit, and coverage is lost), so the sanitizer build
re-executes what the coverage-guided campaign found instead. Exit status 1 on any failure.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets  # after the sys.path insert: fuzz/ is not a package


def main(argv: list[str]) -> int:
    files = sorted(
        f for arg in argv for f in ([Path(arg)] if Path(arg).is_file() else Path(arg).rglob("*"))
        if f.is_file()
    )  # fmt: skip
    failures = 0
    for path in files:
        data = path.read_bytes()
        for name, target in targets.TARGETS.items():
            try:
                target(data)
            except Exception:  # report every failing input, then fail
                failures += 1
                print(f"FAIL {name} {path}\n{traceback.format_exc()}", file=sys.stderr)
    print(f"replayed {len(files)} inputs x {len(targets.TARGETS)} targets: {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
