"""The scheduler loop: sleep on the `Clock` until the next slot, fire what is due, record it.

Firing is handed to a callback (the app wakes the agent or sends a job's text through the
outbox). The callback must be idempotent per (job, slot): a crash between firing and recording
fires the same slot again after restart, and the turn's source id / the outbox idempotency key
`job:<id>:<slot>` turns that into a no-op.

Several instances on one PostgreSQL database fire from one leader at a time (`Leadership`): a
lease the leader renews every `poll_s` and that expires `ttl_s` after its last renewal, so when the
leader dies another instance takes over within `ttl_s + poll_s`. The slot's key is the durable
per-slot claim: the turn's unique source id or the outbox item's unique idempotency key, written
before the slot is recorded as fired, so a slot fired by a leader that lost its lease midway (or
died before recording it) fires again as a no-op, never twice; the slots that came due while no
instance led each fire once, late, when the next leader's first pass finds them due (`JobStore.fired`
steps slot by slot while a slot is at most `catch_up_s` late; older ones coalesce).
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
from herald.store.leases import Leases

log = logging.getLogger(__name__)

RETRY_S = 60.0  # after a pass that failed

FireHandler = Callable[[Job, datetime], Awaitable[None]]


def slot_key(job: Job, slot: datetime) -> str:
    return f"job:{job.id}:{slot.strftime('%Y%m%dT%H%M%S')}"


LEADER_LEASE = "scheduler"


class Leadership:
    """Which instance fires jobs. The lease is taken (or renewed) every `poll_s` of real time:
    it is judged on the database's clock, not on the scheduler's `Clock`."""

    def __init__(self, leases: Leases, *, ttl_s: float = 3.0, poll_s: float | None = None) -> None:
        self.leases = leases
        self.ttl_s = ttl_s
        # Renewed well before it expires, so one late renewal does not hand the lead over.
        self.poll_s = poll_s if poll_s is not None else ttl_s / 3
        self.leading = False
        self.gained = 0  # times this instance became the leader

    async def claim(self) -> bool:
        try:
            leading = await self.leases.take(LEADER_LEASE, self.ttl_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduler lease: taking it failed; not leading until it succeeds")
            leading = False
        if leading != self.leading:
            if leading:
                self.gained += 1
                log.info("scheduler: this instance (%s) leads: it fires the jobs", self.leases.holder)
            else:
                log.warning("scheduler: this instance (%s) no longer leads", self.leases.holder)
        self.leading = leading
        return leading

    async def resign(self) -> None:
        if self.leading:
            self.leading = False
            await self.leases.release(LEADER_LEASE)


class Scheduler:
    def __init__(
        self,
        jobs: JobStore,
        clock: Clock,
        on_fire: FireHandler,
        *,
        max_sleep_s: float = 300.0,
        leadership: Leadership | None = None,
        lateness: Callable[[float], None] | None = None,
    ) -> None:
        """`leadership`: fire only while this instance leads (several instances on one database);
        without it, this instance fires everything (one instance). `lateness` hears, for each
        firing, the seconds from its slot to its firing."""
        self.jobs = jobs
        self.lateness = lateness
        self.clock = clock
        self.on_fire = on_fire
        self.max_sleep_s = max_sleep_s
        self.leadership = leadership
        self.fired = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lead_task: asyncio.Task[None] | None = None
        jobs.on_change = self.poke

    async def start(self) -> None:
        if self._task is None:
            if self.leadership is not None:
                # Taken once before the loop starts, so a lone instance fires from its first pass.
                await self.leadership.claim()
                self._lead_task = asyncio.create_task(self._lead(self.leadership), name="scheduler-lease")
            self._task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        tasks = [task for task in (self._lead_task, self._task) if task is not None]
        self._task = self._lead_task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.leadership is not None:
            # Handed over now rather than when the lease expires.
            with contextlib.suppress(Exception):
                await self.leadership.resign()

    @property
    def leading(self) -> bool:
        return self.leadership is None or self.leadership.leading

    async def _lead(self, leadership: Leadership) -> None:
        """Hold (or wait for) the lead; while leading, look at the jobs every `poll_s`, since
        another instance may have created or changed one (its change wakes only its own loop)."""
        while True:
            await asyncio.sleep(leadership.poll_s)
            if await leadership.claim():
                self.poke()

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
                if not self.leading:
                    return count  # the new leader fires the rest
                assert job.next_run_at is not None
                slot = job.next_run_at
                if self.lateness is not None:
                    self.lateness((self.clock.now() - slot).total_seconds())
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
            if not self.leading:
                self._idle.set()
                await self._wake.wait()
                self._idle.clear()
                continue
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
