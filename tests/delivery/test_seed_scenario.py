"""Acceptance 1: the seed bug cannot happen. One user message, then a reply plus three sends in
one turn: all four passive on the user's message with distinct msg_seq, never a bot-sent id."""

from __future__ import annotations

import pytest

from herald.config import QQDeliveryConfig
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.qq.reply import DeliveryMode
from herald.store.db import Database
from tests.delivery.harness import stack


async def test_reply_plus_three_sends_are_all_passive_with_distinct_msg_seq(db: Database) -> None:
    async with stack(db) as herald:
        message = await herald.user_says("user-1", "send me three test messages")
        target = Target(Scene.C2C, "user-1")
        receipts = [
            await herald.outbox.enqueue(target, [Text(text)], origin=origin, trigger_id=message.message_id)
            for origin, text in [
                ("agent:reply", "OK, sending three messages."),
                ("agent:tool", "test message 1"),
                ("agent:tool", "test message 2"),
                ("agent:tool", "test message 3"),
            ]
        ]
        results = [await r for r in receipts]

        assert all(r.delivered for r in results), results
        assert [r.sent.route for r in results if r.sent] == [DeliveryMode.PASSIVE] * 4
        assert {r.sent.anchor_id for r in results if r.sent} == {message.message_id}
        entries = await herald.control.outbound("c2c", "user-1")
        assert [e["content"] for e in entries] == [
            "OK, sending three messages.",
            "test message 1",
            "test message 2",
            "test message 3",
        ]
        assert all(e["status"] == 200 and e["msg_id"] == message.message_id for e in entries)
        assert len({e["msg_seq"] for e in entries}) == 4
        assert not [r for r in await herald.control.requests() if r["code"] == 40034024]


@pytest.mark.parametrize(("mode", "delivered"), [("2026", True), ("2025", False)])
async def test_a_fifth_send_goes_proactive_or_recall_then_is_undeliverable_with_the_reason(
    db: Database, mode: str, delivered: bool
) -> None:
    rules = QQDeliveryConfig(platform_mode=mode)  # type: ignore[arg-type]
    async with stack(db, rules=rules, mode=mode) as herald:
        message = await herald.user_says("user-2")
        target = Target(Scene.C2C, "user-2")
        receipts = [
            await herald.outbox.enqueue(
                target, [Text(f"m{i}")], origin="agent:tool", trigger_id=message.message_id
            )
            for i in range(6)
        ]
        results = [await r for r in receipts]

        assert all(r.delivered for r in results[:5])
        fifth, sixth = results[4], results[5]
        assert fifth.sent is not None
        if delivered:
            assert fifth.sent.route == DeliveryMode.PROACTIVE and sixth.delivered
        else:
            # Proactive is withdrawn in 2025: the fifth goes as the same day's recall, the sixth nowhere.
            assert fifth.describe() == "delivered (recall, 3 of 4 periods left)"
            assert not sixth.delivered and sixth.reason is not None
            assert "2025" in sixth.reason and "recall of this period (same day) is used" in sixth.reason
        sent = await herald.control.delivered("c2c", "user-2")
        assert [e["content"] for e in sent] == [f"m{i}" for i in range(6 if delivered else 5)]
        assert not [r for r in await herald.control.requests() if r["code"]]
        assert not [r for r in await herald.control.requests() if r["code"] == 40034024]


@pytest.mark.parametrize(
    ("code", "why"), [(40034122, "(same day) is used"), (40034123, "refused interactive recall")]
)
async def test_a_refused_recall_is_remembered_and_never_asked_again(
    db: Database, code: int, why: str
) -> None:
    rules = QQDeliveryConfig(platform_mode="2025", c2c_reply_limit=1)
    async with stack(db, rules=rules, mode="2025") as herald:
        message = await herald.user_says("user-3")
        target = Target(Scene.C2C, "user-3")
        reply = await herald.outbox.enqueue(
            target, [Text("r")], origin="agent:tool", trigger_id=message.message_id
        )
        assert (await reply).delivered
        await herald.control.fail_next(1, 400, code)

        first = await (await herald.outbox.enqueue(target, [Text("recall")], origin="agent:tool"))
        second = await (await herald.outbox.enqueue(target, [Text("again")], origin="agent:tool"))

        assert not first.delivered and first.reason is not None and why in first.reason
        assert not second.delivered and second.reason is not None and why in second.reason
        refused = [r for r in await herald.control.requests() if r["code"]]
        assert [r["code"] for r in refused] == [code]  # one refusal; the second send asked nothing
