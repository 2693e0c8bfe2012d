"""What the platform refuses the bot as a whole is learned from its answers, kept across restarts,
and not asked for again: proactive push (withdrawn, or never granted), markdown, an intent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from herald.config import QQDeliveryConfig
from herald.core.errors import DeliveryError
from herald.core.events import InboundMessage
from herald.core.platform import NextRoute, Permission, SendRequest
from herald.core.segments import Markdown, Text
from herald.core.target import Scene, Target
from herald.qq.adapter import QQPlatform
from herald.qq.capabilities import Capabilities
from herald.store.db import Database
from tests.delivery.harness import WAIT_S, Stack, qq_config, stack
from tests.qq.test_doctor import herald_doctor
from tests.sim_control import qq_toml

# Herald believes proactive push works (mode 2026); the platform has withdrawn it (mode 2025).
BELIEVES_PROACTIVE = QQDeliveryConfig(platform_mode="2026", recall="off")


def user(name: str) -> Target:
    return Target(Scene.C2C, name)


async def proactive(platform: QQPlatform, name: str) -> DeliveryError:
    with pytest.raises(DeliveryError) as refused:
        await platform.send(SendRequest(f"item-{name}", user(name), (Text("ping"),)))
    return refused.value


async def allowed(herald: Stack, name: str) -> None:
    """The user allows proactive messages (C2C_MSG_RECEIVE), and Herald has recorded it."""
    await herald.control.event("C2C_MSG_RECEIVE", {"openid": name, "timestamp": 1})
    async with asyncio.timeout(WAIT_S):
        while True:
            reach = await herald.platform.reach(user(name))
            if reach.proactive.permission is Permission.ALLOWED:
                return
            await asyncio.sleep(0.01)


async def test_a_withdrawn_proactive_push_is_learned_at_once_and_never_asked_again(db: Database) -> None:
    async with stack(db, rules=BELIEVES_PROACTIVE, mode="2025") as herald:
        # The one refusal that teaches it; the item is then planned again with what was learned.
        assert "refuses this bot proactive messages" in (await proactive(herald.platform, "u1")).reason
        assert [entry.get("code") for entry in await herald.control.outbound("c2c", "u1")] == [40034105]
        (learned,) = herald.platform.learned()
        assert learned.capability == "proactive" and not learned.suspected and learned.code == 40034105
        assert "withdrawn" in learned.reason

        refusal = await proactive(herald.platform, "u2")
        assert "refuses this bot proactive messages" in refusal.reason
        assert await herald.control.outbound("c2c", "u2") == []
        reach = await herald.platform.reach(user("u3"))
        assert reach.next_send.route is NextRoute.UNDELIVERABLE
        assert "refuses this bot proactive messages" in reach.next_send.why

        # A restarted Herald (a new adapter on the same database) does not ask either.
        again = QQPlatform(qq_config(herald.sim, BELIEVES_PROACTIVE), db, herald.clock)
        await again.connect()
        try:
            assert [item.capability for item in again.learned()] == ["proactive"]
            await proactive(again, "u4")
            assert await herald.control.outbound("c2c", "u4") == []
        finally:
            await again.stop()


async def test_refusals_for_three_users_make_the_bot_refused_until_one_is_accepted(db: Database) -> None:
    # Mode 2026, where a user who has not allowed proactive messages refuses them with the code a
    # withdrawn push also gets: one refusal is a suspicion, three with none accepted are a lesson.
    async with stack(db, rules=BELIEVES_PROACTIVE, proactive_default_allowed=False) as herald:
        for name in ("a", "b"):
            await proactive(herald.platform, name)
            (learned,) = herald.platform.learned()
            assert learned.suspected
        await proactive(herald.platform, "c")
        (learned,) = herald.platform.learned()
        assert not learned.suspected and "3 different targets" in learned.reason
        assert learned.evidence == ("c2c:a", "c2c:b", "c2c:c")
        await proactive(herald.platform, "d")
        assert await herald.control.outbound("c2c", "d") == []

        # A user who allows proactive messages is still tried; the platform takes it, so the
        # lesson was wrong and is dropped.
        await allowed(herald, "fan")
        sent = await herald.platform.send(SendRequest("item-fan", user("fan"), (Text("ping"),)))
        assert sent.platform_ids and herald.platform.learned() == ()


async def test_an_accepted_send_between_refusals_clears_the_suspicion(db: Database) -> None:
    async with stack(db, rules=BELIEVES_PROACTIVE, proactive_default_allowed=False) as herald:
        for name in ("a", "b"):
            await proactive(herald.platform, name)
        await allowed(herald, "fan")
        await herald.platform.send(SendRequest("item-fan", user("fan"), (Text("ping"),)))
        assert herald.platform.learned() == ()
        await proactive(herald.platform, "d")
        (learned,) = herald.platform.learned()
        assert learned.suspected and learned.evidence == ("c2c:d",)


async def test_a_refusal_for_a_user_who_allowed_proactive_messages_is_learned_at_once(db: Database) -> None:
    async with stack(db, rules=BELIEVES_PROACTIVE) as herald:
        await allowed(herald, "fan")
        await herald.control.fail_next(1, 400, 40034105)
        await proactive(herald.platform, "fan")
        (learned,) = herald.platform.learned()
        assert not learned.suspected and "c2c:fan allows proactive messages" in learned.reason


async def test_no_markdown_permission_is_learned_for_the_bot_not_one_user(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    async with stack(db, markdown_allowed=False) as herald:
        first: InboundMessage = await herald.user_says("alice")
        request = SendRequest("md-1", user("alice"), (Markdown("**hi**"),), first.message_id)
        await herald.platform.send(request)
        (learned,) = herald.platform.learned()
        assert learned.capability == "markdown" and learned.code == 40034127
        second = await herald.user_says("bob")
        await herald.platform.send(SendRequest("md-2", user("bob"), (Markdown("**hi**"),), second.message_id))
        # Bob's reply went as text on the first try: markdown was not asked for again.
        attempts = await herald.control.outbound("c2c", "bob")
        assert [(entry["status"], entry.get("msg_type")) for entry in attempts] == [(200, 0)]

        # The operator sees it in `herald doctor`, and forgets it once the platform grants it.
        config = tmp_path / "herald.toml"
        config.write_text(f'{qq_toml(herald.sim)}[storage]\nurl = "{db_url}"\n')
        code, out = await herald_doctor(config)
        assert code == 0, out
        assert "markdown: refused to this bot since" in out and "40034127" in out
        code, out = await herald_doctor(config, "--forget", "markdown")
        assert code == 0, out
        assert "forgot markdown" in out and "nothing refused to this bot so far" in out


async def test_an_intent_not_permitted_is_found_remembered_and_left_out(db: Database) -> None:
    # The bot asks for public guild messages as well, which this bot may not have: the session
    # still comes up with the rest, and a restart does not ask for it again.
    async with stack(db, inbound=False, intents_allowed=(1 << 25) | (1 << 26) | (1 << 12)) as herald:
        config = qq_config(herald.sim)
        platform = QQPlatform(config, db, herald.clock)
        arrived = asyncio.Event()

        async def sink(event: object) -> None:
            arrived.set()

        await platform.start(sink)
        try:
            async with asyncio.timeout(WAIT_S):
                await platform.wait_ready()
            assert [item.capability for item in platform.learned()] == ["intent:PUBLIC_GUILD_MESSAGES"]
            await herald.control.c2c("alice", "still here")
            async with asyncio.timeout(WAIT_S):
                await arrived.wait()
        finally:
            await platform.stop()

        await herald.control.call("DELETE", "/_sim/requests")
        again = QQPlatform(config, db, herald.clock)
        await again.start(sink)
        try:
            async with asyncio.timeout(WAIT_S):
                await again.wait_ready()
            assert again.gateway.intents == config.intents & ~(1 << 30)
        finally:
            await again.stop()

        capabilities = Capabilities(db, config.app_id, herald.clock)
        await capabilities.load()
        assert await capabilities.forget("intent:PUBLIC_GUILD_MESSAGES")
        await capabilities.load()
        assert capabilities.all() == ()
