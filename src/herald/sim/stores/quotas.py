"""Counts against rate limits and daily/monthly quotas, on the emulator's clock. Checks and charges
are separate calls: a send is checked against every limit first and charged only once it has
succeeded, so a refused send never uses up a quota (rule 34). Keys name the limit and what it
counts (`sim/quotas.py` builds them)."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class Quotas:
    windows: dict[Hashable, deque[float]] = field(default_factory=dict)  # sliding: charge times
    days: dict[Hashable, int] = field(default_factory=dict)  # per period key: charges
    sets: dict[Hashable, set[str]] = field(default_factory=dict)  # distinct things seen per key

    def in_window(self, key: Hashable, window_s: float, now: float) -> int:
        """How many charges of `key` fall within the last `window_s` seconds."""
        times = self.windows.get(key)
        if not times:
            return 0
        horizon = now - window_s
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)

    def charge_window(self, key: Hashable, now: float) -> None:
        self.windows.setdefault(key, deque()).append(now)

    def count(self, key: Hashable) -> int:
        return self.days.get(key, 0)

    def charge(self, key: Hashable) -> None:
        self.days[key] = self.days.get(key, 0) + 1

    def set_of(self, key: Hashable) -> set[str]:
        """A named set that lives as long as the traffic (e.g. channels a guild was pushed to today)."""
        return self.sets.setdefault(key, set())
