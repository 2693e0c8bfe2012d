"""Which Herald processes are alive on one PostgreSQL database, counted.

Each process holds a lease named after it (`instance:<[delivery] instance>`), renewed every
`every_s`, and counts the live ones as often. A process that stops gives its lease back; one
that dies stops renewing it, and is no longer counted once it expires (`ttl_s`).

What the count is for: limits the platform counts for the whole bot, whichever process sent
(see `SharesRates`), are kept by each process keeping to its share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from herald.store.leases import Leases

log = logging.getLogger(__name__)

PRESENCE_LEASE = "instance:"  # + the instance's name
TTL_S = 10.0
EVERY_S = 2.0


class Presence:
    def __init__(
        self,
        leases: Leases,
        on_count: Callable[[int], None],
        *,
        ttl_s: float = TTL_S,
        every_s: float = EVERY_S,
    ) -> None:
        self.leases = leases
        self.on_count = on_count
        self.ttl_s = ttl_s
        self.every_s = every_s
        self.count = 1
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Be counted, and count the others, before anything is sent; then keep at it."""
        await self._refresh()
        self._task = asyncio.create_task(self._keep(), name="presence")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.leases.release(PRESENCE_LEASE + self.leases.holder)

    async def _refresh(self) -> None:
        await self.leases.take(PRESENCE_LEASE + self.leases.holder, self.ttl_s)
        # This process is live whatever the count read: at least one.
        count = max(1, await self.leases.live(PRESENCE_LEASE))
        if count != self.count:
            log.info("%d Herald processes share this database", count)
        self.count = count
        self.on_count(count)

    async def _keep(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self._refresh()
            except Exception:
                # The last count stands: a database that cannot be reached sends nothing anyway.
                # Said once per outage, not every few seconds.
                if not failing:
                    log.warning(
                        "counting the live Herald processes failed; keeping %d until it works again",
                        self.count,
                        exc_info=True,
                    )
                failing = True
            else:
                if failing:
                    log.info("counting the live Herald processes works again: %d", self.count)
                failing = False
