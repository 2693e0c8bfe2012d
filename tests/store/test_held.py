"""Held connections (the store's write path): a failed transaction is rolled back (its connection kept,
or replaced if it is broken), so other writers waiting for one carry on."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from herald.store import Database
from herald.store.held import HeldConnections


async def test_a_failed_transaction_rolls_back_and_waiters_continue(db: Database) -> None:
    writes = HeldConnections(db.engine, 1)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def failing() -> None:
        async with writes.transaction() as conn:
            await conn.execute(text("UPDATE agent_jobs SET runs = runs + 1"))
            entered.set()
            await release.wait()
            raise RuntimeError("boom")

    async def waiting() -> int:
        async with writes.transaction() as conn:
            result = await conn.execute(text("SELECT count(*) FROM agent_jobs"))
            return int(result.scalar_one())

    first = asyncio.create_task(failing())
    await entered.wait()
    second = asyncio.create_task(waiting())
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(RuntimeError):
        await first
    async with asyncio.timeout(10):
        assert await second == 0
    async with writes.transaction() as conn:
        await conn.execute(text("SELECT 1"))
    await writes.close()
