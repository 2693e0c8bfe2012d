"""Herald's own side of the platform's rate limits: a sliding window per limit, counted as the
server counts, and what a restarted process must assume its previous run sent."""

from __future__ import annotations

import asyncio
import collections
import os
import time
from pathlib import Path

from herald.core.clock import Clock

# When a request of this process last had its answer (`time.monotonic()`), over every window of
# every adapter: a Herald restarted inside the same process must still count its previous run's.
_last_answer: float | None = None
_IMPORTED = time.monotonic()


def _process_started() -> float:
    """When this process started, on `time.monotonic()`'s scale. Read from /proc on Linux;
    elsewhere this module's import, which is later, so a window primed from it waits longer."""
    try:
        stat = Path("/proc/self/stat").read_text(encoding="ascii")
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, `starttime`, in ticks since boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return _IMPORTED
    return min(time.monotonic() - max(age, 0.0), _IMPORTED)


def previous_run_ended() -> float:
    """The latest moment (`time.monotonic()`) a previous run of Herald can have had a request
    counted: a run in another process sent nothing after this process started; one in this
    process nothing after its last answer."""
    started = _process_started()
    return started if _last_answer is None else max(started, _last_answer)


class SlidingWindow:
    """At most `limit` requests in any `window` seconds, as the server counts them.

    A request is counted from when it is sent until `window` after its answer arrived, which is
    never earlier than when the server counted it, so latency cannot make us exceed the limit.
    """

    def __init__(
        self, clock: Clock, limit: int, window: float, *, primed: bool = False, since: float | None = None
    ) -> None:
        self._clock = clock
        self._whole = limit
        self._limit = limit
        self._window = window
        self._done: collections.deque[float] = collections.deque()
        # A process that just (re)started cannot know what its previous run sent in the last
        # window, and the platform still counts it: assume the window is full until one window
        # after `since` (on `clock`: when the previous run can last have sent; default now).
        # One deadline, not `limit` entries: a limit of 1e9 must not cost 8 GB.
        start = clock.monotonic() if since is None else since
        self._full_until = start + window if primed and start + window > clock.monotonic() else None
        self._in_flight = 0
        self._lock = asyncio.Lock()

    def share(self, parts: int) -> None:
        """Count this window as one of `parts` equal shares of its limit: `parts` processes that
        each keep to their share keep to the whole together. Rounded down, so their sum never
        exceeds the limit, but never below one request per window."""
        self._limit = max(1, self._whole // max(parts, 1))

    @property
    def limit(self) -> int:
        return self._limit

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock.monotonic()
                if self._full_until is not None:
                    if now < self._full_until:
                        await self._clock.sleep(self._full_until - now + 1e-4)
                        continue
                    self._full_until = None
                while self._done and self._done[0] <= now - self._window:
                    self._done.popleft()
                if self._in_flight + len(self._done) < self._limit:
                    self._in_flight += 1
                    return
                if self._done:
                    await self._clock.sleep(self._done[0] + self._window - now + 1e-4)
                else:
                    await self._clock.sleep(self._window / max(self._limit, 1))

    def release(self) -> None:
        global _last_answer
        self._in_flight -= 1
        self._done.append(self._clock.monotonic())
        _last_answer = time.monotonic()
