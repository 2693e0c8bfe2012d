"""Counting sends against rate limits and daily/monthly quotas, on the emulator's clock.

Checks and charges are separate calls: a send is checked against every limit first and charged
only once it has succeeded, so a refused send never uses up a quota (rule 34).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from datetime import datetime

from herald.sim.clock import BEIJING
from herald.sim.state import SimState


def day_key(at: float) -> str:
    """Calendar day in Beijing time: platform daily quotas reset at local midnight."""
    return datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m-%d")


def month_key(at: float) -> str:
    return datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m")


def in_window(state: SimState, key: Hashable, window_s: float, now: float) -> int:
    """How many charges of `key` fall within the last `window_s` seconds."""
    times = state.counters.get(key)
    if not times:
        return 0
    horizon = now - window_s
    while times and times[0] <= horizon:
        times.popleft()
    return len(times)


def charge_window(state: SimState, key: Hashable, now: float) -> None:
    times = state.counters.get(key)
    if times is None:
        times = state.counters[key] = deque()
    times.append(now)


def count(state: SimState, key: Hashable) -> int:
    return state.day_counts.get(key, 0)


def charge(state: SimState, key: Hashable) -> None:
    state.day_counts[key] = state.day_counts.get(key, 0) + 1
