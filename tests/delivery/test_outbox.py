"""Outbox semantics against the sim: rows before the network, idempotency, per-conversation FIFO
with head-of-line retry, other conversations unaffected (invariant 5), backoff on the Clock (7)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from herald.core.platform import Platform, SendRequest, Sent
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.delivery.outbox import Outbox
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem
from tests.delivery.harness import stack

A = Target(Scene.C2C, "conv-a")
B = Target(Scene.C2C, "conv-b")


async def _row(db: Database, item_id: str) -> OutboxItem:
    async with db.session() as session:
        row = await session.scalar(select(OutboxItem).where(OutboxItem.id == item_id))
    assert row is not None
    return row


async def test_the_row_is_committed_before_enqueue_returns_and_idempotency_holds(db: Database) -> None:
    async with stack(db) as herald:
        idle = Outbox(db, herald.platform, herald.clock)  # not started: nothing is sent
        first = await idle.enqueue(A, [Text("once")], origin="job:7", idempotency_key="job:7:2026-07-01")
        again = await idle.enqueue(A, [Text("once")], origin="job:7", idempotency_key="job:7:2026-07-01")
        assert first.item_id == again.item_id
        other = Database(str(db.url.render_as_string(hide_password=False)))
        try:
            row = await _row(other, first.item_id)  # seen from a separate connection pool
        finally:
            await other.dispose()
        assert (row.state, row.origin, row.conversation) == ("pending", "job:7", A.key)
        assert await herald.control.outbound("c2c", "conv-a") == []


async def test_a_retrying_head_blocks_only_its_own_conversation(db: Database) -> None:
    async with stack(db) as herald:
        for target in (A, B):
            await herald.user_says(target.id)
        await herald.control.fail_next(1, 500, 50055001)
        a1 = await herald.outbox.enqueue(A, [Text("a1")], origin="t")
        for _ in range(200):  # until a1's first attempt has failed (real I/O, no timing assertion)
            if (await _row(db, a1.item_id)).code == 50055001:
                break
            await asyncio.sleep(0.01)
        a2 = await herald.outbox.enqueue(A, [Text("a2")], origin="t")
        b1 = await herald.outbox.enqueue(B, [Text("b1")], origin="t")

        assert (await b1).delivered  # B is not held up by A's retry
        assert not a1.done and not a2.done  # A's head waits for the clock, and a2 waits behind it
        assert await herald.control.delivered("c2c", "conv-a") == []

        await herald.advance(2)
        assert (await a1).delivered and (await a2).delivered
        assert [e["content"] for e in await herald.control.delivered("c2c", "conv-a")] == ["a1", "a2"]


async def test_a_pending_item_survives_a_restart(db: Database) -> None:
    async with stack(db) as herald:
        message = await herald.user_says("conv-a")
        idle = Outbox(db, herald.platform, herald.clock)
        receipt = await idle.enqueue(A, [Text("later")], origin="t", trigger_id=message.message_id)
        await herald.outbox.stop()
        fresh = Outbox(db, herald.platform, herald.clock)
        await fresh.start()
        try:
            result = await (await fresh.receipt(receipt.item_id))
        finally:
            await fresh.stop()
        assert result.delivered
        assert [e["content"] for e in await herald.control.delivered("c2c", "conv-a")] == ["later"]


class HoldsFirstSend:
    """The real adapter, with its first send held until the test lets it go."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self.sending = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._platform, name)

    async def send(self, request: SendRequest) -> Sent:
        if not self.sending.is_set():
            self.sending.set()
            await self.go.wait()
        return await self._platform.send(request)


async def test_an_item_enqueued_while_the_head_is_sent_follows_it_without_waiting_for_the_poll(
    db: Database,
) -> None:
    async with stack(db) as herald:
        await herald.user_says("conv-a")
        await herald.outbox.stop()
        held = HoldsFirstSend(herald.platform)
        outbox = Outbox(db, held, herald.clock)  # type: ignore[arg-type]
        await outbox.start()
        try:
            first = await outbox.enqueue(A, [Text("a1")], origin="t")
            await held.sending.wait()
            second = await outbox.enqueue(A, [Text("a2")], origin="t")
            held.go.set()
            # The clock never moves, so the poll never runs: only the worker can send a2.
            results = await asyncio.wait_for(asyncio.gather(first, second), 30)
        finally:
            await outbox.stop()
        assert all(result.delivered for result in results)
        assert [e["content"] for e in await herald.control.delivered("c2c", "conv-a")] == ["a1", "a2"]


async def test_items_waiting_at_start_all_go_without_waiting_for_the_poll(db: Database) -> None:
    async with stack(db) as herald:
        await herald.user_says("conv-a")
        await herald.outbox.stop()
        idle = Outbox(db, herald.platform, herald.clock)  # not started: the items wait
        receipts = [await idle.enqueue(A, [Text(f"a{i}")], origin="t") for i in range(1, 4)]
        fresh = Outbox(db, herald.platform, herald.clock)
        await fresh.start()
        try:
            # The clock never moves: the start's scan finds the conversation once, and its worker
            # must see that more items wait behind each head.
            waiting = [await fresh.receipt(r.item_id) for r in receipts]
            results = await asyncio.wait_for(asyncio.gather(*waiting), 30)
        finally:
            await fresh.stop()
        assert all(result.delivered for result in results)
        assert [e["content"] for e in await herald.control.delivered("c2c", "conv-a")] == ["a1", "a2", "a3"]
