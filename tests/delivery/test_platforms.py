"""Several platforms in one process: two QQ bots (two emulators) behind one routing `Platforms`,
one outbox, one database (SQLite and PostgreSQL). Each bot's events carry its own name, and a
reply goes out through the bot the conversation belongs to."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from herald.config import QQConfig
from herald.core.clock import SystemClock
from herald.core.events import InboundEvent, InboundMessage
from herald.core.platform import NextRoute
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.delivery.outbox import Outbox
from herald.delivery.platforms import Platforms
from herald.qq.adapter import QQPlatform
from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings
from herald.store.db import Database
from tests.sim_control import SimControl

WAIT_S = 30.0  # a safety limit so a broken test fails instead of hanging; never a timing assertion


def test_keys_of_the_platform_named_qq_stay_scene_id_and_others_name_their_platform() -> None:
    assert Target(Scene.C2C, "alice").key == "c2c:alice"  # every key stored so far
    assert Target(Scene.C2C, "alice", "qq2").key == "qq2:c2c:alice"
    for target in (
        Target(Scene.GROUP, "g:1"),
        Target(Scene.DM, "d", "onebot"),
        Target(Scene.C2C, "a:b", "x"),
    ):
        assert Target.parse(target.key) == target
    assert Target.parse("c2c:alice").platform == "qq"
    for bad in ("alice", "c2c:", "qq2:c2c", "qq2:bogus:x", "Bad:c2c:x"):
        with pytest.raises(ValueError, match="not a target key"):
            Target.parse(bad)
    with pytest.raises(ValueError, match="not a scene name"):
        QQPlatform(QQConfig(app_id="1", secret=SecretStr("s")), None, name="group")  # type: ignore[arg-type]


def _qq(sim: RunningSim, db: Database, name: str) -> QQPlatform:
    s = sim.state.settings
    config = QQConfig(
        app_id=s.app_id, secret=SecretStr(s.secret), api_base=sim.base_url, token_url=sim.token_url
    )
    return QQPlatform(config, db, SystemClock(), rate_limits=False, name=name)


class _Two:
    def __init__(self, db: Database, a: RunningSim, b: RunningSim, http: aiohttp.ClientSession) -> None:
        self.platforms = Platforms({"qq": _qq(a, db, "qq"), "qq2": _qq(b, db, "qq2")})
        self.outbox = Outbox(db, self.platforms, SystemClock())
        self.sims = {"qq": SimControl(a, http), "qq2": SimControl(b, http)}
        self.events: list[InboundEvent] = []
        self._arrived = asyncio.Condition()

    async def sink(self, event: InboundEvent) -> None:
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    async def user_says(self, platform: str, openid: str, content: str) -> InboundMessage:
        msg_id = (await self.sims[platform].c2c(openid, content))["msg_id"]

        def found() -> InboundMessage | None:
            return next(
                (e for e in self.events if isinstance(e, InboundMessage) and e.message_id == msg_id), None
            )

        async with asyncio.timeout(WAIT_S), self._arrived:
            await self._arrived.wait_for(lambda: found() is not None)
        event = found()
        assert event is not None
        return event


@contextlib.asynccontextmanager
async def two_bots(db: Database) -> AsyncIterator[_Two]:
    # Real time on both emulators: one Herald clock serves both.
    async with (
        serve(SimSettings(port=0)) as a,
        serve(SimSettings(port=0, app_id="102000002")) as b,
        aiohttp.ClientSession() as http,
    ):
        two = _Two(db, a, b, http)
        await two.platforms.start(two.sink)
        try:
            async with asyncio.timeout(WAIT_S):
                await two.platforms.wait_ready()
            await two.outbox.start()
            yield two
        finally:
            await two.outbox.stop()
            await two.platforms.stop()


async def test_each_bot_answers_its_own_users_through_one_outbox(db: Database) -> None:
    async with two_bots(db) as two:
        first = await two.user_says("qq", "alice", "hi on the first bot")
        second = await two.user_says("qq2", "alice", "hi on the second bot")
        # The same user id on two bots is two conversations, each named by its bot.
        assert (first.target.key, second.target.key) == ("c2c:alice", "qq2:c2c:alice")
        health = two.platforms.health()
        assert health.ready and "qq ready" in health.detail and "qq2 ready" in health.detail

        reach = await two.platforms.reach(second.target)
        assert reach.next_send.route is NextRoute.REPLY and reach.next_send.anchor_id == second.message_id

        one = await two.outbox.enqueue(
            first.target, [Text("to the first")], origin="t", trigger_id=first.message_id
        )
        two_ = await two.outbox.enqueue(
            second.target, [Text("to the second")], origin="t", trigger_id=second.message_id
        )
        results = [await one, await two_]
        assert all(r.delivered and r.sent is not None and r.sent.route == "passive" for r in results)
        got = {name: await sim.delivered("c2c", "alice") for name, sim in two.sims.items()}
        assert [(e["content"], e["msg_id"]) for e in got["qq"]] == [("to the first", first.message_id)]
        assert [(e["content"], e["msg_id"]) for e in got["qq2"]] == [("to the second", second.message_id)]
        # Each bot's own record of what it sent, found through the router.
        assert dict((await two.platforms.item_details(two_.item_id))[0])["anchor"] == second.message_id


async def test_a_conversation_of_a_platform_not_running_is_undeliverable_with_the_reason(
    db: Database,
) -> None:
    async with two_bots(db) as two:
        gone = Target(Scene.C2C, "alice", "retired")
        result = await (await two.outbox.enqueue(gone, [Text("lost?")], origin="t"))
        assert not result.delivered and result.reason is not None
        assert "no platform named 'retired' runs here (running: qq, qq2)" in result.reason
        assert await two.sims["qq"].outbound("c2c", "alice") == []
        assert await two.sims["qq2"].outbound("c2c", "alice") == []
