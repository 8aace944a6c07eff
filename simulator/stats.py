"""What shards report back: per-source counts, and the customers and churners they built."""
from __future__ import annotations

from dataclasses import dataclass, field

from simulator.defects import KINDS


@dataclass
class SourceStats:
    rows: int = 0
    """Rows written, duplicates included."""
    clean_rows: int = 0
    """Rows generated before defect injection (``rows - defects['duplicate']``)."""
    bytes: int = 0
    files: int = 0
    defects: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def add(self, other: SourceStats) -> None:
        self.rows += other.rows
        self.clean_rows += other.clean_rows
        self.bytes += other.bytes
        self.files += other.files
        for kind, count in other.defects.items():
            self.defects[kind] += count


@dataclass
class ShardStats:
    sources: dict[str, SourceStats] = field(default_factory=dict)
    customers: int = 0
    active_at_start: int = 0
    """Customers who signed up before the window."""
    churned_in_window: int = 0
    """Of those, how many left during the window."""

    def add(self, other: ShardStats) -> None:
        for name, stats in other.sources.items():
            self.sources.setdefault(name, SourceStats()).add(stats)
        self.customers += other.customers
        self.active_at_start += other.active_at_start
        self.churned_in_window += other.churned_in_window

    @property
    def churn_rate(self) -> float:
        return self.churned_in_window / self.active_at_start if self.active_at_start else 0.0
