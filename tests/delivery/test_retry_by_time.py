"""Retries bounded by time, not attempts: an outage costs delay, not messages; past the bound the
item is dead, the operator gets a WARNING line and the user one notice. An outcome that may have
arrived is never resent by Herald (state `unknown`); the operator may resend it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from herald.config import DeliveryConfig
from herald.core.errors import DeliveryError, ErrorKind
from herald.core.platform import (
    Details,
    EventSink,
    Learned,
    NextSend,
    Reach,
    SendRequest,
    Sent,
    TransportHealth,
)
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.delivery import inspect
from herald.delivery.outbox import Outbox
from herald.delivery.receipts import Receipt
from herald.qq.adapter import QQPlatform
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem
from tests.delivery.harness import Stack, stack

A = Target(Scene.C2C, "conv-a")


async def _until_done(herald: Stack, receipt: Receipt, *, step_s: float, steps: int) -> None:
    """Advance virtual time in steps until the receipt resolves (bounded)."""
    for _ in range(steps):
        if receipt.done:
            return
        await herald.advance(step_s)
    assert receipt.done, "the item neither arrived nor ended within the virtual time given"


async def test_a_150_second_outage_delays_but_loses_nothing(db: Database) -> None:
    async with stack(db) as herald:
        await herald.user_says("conv-a")
        await herald.control.fail_next(1000, 500, 50055001)  # the platform is down
        first = await herald.outbox.enqueue(A, [Text("one")], origin="t")
        second = await herald.outbox.enqueue(A, [Text("two")], origin="t")
        for _ in range(15):  # 150 virtual seconds of outage, with Herald retrying throughout
            await herald.advance(10)
        assert not first.done and not second.done  # before: dead after 8 attempts (≈127 s)
        await herald.control.fault(kind="clear")  # the outage ends
        await _until_done(herald, second, step_s=30, steps=20)
        assert (await first).delivered and (await second).delivered
        delivered = [e["content"] for e in await herald.control.delivered("c2c", "conv-a")]
        assert delivered == ["one", "two"]  # in order, once each


async def test_past_its_time_bound_an_item_is_dead_and_the_user_told_once(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    config = DeliveryConfig(retry_for_s=300)
    async with stack(db, config=config) as herald:
        await herald.user_says("conv-a")
        await herald.control.fail_next(1000, 500, 50055001)
        with caplog.at_level(logging.WARNING, logger="herald.delivery.outbox"):
            lost = await herald.outbox.enqueue(A, [Text("lost")], origin="t")
            await _until_done(herald, lost, step_s=30, steps=30)
        result = await lost
        assert not result.delivered and result.reason is not None
        assert "gave up after retrying for 300s" in result.reason
        warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(lost.item_id in line and "conv-a" in line and "dead" in line for line in warning)

        await herald.control.fault(kind="clear")
        notices = await inspect.list_items(db, ["pending", "delivered"], limit=10)
        assert [row.origin for row in notices] == ["notice"]
        notice = await herald.outbox.receipt(notices[0].id)
        await _until_done(herald, notice, step_s=30, steps=10)
        assert (await notice).delivered
        delivered = [e["content"] for e in await herald.control.delivered("c2c", "conv-a")]
        assert delivered == [config.failure_notice]  # one notice, and nothing of the lost item


class _AnswerLost:
    """The QQ adapter, except that its first send's answer never comes back after the request
    went out: what a crash or a cut connection after sending looks like from the outbox."""

    name = "qq"

    def __init__(self, inner: QQPlatform) -> None:
        self.inner = inner
        self.lost = 0

    async def start(self, sink: EventSink) -> None:
        await self.inner.start(sink)

    async def wait_ready(self) -> None:
        await self.inner.wait_ready()

    def health(self) -> TransportHealth:
        return self.inner.health()

    async def reach(self, target: Target) -> Reach:
        return await self.inner.reach(target)

    async def forecast(
        self, target: Target, times: Sequence[datetime], *, held: int = 0
    ) -> tuple[NextSend, ...]:
        return await self.inner.forecast(target, times, held=held)

    def learned(self) -> tuple[Learned, ...]:
        return self.inner.learned()

    async def item_details(self, item_id: str) -> tuple[Details, ...]:
        return await self.inner.item_details(item_id)

    async def stop(self) -> None:
        await self.inner.stop()

    async def send(self, request: SendRequest) -> Sent:
        sent = await self.inner.send(request)
        if self.lost == 0:
            self.lost += 1
            raise DeliveryError(ErrorKind.OUTCOME_UNKNOWN, "the answer to a proactive send was lost")
        return sent


async def test_an_unknown_outcome_is_not_resent_until_the_operator_says_so(db: Database) -> None:
    async with stack(db) as herald:
        await herald.user_says("conv-a")
        await herald.outbox.stop()
        platform = _AnswerLost(herald.platform)
        outbox = Outbox(db, platform, herald.clock, config=DeliveryConfig())
        await outbox.start()
        try:
            receipt = await outbox.enqueue(A, [Text("maybe")], origin="t")
            result = await receipt
            assert not result.delivered and result.reason is not None
            assert result.reason.startswith("outcome unknown:")
            async with db.session() as session:
                row = await session.scalar(select(OutboxItem).where(OutboxItem.id == receipt.item_id))
            assert row is not None and row.state == "unknown"
            for _ in range(5):
                await herald.advance(60)
            assert len(await herald.control.delivered("c2c", "conv-a")) == 1  # not resent

            assert await inspect.retry(db, receipt.item_id, herald.clock.now(), 1800)
            await herald.advance(6)  # the poll picks it up
            again = await outbox.receipt(receipt.item_id)
            await _until_done(herald, again, step_s=6, steps=10)
            assert (await again).delivered
        finally:
            await outbox.stop()


async def test_an_item_past_its_moment_is_not_sent_and_the_user_not_noticed(db: Database) -> None:
    # A heartbeat whose next slot came while the platform was down: that slot sends its own.
    async with stack(db) as herald:
        await herald.user_says("conv-a")
        await herald.control.fail_next(1000, 500, 50055001)
        beat = await herald.outbox.enqueue(
            A, [Text("beat")], origin="job", expires_at=herald.clock.now() + timedelta(seconds=60)
        )
        await _until_done(herald, beat, step_s=20, steps=10)
        result = await beat
        assert not result.delivered and result.reason is not None and "expired" in result.reason
        await herald.control.fault(kind="clear")
        later = await herald.outbox.enqueue(A, [Text("next beat")], origin="job")
        await _until_done(herald, later, step_s=20, steps=10)
        delivered = [e["content"] for e in await herald.control.delivered("c2c", "conv-a")]
        assert delivered == ["next beat"]  # the expired one never, and no failure notice
