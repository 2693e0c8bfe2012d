"""Presence: the live Herald processes on one PostgreSQL database, counted by each of them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from herald.store.db import Database
from herald.store.leases import Leases
from herald.store.presence import Presence

WAIT_S = 10.0  # a safety limit so a broken count fails instead of hanging; never a timing assertion


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_processes_count_each_other_and_stop_counting_the_gone(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several processes share a database only on PostgreSQL (SQLite is one process)")
    handles = [Database(db_url) for _ in range(3)]
    await handles[0].migrate()
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    a, b, c = (
        Presence(Leases(handle, name), seen[name].append, ttl_s=1.0, every_s=0.05)
        for handle, name in zip(handles, seen, strict=True)
    )
    try:
        await a.start()
        assert seen["a"] == [1]
        await b.start()
        assert seen["b"] == [2]  # counted before it sends anything
        await _until(lambda: a.count == 2)

        await c.start()
        await _until(lambda: a.count == b.count == c.count == 3)

        # A process that stops gives its place back at once.
        await b.stop()
        await _until(lambda: a.count == c.count == 2)

        # One that dies (stops renewing) is no longer counted once its lease expires.
        assert c._task is not None
        c._task.cancel()
        await _until(lambda: a.count == 1)
        assert seen["a"][-1] == 1
    finally:
        for presence in (a, b):
            await presence.stop()
        for handle in handles:
            await handle.dispose()
