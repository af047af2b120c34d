"""Budgets and the per-file scan state every reader writes into."""

from __future__ import annotations

from dataclasses import dataclass

from . import anomalies as A
from .anomalies import AnomalyKind
from .base import (
    ENCRYPTED,
    PARTIAL,
    Buffer,
    Container,
    ContainerAnomaly,
    PickleStream,
)
from .formats import KIND_PICKLE


@dataclass(frozen=True, slots=True)
class ContainerLimits:
    """Container budgets: hitting one stops that branch, marks the file partial, names it."""

    max_total_bytes: int = 4 << 30  # decompressed bytes over the whole file
    max_member_bytes: int = 1 << 30  # one member (or one decompressed layer) read in full
    max_ratio: int = 1000  # decompressed / compressed, checked once past ratio_floor
    ratio_floor: int = 16 << 20  # small outputs never trip the ratio check
    max_depth: int = 4  # archives inside archives (zip in zip = depth 1)
    max_members: int = 100_000  # archive members listed over the whole file
    probe_bytes: int = 4096  # prefix read from a member to decide whether it may be a pickle
    mmap_threshold: int = 1 << 20  # files at least this big are memory-mapped, not read

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"ContainerLimits.{name} must be an int >= 0, got {value!r}")
        if self.max_ratio < 1:
            raise ValueError("ContainerLimits.max_ratio must be >= 1")
        if self.probe_bytes < 64:
            raise ValueError("ContainerLimits.probe_bytes must be >= 64")


class BudgetHit(Exception):
    """Raised inside a reader to abandon the current branch after recording the budget."""


class ScanState:
    """Mutable state for one open_container call: the result being built plus counters."""

    def __init__(self, container: Container, limits: ContainerLimits) -> None:
        self.container = container
        self.limits = limits
        self.decompressed = 0
        self.encrypted_members = 0
        self.readable_members = 0

    # -- results ---------------------------------------------------------------------------
    def add_stream(self, member: str, offset: int, data: Buffer, kind: str = KIND_PICKLE) -> None:
        self.container.streams.append(PickleStream(member, offset, self.track(data), kind))
        self.container.bytes_read += len(memoryview(data))

    def anomaly(self, kind: AnomalyKind, member: str = "", detail: str = "") -> None:
        self.container.anomalies.append(ContainerAnomaly(kind.code, member, detail))

    def partial(self, message: str) -> None:
        if self.container.status not in (PARTIAL, ENCRYPTED):
            self.container.status = PARTIAL
        if not self.container.message:
            self.container.message = message

    def hit_budget(self, kind: AnomalyKind, member: str, detail: str) -> None:
        """Record a budget_* anomaly (anomalies.BUDGET_*); the first one names Container.budget."""
        if not self.container.budget:
            self.container.budget = kind.budget
        self.anomaly(kind, member, detail)
        self.partial(f"budget {kind.budget} reached at {member or 'file'}: {detail}")

    def track(self, data: Buffer) -> Buffer:
        """Register memoryviews so Container.close can release them before closing the mmap."""
        if isinstance(data, memoryview):
            self.container._resources.append(data)
        return data

    # -- budgets ---------------------------------------------------------------------------
    def decompress_limit(self) -> int:
        """Largest output the next decompression may produce."""
        return max(
            0, min(self.limits.max_member_bytes, self.limits.max_total_bytes - self.decompressed)
        )

    def ratio(self) -> tuple[int, int]:
        return self.limits.max_ratio, self.limits.ratio_floor

    def count_decompressed(self, n: int) -> None:
        self.decompressed += n
        self.container.bytes_read += n

    def count_member(self, member: str) -> None:
        self.container.members_total += 1
        if self.container.members_total > self.limits.max_members:
            self.hit_budget(
                A.BUDGET_MEMBERS, member, f"more than {self.limits.max_members} members"
            )
            raise BudgetHit

    def too_large_budget(self) -> AnomalyKind:
        """Which budget a MemberTooLarge came from."""
        left = self.limits.max_total_bytes - self.decompressed
        return (
            A.BUDGET_TOTAL_BYTES if left < self.limits.max_member_bytes else A.BUDGET_MEMBER_BYTES
        )


def join_member(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name
