"""Fuzz targets: one function per stage, each taking raw bytes and checking invariants.

Importable without atheris, so `tests/security/test_fuzz_regressions.py` replays crash
reproducers through exactly the code the fuzzer ran. A target fails only by raising: any
exception escaping a stage (the stages promise never to raise on file content) or a broken
invariant (AssertionError).
"""

from __future__ import annotations

from collections.abc import Callable

from fastscan.containers import ContainerLimits, open_container
from fastscan.facts import STATUS_EMPTY, STATUS_NOT_PICKLE, ScanLimits
from fastscan.scan import Scanner
from fastscan.tokenizer import list_opcodes, starts_like_pickle, tokenize
from fastscan.verdict import STATUSES, VERDICTS

# Small budgets keep one execution in the millisecond range whatever the input declares.
FUZZ_SCAN_LIMITS = ScanLimits(max_opcodes=200_000, max_stack=50_000, max_memo=50_000)
FUZZ_CONTAINER_LIMITS = ContainerLimits(
    max_total_bytes=16 << 20, max_member_bytes=8 << 20, ratio_floor=1 << 20, max_members=2000
)
_TOKENIZER_STATUSES = {"ok", "truncated", "bad_opcode", "budget", STATUS_EMPTY, STATUS_NOT_PICKLE}
_CONTAINER_STATUSES = {"complete", "partial", "unsupported", "encrypted", "error"}


def tokenizer_target(data: bytes) -> None:
    """tokenize / probe / list_opcodes never raise and agree on basic facts."""
    facts = tokenize(data, FUZZ_SCAN_LIMITS)
    assert facts.status in _TOKENIZER_STATUSES, facts.status
    assert facts.n_pickles == len(facts.pickle_offsets) == len(facts.protocols)
    assert all(0 <= off < max(len(data), 1) for off in facts.pickle_offsets)
    assert all(0 <= g.offset < len(data) for g in facts.globals)
    assert sum(facts.opcode_counts) <= facts.n_opcodes + 1
    assert isinstance(starts_like_pickle(data), bool)
    ops, end, status = list_opcodes(data, 0, 100_000)
    assert status in ("ok", "truncated", "bad_opcode", "budget"), status
    assert 0 <= end <= len(data)
    last = -1
    for op in ops:
        assert last < op.offset < len(data) and op.arg_offset + op.arg_length <= len(data)
        last = op.offset


def container_target(data: bytes) -> None:
    """open_container over bytes never raises; its result is well-formed and views are valid."""
    with open_container(data, limits=FUZZ_CONTAINER_LIMITS) as container:
        assert container.status in _CONTAINER_STATUSES, container.status
        assert container.format
        for stream in container.streams:
            assert len(memoryview(stream.data)) >= 0
            tokenize(stream.data, FUZZ_SCAN_LIMITS)


_SCANNER: Scanner | None = None


def scan_target(data: bytes) -> None:
    """The whole pipeline without the model (containers, tokenizer, rules, verdict)."""
    global _SCANNER
    if _SCANNER is None:
        _SCANNER = Scanner(
            model=None, limits=FUZZ_SCAN_LIMITS, container_limits=FUZZ_CONTAINER_LIMITS
        )
    result = _SCANNER.scan_bytes(data, "fuzz.bin")
    assert result.verdict in VERDICTS and result.status in STATUSES
    assert not result.error.startswith("internal error"), result.error


TARGETS: dict[str, Callable[[bytes], None]] = {
    "tokenizer": tokenizer_target,
    "containers": container_target,
    "scan": scan_target,
}


def warm_up(target: Callable[[bytes], None]) -> None:
    """Run lazy imports (py7zr, lz4, rules TOML) once before fuzzing, outside the timings."""
    for data in (b"\x80\x04K\x01.", b"PK\x05\x06" + b"\0" * 18, b"7z\xbc\xaf\x27\x1c" + b"\0" * 26):
        target(data)
