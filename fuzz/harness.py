"""One atheris (libFuzzer) harness; pick the stage with the first argument.

    python fuzz/harness.py tokenizer|containers|scan [libFuzzer flags] [CORPUS_DIR ...]

fastscan's Python modules (containers, rules, verdict, the tokenizer wrapper) are imported under
`atheris.instrument_imports`, so coverage guides the mutations there. The native walker is a
plain C++ extension (no clang here for -fsanitize=fuzzer-no-link); its branches are reached
through the Python-level feedback and checked by the sanitizer build (`make sanitize`).
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["fastscan", "targets"]):
    import targets


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        raise SystemExit(f"usage: harness.py {{{'|'.join(targets.TARGETS)}}} [libFuzzer args]")
    target = targets.TARGETS[sys.argv[1]]
    targets.warm_up(target)

    def test_one_input(data: bytes) -> None:
        target(data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
