"""Acceptance 2 and 3: windows and budgets over virtual time (invariants 3, 4, 7)."""

from __future__ import annotations

import pytest

from herald.config import QQDeliveryConfig
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.qq.reply import DeliveryMode
from herald.store.db import Database
from tests.delivery.harness import stack


@pytest.mark.parametrize("mode", ["2026", "2025", "2023"])
async def test_heartbeat_every_minute_for_two_hours(db: Database, mode: str) -> None:
    rules = QQDeliveryConfig(platform_mode=mode)  # type: ignore[arg-type]
    async with stack(db, rules=rules, mode=mode) as herald:
        message = await herald.user_says("hb-user", "start a heartbeat")
        target = Target(Scene.C2C, "hb-user")
        results = []
        for minute in range(120):
            receipt = await herald.outbox.enqueue(
                target, [Text(f"heartbeat {minute}")], origin="job:heartbeat", trigger_id=message.message_id
            )
            results.append(await receipt)
            await herald.advance(60)

        modes = [r.sent.route if r.sent else None for r in results]
        # The first four ride on the user's message (C2C: 4 replies within 60 minutes).
        assert modes[:4] == [DeliveryMode.PASSIVE] * 4
        if mode == "2026":
            assert all(r.delivered for r in results)
            assert modes[4:] == [DeliveryMode.PROACTIVE] * 116
        else:
            # 2025: one interactive recall (this day's period) on top; 2023: four proactive a month.
            allowed = 5 if mode == "2025" else 8
            assert [r.delivered for r in results] == [True] * allowed + [False] * (120 - allowed)
            if mode == "2025":
                assert modes[4] == DeliveryMode.RECALL
            # Not silently dropped: each one says why.
            assert all(r.reason and "proactive" in r.reason for r in results[allowed:])
        sent = await herald.control.delivered("c2c", "hb-user")
        assert [e["content"] for e in sent] == [
            f"heartbeat {i}" for i, r in enumerate(results) if r.delivered
        ]
        # Passive only while the anchor was valid; nothing was refused by the platform.
        assert all(e["status"] == 200 for e in await herald.control.outbound("c2c", "hb-user"))


async def test_group_send_six_minutes_after_the_last_message_is_never_tried_passive(db: Database) -> None:
    async with stack(db) as herald:
        message = await herald.member_says("grp-1", "member-a", "hello bot")
        await herald.advance(6 * 60)
        receipt = await herald.outbox.enqueue(
            Target(Scene.GROUP, "grp-1"),
            [Text("late reply")],
            origin="agent:reply",
            trigger_id=message.message_id,
        )
        result = await receipt

        assert result.delivered and result.sent is not None
        assert result.sent.route == DeliveryMode.PROACTIVE
        attempts = await herald.control.outbound("group", "grp-1")
        assert [e["msg_id"] for e in attempts] == [None]


async def test_group_send_inside_the_window_is_passive(db: Database) -> None:
    async with stack(db) as herald:
        message = await herald.member_says("grp-2", "member-a", "hello bot")
        await herald.advance(4 * 60)
        result = await (
            await herald.outbox.enqueue(
                Target(Scene.GROUP, "grp-2"),
                [Text("reply")],
                origin="agent:reply",
                trigger_id=message.message_id,
            )
        )
        assert result.sent is not None and result.sent.route == DeliveryMode.PASSIVE
