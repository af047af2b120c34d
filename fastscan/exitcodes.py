"""The exit code of every command (scan, explain, bulk on any engine, report), from its rows.

0    no row at or above `--fail-on`, and every file was read
1    a row at or above `--fail-on` (partial and encrypted rows count: the file was opened)
2    a file could not be read (an error row) and nothing was flagged; also usage errors, a root
     that does not exist, a missing extra, a run stopped by SIGTERM or left incomplete
130  stopped by Ctrl-C; 141 the reader of stdout went away (SIGPIPE, as `| head` does)

An error row is suspicious (fail closed) but it says "not scanned", not "found something": it
makes the exit code 2, unless its verdict is malicious (a sink seen before the read failed),
which is a finding. With `strict_errors` an error row makes the code 2 even when others are
flagged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from .verdict import SUSPICIOUS, VERDICTS

EXIT_CLEAN, EXIT_FLAGGED, EXIT_ERROR = 0, 1, 2
_STOPPED = {"SIGINT": 130, "SIGPIPE": 141}  # 128 + signal number, as the shell reports it

# (verdict, status) -> number of rows
Outcomes = Mapping[tuple[str, str], int]


def outcomes(verdicts: Iterable[str], statuses: Iterable[str]) -> Counter[tuple[str, str]]:
    return Counter(zip(verdicts, statuses, strict=True))


def exit_code(
    rows: Outcomes,
    fail_on: str = SUSPICIOUS,
    *,
    strict_errors: bool = False,
    stopped_by: str = "",
) -> int:
    """The one exit-code rule (see the module docstring). `stopped_by` names what ended the run
    early ("SIGINT", "SIGPIPE", "SIGTERM", "incomplete"), "" when it ran to the end."""
    if fail_on not in VERDICTS:
        raise ValueError(f"fail_on must be one of {VERDICTS}")
    if stopped_by:
        return _STOPPED.get(stopped_by, EXIT_ERROR)
    level = VERDICTS.index(fail_on)
    flagged = errors = False
    for (verdict, status), n in rows.items():
        if n <= 0:
            continue
        rank = VERDICTS.index(verdict) if verdict in VERDICTS else len(VERDICTS) - 1
        if status == "error":
            errors = True
            flagged |= verdict == VERDICTS[-1] and rank >= level
        else:
            flagged |= rank >= level
    if errors and (strict_errors or not flagged):
        return EXIT_ERROR
    return EXIT_FLAGGED if flagged else EXIT_CLEAN
