"""The generated time window: day indices relative to its first day, and their timestamps."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

US_PER_DAY = 86_400_000_000
US_PER_SECOND = 1_000_000
TRUTH_HORIZON_DAYS = 60
"""The truth records churn dates up to this many days past the window, for label look-ahead."""


@dataclass(frozen=True)
class Window:
    start: date
    days: int

    @property
    def end(self) -> date:
        """Last day of the window (inclusive)."""
        return self.date(self.days - 1)

    @property
    def horizon(self) -> int:
        """Days simulated for the latent churn process: the window plus the truth look-ahead."""
        return self.days + TRUTH_HORIZON_DAYS

    @property
    def epoch_day(self) -> int:
        """The first day as days since 1970-01-01 (the unit of Arrow's date32)."""
        return (self.start - date(1970, 1, 1)).days

    def date(self, day: int | np.integer) -> date:
        return self.start + timedelta(days=int(day))

    def dates(self, day: np.ndarray) -> np.ndarray:
        """Window day indices as date32 values (int32 days since the epoch)."""
        return (self.epoch_day + np.asarray(day)).astype(np.int32)

    def timestamps(self, day: np.ndarray, seconds: np.ndarray | int = 0) -> np.ndarray:
        """Window day indices plus seconds into the day as timestamp[us] values (int64)."""
        days = self.epoch_day + np.asarray(day, dtype=np.int64)
        return days * US_PER_DAY + np.asarray(seconds, np.int64) * US_PER_SECOND

    def day_of(self, timestamps_us: np.ndarray) -> np.ndarray:
        """The window day index of timestamp[us] values."""
        return np.asarray(timestamps_us, np.int64) // US_PER_DAY - self.epoch_day
