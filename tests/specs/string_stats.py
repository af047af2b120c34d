"""The Python specification of `fastscan._features.string_stats`: the string block of a feature
row as the pure-Python/numpy implementation that the shipped model was trained on computed it.

tests/features/test_features_native_equals_spec.py holds the native code to this bit for bit.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from fastscan.features import STRING_PATTERNS

# (len_sum, len_max, nonprintable, n_entropy, entropy_sum, entropy_max, n_high_entropy,
#  match count per STRING_PATTERNS entry)
StringStats = tuple[int, int, int, int, float, float, int, tuple[int, ...]]

PATTERNS = tuple((re.compile(p), needles) for _, p, needles in STRING_PATTERNS)
# control characters and U+FFFD (undecodable bytes)
NONPRINTABLE_CHARS = [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0xFFFD]
_DROP_NONPRINTABLE = dict.fromkeys(NONPRINTABLE_CHARS)
# the native module's ENTROPY_CONSTANTS, in its order
ENTROPY_MIN_LEN = 8
SMALL_ENTROPY = 6  # up to this many strings, entropy is computed without numpy
HIGH_ENTROPY = 4.5  # bits per byte; English text is ~4, base64 ~6


def string_stats(strings: list[str]) -> StringStats:
    """What `_features.string_stats(strings, np.log2)` returns.

    Entropy is summed like the native code (and the model's training data): for up to
    SMALL_ENTROPY strings with math.log2 in first-seen byte order, above that with numpy.
    """
    lengths = [len(s) for s in strings]
    text = "\n".join(strings)
    nonprintable = len(text) - len(text.translate(_DROP_NONPRINTABLE))
    entropies = _entropies([s for s in strings if len(s) >= ENTROPY_MIN_LEN])
    patterns = tuple(
        len(pattern.findall(text)) if not needles or any(n in text for n in needles) else 0
        for pattern, needles in PATTERNS
    )
    return (
        sum(lengths), max(lengths, default=0), nonprintable, len(entropies), sum(entropies, 0.0),
        max(entropies, default=0.0), sum(1 for e in entropies if e > HIGH_ENTROPY), patterns,
    )  # fmt: skip


def _entropies(strings: list[str]) -> list[float]:
    """Shannon entropy (bits per UTF-8 byte) of each string."""
    if len(strings) <= SMALL_ENTROPY:
        return [_entropy(s.encode("utf-8", "surrogatepass")) for s in strings]
    encoded = [s.encode("utf-8", "surrogatepass") for s in strings]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.int64)
    segment = np.repeat(np.arange(len(encoded)), lengths)
    counts = np.bincount(segment * 256 + data, minlength=len(encoded) * 256)
    p = counts.reshape(len(encoded), 256) / lengths[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return [float(e) for e in terms.sum(axis=1)]


def _entropy(data: bytes) -> float:
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())
