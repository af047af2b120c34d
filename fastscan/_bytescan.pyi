# Stub for the compiled native/_bytescan.pyx (in-place find and the opcode listing).
from typing import Any

STATUS_NAMES: tuple[str, ...]  # facts.STATUS_* by the walk's status code (native/gen_tables.py)
ANOMALY_NAMES: tuple[str, ...]

def find(data: Any, needle: bytes, start: int = 0) -> int: ...

# (codes, offsets, arg_offsets, arg_lengths, end, status: one of STATUS_NAMES)
def list_opcodes(
    data: Any, start: int = 0, max_ops: int = 10_000_000, collect: bool = True
) -> tuple[bytes, list[int], list[int], list[int], int, str]: ...
