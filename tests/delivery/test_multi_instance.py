"""Two Herald instances on one PostgreSQL database share the outbox: each item is delivered once,
and each conversation stays in order (heads are claimed with FOR UPDATE SKIP LOCKED and a lease)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from herald.config import DeliveryConfig
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.delivery.outbox import Outbox
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem
from tests.delivery.harness import stack


async def test_two_instances_deliver_each_item_once_in_order(db: Database) -> None:
    if not db.is_postgresql:
        pytest.skip("several instances share a database only on PostgreSQL (SQLite is single-host)")
    async with stack(db) as herald:
        await herald.outbox.stop()
        users = [f"mi-{i}" for i in range(8)]
        triggers = {}
        for user in users:
            triggers[user] = [(await herald.user_says(user)).message_id for _ in range(3)]
        a = Outbox(db, herald.platform, herald.clock, config=DeliveryConfig(instance="a"))
        b = Outbox(db, herald.platform, herald.clock, config=DeliveryConfig(instance="b"))
        await a.start()
        await b.start()
        try:
            receipts = [
                await (a if n % 2 else b).enqueue(Target(Scene.C2C, user), [Text(f"{user} {n}")], origin="t")
                for n in range(12)
                for user in users
            ]
            for _ in range(40):
                if all(r.done for r in receipts):
                    break
                await herald.advance(5)  # the other instance's poll picks up what it did not enqueue
            results = [await r for r in receipts]
        finally:
            await a.stop()
            await b.stop()

        assert all(r.delivered for r in results)
        async with db.session() as session:
            workers = set(await session.scalars(select(OutboxItem.claimed_by).distinct()))
        assert workers == {"a", "b"}  # both instances really delivered
        for user in users:
            delivered = [e["content"] for e in await herald.control.delivered("c2c", user)]
            assert delivered == [f"{user} {n}" for n in range(12)]
