# Stub for the compiled native/_features.pyx (feature counting and the rules' string pre-filter).
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

ENTROPY_CONSTANTS: tuple[
    int, int, float
]  # features: _ENTROPY_MIN_LEN, _SMALL_ENTROPY, _HIGH_ENTROPY
PATTERN_SOURCES: tuple[str, ...]
FOLDS_TO_ASCII_LETTER: tuple[tuple[int, str], ...]

# (len_sum, len_max, nonprintable, n_entropy, entropy_sum, entropy_max, n_high_entropy,
#  pattern_counts)
def string_stats(strings: list[str], log2_array: Callable[..., Any]) -> tuple[Any, ...]: ...
def pattern_counts(text: str) -> tuple[int, ...]: ...
def folded_code_point(c: int) -> int: ...
def contains_folded(strings: Iterable[str], needles: tuple[str, ...]) -> int: ...
def opcode_groups(
    opcode_counts: list[tuple[int, ...]],
    group_of: Any,  # a contiguous int32 array of 256 entries
    row: list[Any],
    counts_at: int,
    fractions_at: int,
    n_groups: int,
) -> None: ...
def float32_row(row: list[Any], finite_max: float) -> np.ndarray: ...
def call_counts(
    calls: Any,
    classes: list[int],
    failed_at: int,
    call_slot: dict[str, int],
    call_ops: list[int],
    totals: list[int],
) -> None: ...
def global_counts(
    globals_: Any,
    distinct: dict[Any, Any],
    class_slot: dict[Any, int],
    first_sight: Callable[..., Any],
    totals: list[int],
    slot_cache: dict[str, dict[str, int]],
) -> list[int]: ...
