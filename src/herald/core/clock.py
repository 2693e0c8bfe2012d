"""Time, as Herald reads it. Windows, schedules and backoff all go through a `Clock`, so tests
can drive hours of virtual time in seconds."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """A clock that only moves when `advance` is awaited; sleepers wake in deadline order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._t = (start or datetime.now(UTC)).timestamp()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, UTC)

    def monotonic(self) -> float:
        return self._t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._t + seconds, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def advance(self, seconds: float, *, settle: float = 0.0) -> None:
        """Move time forward, waking every sleeper whose deadline falls inside, in order.

        After each wake-up the event loop runs the woken tasks until they block again; pass
        `settle` (real seconds) when woken work does I/O that must finish before time moves on.
        """
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._t + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue
            self._t = max(self._t, deadline)
            future.set_result(None)
            await self._let_run(settle)
        self._t = target
        await self._let_run(settle)

    @staticmethod
    async def _let_run(settle: float) -> None:
        for _ in range(20):
            await asyncio.sleep(0)
        if settle > 0:
            await asyncio.sleep(settle)
