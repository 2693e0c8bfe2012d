"""Acceptance 4 and invariant 5: SIGKILL the delivering process at random points, restart it, and
every message still arrives exactly once, in order per conversation (the sim's transcript proves it)."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.delivery.outbox import Outbox
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem
from tests.delivery.harness import stack


async def _delivered_rows(db: Database) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(OutboxItem).where(OutboxItem.state == "delivered")
        )
    return int(count or 0)


WORKER = Path(__file__).with_name("crash_worker.py")


async def _run_worker(args: list[str], kill_after: float | None) -> int | None:
    process = await asyncio.create_subprocess_exec(sys.executable, str(WORKER), *args)
    if kill_after is None:
        async with asyncio.timeout(300):
            return await process.wait()
    try:
        async with asyncio.timeout(kill_after):
            return await process.wait()  # finished before the kill
    except TimeoutError:
        process.send_signal(signal.SIGKILL)
        await process.wait()
        return None


@pytest.mark.slow
@pytest.mark.parametrize(("conversations", "per_conversation", "kills"), [(50, 20, 10)])
async def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    db: Database, db_url: str, conversations: int, per_conversation: int, kills: int
) -> None:
    await _crash_run(db, db_url, conversations, per_conversation, kills, seed=4)


async def test_sigkill_small(db: Database, db_url: str) -> None:
    # A slow send rate (20/s) so that a kill lands while items are still pending.
    await _crash_run(db, db_url, conversations=6, per_conversation=8, kills=3, seed=7, qps=20)


async def _crash_run(
    db: Database,
    db_url: str,
    conversations: int,
    per_conversation: int,
    kills: int,
    seed: int,
    qps: int = 100,
) -> None:
    rng = random.Random(seed)
    users = [f"crash-{i:03d}" for i in range(conversations)]
    async with stack(db) as herald:
        # Enough user messages that every send can be passive: a resend after a crash then reuses
        # its reserved (msg_id, msg_seq) and the platform's dedup answers 40054005.
        for user in users:
            for _ in range((per_conversation + 3) // 4):
                await herald.user_says(user)
        await herald.outbox.stop()
        queue = Outbox(db, herald.platform, herald.clock)  # never started: enqueue only
        for n in range(per_conversation):
            for user in users:
                await queue.enqueue(Target(Scene.C2C, user), [Text(f"{user} #{n}")], origin="test")

        s = herald.sim.state.settings
        args = [db_url, herald.sim.base_url, herald.sim.token_url, s.app_id, s.secret, str(qps)]
        total = conversations * per_conversation
        progress = []
        for _ in range(kills):
            await _run_worker(args, kill_after=rng.uniform(0.8, 2.0))
            progress.append(await _delivered_rows(db))
        # The kills really landed mid-delivery (otherwise this test would prove nothing).
        assert any(0 < done < total for done in progress), progress
        assert await _run_worker(args, kill_after=None) == 0

        for user in users:
            delivered = [e["content"] for e in await herald.control.delivered("c2c", user)]
            assert delivered == [f"{user} #{n}" for n in range(per_conversation)], user
        # Resends after a crash were answered "already delivered", never with a dead anchor.
        codes = {r["code"] for r in await herald.control.requests()} - {None, 0}
        assert codes <= {40054005}, codes
