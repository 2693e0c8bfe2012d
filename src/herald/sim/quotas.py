"""The periods the platform's quotas count in: calendar days and months in Beijing time. The
counts themselves are `stores.quotas.Quotas` (`state.quotas`)."""

from __future__ import annotations

from datetime import datetime

from herald.sim.clock import BEIJING


def day_key(at: float) -> str:
    """Calendar day in Beijing time: platform daily quotas reset at local midnight."""
    return datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m-%d")


def month_key(at: float) -> str:
    return datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m")
