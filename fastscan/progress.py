"""Progress for long scans: a tqdm bar on a terminal, a quiet heartbeat line in logs.

Only bulk scans use this; the library never prints anything else.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any, Protocol


class Progress(Protocol):
    def update(self, files: int, nbytes: int, flagged: int, errors: int) -> None: ...
    def close(self) -> None: ...


class NoProgress:
    def update(self, files: int, nbytes: int, flagged: int, errors: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Counters:
    def __init__(self, total_files: int, total_bytes: int) -> None:
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.files = 0
        self.bytes = 0
        self.flagged = 0
        self.errors = 0
        self.started = time.monotonic()

    def add(self, files: int, nbytes: int, flagged: int, errors: int) -> None:
        self.files += files
        self.bytes += nbytes
        self.flagged += flagged
        self.errors += errors

    def eta_seconds(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if self.bytes <= 0 or elapsed <= 0 or self.total_bytes <= 0:
            return None
        # Bytes predict the remaining time better than file counts (a few huge checkpoints).
        return max(0.0, (self.total_bytes - self.bytes) / (self.bytes / elapsed))


class BarProgress:
    """tqdm bar counting files, with bytes, flagged and errors in the postfix."""

    def __init__(self, total_files: int, total_bytes: int, stream: IO[str]) -> None:
        from tqdm import tqdm

        self._c = _Counters(total_files, total_bytes)
        self._bar: Any = tqdm(total=total_files, unit="file", file=stream, dynamic_ncols=True)

    def update(self, files: int, nbytes: int, flagged: int, errors: int) -> None:
        c = self._c
        c.add(files, nbytes, flagged, errors)
        elapsed = max(time.monotonic() - c.started, 1e-9)
        self._bar.set_postfix_str(
            f"{_mb(c.bytes)} MB, {_mb(c.bytes / elapsed)} MB/s, "
            f"flagged {c.flagged}, errors {c.errors}",
            refresh=False,
        )
        self._bar.update(files)

    def close(self) -> None:
        self._bar.close()


class LogProgress:
    """One plain line every `interval` seconds: count, MB/s, ETA. Keeps CI logs small."""

    def __init__(
        self, total_files: int, total_bytes: int, stream: IO[str], interval: float = 10.0
    ) -> None:
        self._c = _Counters(total_files, total_bytes)
        self._stream = stream
        self._interval = interval
        self._last = time.monotonic()

    def update(self, files: int, nbytes: int, flagged: int, errors: int) -> None:
        self._c.add(files, nbytes, flagged, errors)
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._stream.write(self.line() + "\n")
            self._stream.flush()

    def line(self) -> str:
        c = self._c
        elapsed = max(time.monotonic() - c.started, 1e-9)
        eta = c.eta_seconds()
        eta_text = "?" if eta is None else f"{eta:.0f}s"
        return (
            f"fastscan: {c.files}/{c.total_files} files, {_mb(c.bytes / elapsed)} MB/s, "
            f"flagged {c.flagged}, errors {c.errors}, ETA {eta_text}"
        )

    def close(self) -> None:
        pass


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f}"


def make_progress(
    setting: bool | Progress | None,
    total_files: int,
    total_bytes: int,
    stream: IO[str] | None = None,
) -> Progress:
    """None = automatic (bar on a TTY, heartbeat lines otherwise), False = off, or your own."""
    if setting is not None and setting is not True and setting is not False:
        return setting  # a caller's own reporter is always used
    if setting is False or os.environ.get("TQDM_DISABLE", "").strip() not in ("", "0"):
        return NoProgress()
    out = stream or sys.stderr
    isatty = getattr(out, "isatty", lambda: False)
    if isatty():
        return BarProgress(total_files, total_bytes, out)
    return LogProgress(total_files, total_bytes, out)
