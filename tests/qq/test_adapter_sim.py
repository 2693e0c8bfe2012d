"""QQPlatform + Outbox against the sim over sockets: faults, dedup on retry, markdown fallback,
media, splitting, and the error table (invariants 2, 5, 6, 7; acceptance 5)."""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from herald.config import QQDeliveryConfig
from herald.core.clock import SystemClock
from herald.core.platform import SendRequest
from herald.core.segments import Markdown, Media, MediaKind, Text
from herald.core.target import Scene, Target
from herald.qq.errors import CODE_KINDS
from herald.qq.reply import DeliveryMode
from herald.qq.tables import ReplyReservation
from herald.qq.targets import TargetCapabilities
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem
from tests.delivery.harness import stack

ALICE = Target(Scene.C2C, "alice")


async def _settle(receipt: object, rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0.01)


async def test_5xx_and_429_bursts_are_retried_with_backoff_on_the_clock(db: Database) -> None:
    async with stack(db) as herald:
        message = await herald.user_says("alice")
        await herald.control.fail_next(2, 500, 50055001)
        await herald.control.fail_next(1, 429, 50002)
        receipt = await herald.outbox.enqueue(
            ALICE, [Text("persist")], origin="t", trigger_id=message.message_id
        )
        await _settle(receipt)
        # Three refusals so far; the retry waits on the virtual clock, not on real time.
        assert not receipt.done
        for _ in range(10):
            if receipt.done:
                break
            await herald.advance(4)
            await _settle(receipt)
        result = await receipt

        assert result.delivered and result.sent is not None
        assert result.sent.route == DeliveryMode.PASSIVE and dict(result.sent.details)["msg_seq"] == "1"
        sends = [r for r in await herald.control.requests() if r["path"] == "/v2/users/alice/messages"]
        assert [r["status"] for r in sends] == [500, 500, 429, 200]
        delivered = await herald.control.delivered("c2c", "alice")
        assert [(e["msg_id"], e["msg_seq"]) for e in delivered] == [(message.message_id, 1)]


async def test_a_dead_anchor_is_never_requested_again(db: Database) -> None:
    # The platform allows fewer replies than Herald's ledger believes: 40034128 on the third.
    async with stack(db, c2c_reply_limit=2) as herald:
        message = await herald.user_says("alice")
        receipts = [
            await herald.outbox.enqueue(ALICE, [Text(f"m{i}")], origin="t", trigger_id=message.message_id)
            for i in range(5)
        ]
        results = [await r for r in receipts]

        assert all(r.delivered for r in results)
        attempts = await herald.control.outbound("c2c", "alice")
        refused = [i for i, e in enumerate(attempts) if e.get("code") == 40034128]
        assert len(refused) == 1
        assert all(e["msg_id"] is None for e in attempts[refused[0] + 1 :])
        assert [e["content"] for e in attempts if e["status"] == 200] == [f"m{i}" for i in range(5)]


async def test_a_resend_of_a_delivered_part_is_recognised_as_delivered(db: Database) -> None:
    async with stack(db) as herald:
        message = await herald.user_says("alice")
        request = SendRequest("item-x", ALICE, (Text("once"),), trigger_id=message.message_id)
        first = await herald.platform.send(request)
        # A crash after the platform accepted, before Herald wrote it down.
        async with db.session() as session:
            await session.execute(update(ReplyReservation).values(sent_id=None))
            await session.commit()
        second = await herald.platform.send(SendRequest("item-x", ALICE, (Text("once"),), attempt=2))

        assert (second.route, second.anchor_id, second.details) == (
            first.route,
            first.anchor_id,
            first.details,
        )
        attempts = await herald.control.outbound("c2c", "alice")
        assert [e["code"] for e in attempts] == [0, 40054005]
        assert len(await herald.control.delivered("c2c", "alice")) == 1


async def test_markdown_falls_back_to_text_and_the_target_is_remembered(db: Database) -> None:
    async with stack(db, markdown_allowed=False) as herald:
        message = await herald.user_says("alice")
        for text in ("**one**", "**two**"):
            result = await (
                await herald.outbox.enqueue(
                    ALICE, [Markdown(text)], origin="t", trigger_id=message.message_id
                )
            )
            assert result.delivered
        attempts = await herald.control.outbound("c2c", "alice")
        assert [(e["msg_type"], e["code"]) for e in attempts] == [(2, 40034127), (0, 0), (0, 0)]
        # The refused attempt did not use up its msg_seq: the text went out on the same one.
        assert [e["msg_seq"] for e in attempts] == [1, 1, 2]


async def test_a_target_that_refused_markdown_is_known_after_a_restart_and_no_other(db: Database) -> None:
    before = TargetCapabilities(db, SystemClock(), QQDeliveryConfig())
    assert not await before.markdown_refused(ALICE)
    await before.refuse_markdown(ALICE)
    assert await before.markdown_refused(ALICE)

    restarted = TargetCapabilities(db, SystemClock(), QQDeliveryConfig())
    assert await restarted.markdown_refused(ALICE)
    assert not await restarted.markdown_refused(Target(Scene.C2C, "bob"))
    assert not await restarted.markdown_refused(Target(Scene.GROUP, "alice"))


async def test_media_is_uploaded_once_per_scene_and_sent_as_msg_type_7(db: Database) -> None:
    async with stack(db, assume_fetchable=["https://img.example/"]) as herald:
        image = Media(MediaKind.IMAGE, url="https://img.example/cat.png", caption="a cat")
        for user in ("alice", "bob"):
            message = await herald.user_says(user)
            result = await (
                await herald.outbox.enqueue(
                    Target(Scene.C2C, user), [image], origin="t", trigger_id=message.message_id
                )
            )
            assert result.delivered
        assert herald.platform.media is not None and herald.platform.media.uploads == 1
        for user in ("alice", "bob"):
            (entry,) = await herald.control.delivered("c2c", user)
            assert entry["msg_type"] == 7


async def test_long_text_becomes_several_passive_messages(db: Database) -> None:
    rules = QQDeliveryConfig(max_text_chars=100)
    async with stack(db, rules=rules) as herald:
        message = await herald.user_says("alice")
        paragraphs = [f"paragraph {n} " + "x" * 60 for n in range(3)]
        result = await (
            await herald.outbox.enqueue(
                ALICE, [Text("\n\n".join(paragraphs))], origin="t", trigger_id=message.message_id
            )
        )
        assert result.delivered and result.sent is not None and len(result.sent.platform_ids) == 3
        delivered = await herald.control.delivered("c2c", "alice")
        assert [e["content"] for e in delivered] == paragraphs
        assert [e["msg_seq"] for e in delivered] == [1, 2, 3]


async def test_refusals_are_classified_by_the_one_error_table(db: Database) -> None:
    async with stack(db) as herald:
        message = await herald.user_says("alice")
        await herald.control.fail_next(1, 400, 40054013)
        result = await (
            await herald.outbox.enqueue(ALICE, [Text("refused")], origin="t", trigger_id=message.message_id)
        )
        assert not result.delivered
        assert result.code == 40054013 and result.reason
        async with db.session() as session:
            row = await session.get(OutboxItem, 1)
        assert row is not None and row.state == "failed"
        assert row.error_kind == CODE_KINDS[40054013].value


async def test_group_permission_is_learned_from_bot_state_and_refusal_is_undeliverable(db: Database) -> None:
    async with stack(db, proactive_default_allowed=False) as herald:
        result = await (
            await herald.outbox.enqueue(Target(Scene.GROUP, "quiet"), [Text("push")], origin="job:1")
        )
        assert not result.delivered and result.reason and "bot_state" in result.reason
        # Never tried: Herald knew before sending.
        assert await herald.control.outbound("group", "quiet") == []


async def test_proactive_refusal_is_remembered_for_the_target(db: Database) -> None:
    async with stack(db) as herald:
        await herald.control.call("POST", "/_sim/events", {"t": "C2C_MSG_REJECT", "d": {"openid": "bob"}})
        for _ in range(100):
            if herald.events:
                break
            await asyncio.sleep(0.02)
        result = await (await herald.outbox.enqueue(Target(Scene.C2C, "bob"), [Text("push")], origin="job:1"))
        assert not result.delivered and result.reason and "proactive" in result.reason
        assert await herald.control.outbound("c2c", "bob") == []
