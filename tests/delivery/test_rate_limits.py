"""Acceptance 6 (small form; bench/outbox.py --rate-limits is the full 5,000 x 500 run): with the
sim's rate limits on, Herald paces itself and never provokes 429 / 50002 / 40034100."""

from __future__ import annotations

from collections import deque

from herald.config import QQDeliveryConfig
from herald.core.clock import SystemClock
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.qq.reply import DeliveryMode
from herald.store.db import Database
from tests.delivery.harness import stack

RATE_LIMITED = {50002, 40034100}


def _max_in_window(times: list[float], window: float) -> int:
    recent: deque[float] = deque()
    most = 0
    for at in sorted(times):
        recent.append(at)
        while recent[0] <= at - window:
            recent.popleft()
        most = max(most, len(recent))
    return most


async def test_passive_burst_stays_under_the_endpoint_rate(db: Database) -> None:
    qps = 20  # the sim's and Herald's message-endpoint limit, scaled down from 100 to keep this short
    rules = QQDeliveryConfig(message_qps=qps)
    sim_qps = {"c2c_messages": qps, "group_messages": qps, "stream": 50, "files": 50, "prepare": 10}
    async with stack(db, rules=rules, clock=SystemClock(), rate_limits=True, endpoint_qps=sim_qps) as herald:
        users = [f"rl-{i}" for i in range(10)]
        triggers = {user: (await herald.user_says(user)).message_id for user in users}
        receipts = [
            await herald.outbox.enqueue(
                Target(Scene.C2C, user), [Text(f"{user} {n}")], origin="t", trigger_id=triggers[user]
            )
            for n in range(4)
            for user in users
        ]
        results = [await r for r in receipts]

        assert all(r.delivered for r in results)
        sends = [r for r in await herald.control.requests() if r["path"].startswith("/v2/users/")]
        assert not [r for r in sends if r["status"] == 429 or r["code"] in RATE_LIMITED]
        assert _max_in_window([r["at"] for r in sends], 1.0) <= qps


async def test_proactive_burst_stays_under_the_bot_rate(db: Database) -> None:
    async with stack(db, clock=SystemClock(), rate_limits=True) as herald:
        receipts = [
            await herald.outbox.enqueue(Target(Scene.C2C, f"pr-{i}"), [Text(f"push {i}")], origin="job:push")
            for i in range(25)
        ]
        results = [await r for r in receipts]

        assert all(r.delivered and r.sent and r.sent.route == DeliveryMode.PROACTIVE for r in results)
        sends = [r for r in await herald.control.requests() if r["path"].startswith("/v2/users/")]
        assert not [r for r in sends if r["status"] == 429 or r["code"] in RATE_LIMITED]
        assert _max_in_window([r["at"] for r in sends], 1.0) <= 10  # C2C proactive: 10 per second
