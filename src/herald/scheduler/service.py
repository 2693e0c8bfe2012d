"""The scheduler loop: sleep on the `Clock` until the next slot, fire what is due, record it.

Firing is handed to a callback (the app wakes the agent or sends a job's text through the
outbox). The callback must be idempotent per (job, slot): a crash between firing and recording
fires the same slot again after restart, and the turn's source id / the outbox idempotency key
`job:<id>:<slot>` turns that into a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from herald.core.clock import Clock
from herald.core.jobs import Job
from herald.scheduler.jobs import JobStore

log = logging.getLogger(__name__)

RETRY_S = 60.0  # after a pass that failed

FireHandler = Callable[[Job, datetime], Awaitable[None]]


def slot_key(job: Job, slot: datetime) -> str:
    return f"job:{job.id}:{slot.strftime('%Y%m%dT%H%M%S')}"


class Scheduler:
    def __init__(
        self, jobs: JobStore, clock: Clock, on_fire: FireHandler, *, max_sleep_s: float = 300.0
    ) -> None:
        self.jobs = jobs
        self.clock = clock
        self.on_fire = on_fire
        self.max_sleep_s = max_sleep_s
        self.fired = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        jobs.on_change = self.poke

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def poke(self) -> None:
        """Jobs changed: look again now."""
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Until the loop has fired everything due and sleeps (for tests driving a VirtualClock)."""
        await self._idle.wait()

    async def run_due(self) -> int:
        """Fire every job due now; returns how many fired."""
        count = 0
        stuck: set[str] = set()  # jobs whose firing could not be recorded in this pass
        while True:
            now = self.clock.now()
            due = [job for job in await self.jobs.due(now) if job.id not in stuck]
            if not due:
                if stuck:
                    raise RuntimeError(f"could not record the firing of jobs {', '.join(sorted(stuck))}")
                return count
            for job in due:
                assert job.next_run_at is not None
                slot = job.next_run_at
                try:
                    await self.on_fire(job, slot)
                except Exception:
                    log.exception("job %s (%s) failed to fire for %s", job.id, job.name, slot.isoformat())
                try:
                    await self.jobs.fired(job.id, slot, now)
                except Exception:
                    # One job must not hold up the others; the pass fails after them (and retries).
                    log.exception("job %s (%s): recording its firing failed", job.id, job.name)
                    stuck.add(job.id)
                    continue
                self.fired += 1
                count += 1

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_due()
                following = await self.jobs.next_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler pass failed; retrying in a minute")
                following = self.clock.now() + timedelta(seconds=RETRY_S)
            delay = self.max_sleep_s
            if following is not None:
                delay = min(delay, max(0.0, (following - self.clock.now()).total_seconds()))
            if self._wake.is_set():
                continue
            if delay <= 0:
                continue
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        sleeper = asyncio.create_task(self.clock.sleep(delay))
        waker = asyncio.create_task(self._wake.wait())
        self._idle.set()
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._idle.clear()
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
