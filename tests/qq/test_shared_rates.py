"""Two processes of one bot on one PostgreSQL database share the platform's bot-wide send rates:
together they never provoke a rate refusal the platform counts for the whole bot."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from herald.config import DeliveryConfig
from herald.core.clock import SystemClock
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.qq.reply import DeliveryMode
from herald.sim.app import serve
from herald.sim.settings import SimSettings
from herald.store.db import Database
from herald.store.leases import Leases
from herald.store.presence import Presence
from tests.delivery.harness import WAIT_S, Stack

RATE_LIMITED = {50002, 40034100}
SENDS = 15  # per process: proactive private messages, each to a user of its own


async def test_two_processes_keep_to_the_bot_rate_together(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several processes share a database only on PostgreSQL (SQLite is one process)")
    handles = [Database(db_url), Database(db_url)]
    await handles[0].migrate()
    async with contextlib.AsyncExitStack() as exits:
        # The platform's rates as documented (10 proactive private messages a second per bot);
        # Herald's own windows at their defaults, which are the same.
        sim = await exits.enter_async_context(serve(SimSettings(port=0, rate_limits=True)))
        processes = []
        for name, handle in zip(("p0", "p1"), handles, strict=True):
            stack = Stack(sim, handle, DeliveryConfig(instance=name), rate_limits=True, clock=SystemClock())
            presence = Presence(Leases(handle, name), stack.platform.share_rates, every_s=0.1)
            await presence.start()
            await stack.start(inbound=False)
            exits.push_async_callback(handle.dispose)
            exits.push_async_callback(presence.stop)
            exits.push_async_callback(stack.stop)
            processes.append((stack, presence))
        async with asyncio.timeout(WAIT_S):
            for _, presence in processes:
                while presence.count < 2:  # noqa: ASYNC110 (the first learns of the second at its next count)
                    await asyncio.sleep(0.05)

        receipts = [
            await stack.outbox.enqueue(Target(Scene.C2C, f"{n}-{i}"), [Text(f"push {i}")], origin="job:push")
            for i in range(SENDS)
            for n, (stack, _) in enumerate(processes)
        ]
        results = [await receipt for receipt in receipts]

        assert all(r.delivered and r.sent and r.sent.route == DeliveryMode.PROACTIVE for r in results)
        sends = [r for r in await processes[0][0].control.requests() if r["path"].startswith("/v2/users/")]
        assert len(sends) == 2 * SENDS, "every send was accepted the first time"
        assert not [r for r in sends if r["status"] == 429 or r["code"] in RATE_LIMITED]
