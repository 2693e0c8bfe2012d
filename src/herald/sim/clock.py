"""The emulator's clock: wall time plus an offset that `/_sim/clock/advance` moves forward.

Every passive window, reply budget and proactive quota reads this clock, so a test can age an
anchor by an hour without waiting. Transport timing (heartbeat timeouts) stays on real time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8))


class SimClock:
    def __init__(self) -> None:
        self._offset = 0.0

    def time(self) -> float:
        """Seconds since the epoch, virtual."""
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset

    def rfc3339(self, at: float | None = None) -> str:
        """A timestamp as the platform writes it: RFC3339 with the +08:00 offset."""
        moment = datetime.fromtimestamp(self.time() if at is None else at, BEIJING)
        return moment.isoformat(timespec="seconds")
