"""`OneBotPlatform` against the OneBot emulator over a real reverse WebSocket: what arrives as
core events, what a send becomes, and how failures are told apart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from herald.config import OneBotConfig
from herald.core.errors import DeliveryError, ErrorKind
from herald.core.events import InboundEvent, InboundMessage, MemberEvent, RelationEvent, RelationKind
from herald.core.platform import NextRoute, SendRequest
from herald.core.segments import Button, Keyboard, Media, MediaKind, Text
from herald.core.target import Scene, Target
from herald.onebot import OneBotPlatform
from herald.serving import serve
from herald.sim.onebot import OneBotSimSettings, RunningOneBotSim, serve_onebot
from herald.store import Database

WAIT_S = 30.0  # a safety limit so a broken stack fails instead of hanging; never a timing assertion


async def until(done: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not done():  # noqa: ASYNC110 (state another task changes as the emulator talks)
            await asyncio.sleep(0.01)


class Side:
    def __init__(self, sim: RunningOneBotSim, platform: OneBotPlatform, http: aiohttp.ClientSession) -> None:
        self.sim, self.platform, self.http = sim, platform, http
        self.events: list[InboundEvent] = []

    async def sink(self, event: InboundEvent) -> None:
        self.events.append(event)

    async def control(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        async with self.http.request(method, self.sim.base_url + path, json=body) as resp:
            data = await resp.json()
            assert resp.status == status, (path, resp.status, data)
            return data

    async def until_events(self, count: int) -> list[InboundEvent]:
        await until(lambda: len(self.events) >= count)
        return self.events

    async def sent(self, chat: str, chat_id: str) -> list[dict[str, Any]]:
        return list(
            (await self.control("GET", f"/_sim/onebot/transcript?type={chat}&id={chat_id}"))["entries"]
        )


@contextlib.asynccontextmanager
async def side(db_url: str, token: str = "sim-token", **settings: Any) -> AsyncIterator[Side]:
    config = OneBotConfig(port=0, access_token=SecretStr(token), **settings)
    db = Database(db_url)
    await db.migrate()
    platform = OneBotPlatform(config, db)
    async with serve_onebot(OneBotSimSettings()) as sim, aiohttp.ClientSession() as http:
        s = Side(sim, platform, http)
        await platform.start(s.sink)
        try:
            async with serve(platform.endpoints()):  # as the app serves them
                sim.connect_to(platform.connection.url)
                yield s
        finally:
            await platform.stop()
            await db.dispose()


def request(target: Target, *segments: Any, item: str = "item-1") -> SendRequest:
    return SendRequest(item_id=item, target=target, segments=tuple(segments))


async def test_private_and_group_messages_arrive_as_core_events(db_url: str) -> None:
    async with side(db_url) as s:
        async with asyncio.timeout(WAIT_S):
            await s.platform.wait_ready()
        assert s.platform.health().ready
        await s.control("POST", "/_sim/onebot/private/20001/messages", {"message": "你好 [CQ:face,id=14]"})
        await s.control("POST", "/_sim/onebot/groups/30001/messages", {"user_id": 20002, "message": "hi all"})
        await s.control(
            "POST",
            "/_sim/onebot/groups/30001/messages",
            {"user_id": 20003, "message": "chat", "at_bot": False},
        )
        private, mentioned, unmentioned = await s.until_events(3)

    assert isinstance(private, InboundMessage) and isinstance(mentioned, InboundMessage)
    assert isinstance(unmentioned, InboundMessage)
    assert private.target == Target(Scene.C2C, "20001", "onebot")
    assert private.target.key == "onebot:c2c:20001"
    assert (private.content, private.author_id, private.mentions_bot) == ("你好 [face 14]", "20001", True)
    assert mentioned.target.key == "onebot:group:30001"
    assert (mentioned.content, mentioned.author_id, mentioned.mentions_bot) == ("hi all", "20002", True)
    assert mentioned.author_roles == ("member",)
    assert unmentioned.mentions_bot is False


async def test_notices_arrive_as_relation_and_member_events(db_url: str) -> None:
    async with side(db_url) as s:
        await s.platform.wait_ready()
        await s.control("POST", "/_sim/onebot/notices", {"notice_type": "friend_add", "user_id": 20009})
        await s.control(
            "POST",
            "/_sim/onebot/notices",
            {"notice_type": "group_increase", "sub_type": "approve", "group_id": 30001, "user_id": 20010,
             "operator_id": 20002},
        )  # fmt: skip
        friend, member = await s.until_events(2)
    assert isinstance(friend, RelationEvent) and friend.kind is RelationKind.FRIEND_ADDED
    assert friend.target.key == "onebot:c2c:20009"
    assert isinstance(member, MemberEvent) and (member.member_id, member.operator_id) == ("20010", "20002")


async def test_a_send_arrives_split_with_media_and_choices(db_url: str) -> None:
    async with side(db_url, max_text_chars=100) as s:
        await s.platform.wait_ready()
        target = Target(Scene.GROUP, "30001", "onebot")
        keyboard = Keyboard.of([Button("Yes", data="y"), Button("No", data="n")])
        sent = await s.platform.send(
            request(target, Text("x" * 150), Media(MediaKind.IMAGE, data=b"\x89PNG"), keyboard)
        )
        entries = await s.sent("group", "30001")

    assert [e["action"] for e in entries] == ["send_group_msg"] * 4
    assert [len(e["text"]) for e in entries[:2]] == [100, 50]
    assert entries[2]["message"] == [{"type": "image", "data": {"file": "base64://iVBORw=="}}]
    assert "1. Yes" in entries[3]["text"] and "/choose" in entries[3]["text"]
    assert sent.platform_ids == tuple(str(e["message_id"]) for e in entries)
    assert sent.route == "send_group_msg"


@pytest.mark.parametrize(
    ("retcode", "kind"),
    [(100, ErrorKind.RETRY_LATER), (1400, ErrorKind.BUG), (1403, ErrorKind.PERMANENT)],
)
async def test_a_refused_send_says_why_and_whether_to_retry(
    db_url: str, retcode: int, kind: ErrorKind
) -> None:
    async with side(db_url) as s:
        await s.platform.wait_ready()
        await s.control("POST", "/_sim/onebot/faults", {"action": "send_private_msg", "retcode": retcode})
        with pytest.raises(DeliveryError) as raised:
            await s.platform.send(request(Target(Scene.C2C, "20001", "onebot"), Text("hi")))
        again = await s.platform.send(request(Target(Scene.C2C, "20001", "onebot"), Text("hi")))
    assert raised.value.kind is kind and raised.value.code == retcode
    assert str(retcode) in str(raised.value)
    assert len(again.platform_ids) == 1  # the fault was for one call only


async def test_a_send_without_an_answer_is_not_resent_blindly(db_url: str) -> None:
    async with side(db_url, action_timeout_s=0.2) as s:
        await s.platform.wait_ready()
        await s.control(
            "POST", "/_sim/onebot/faults", {"action": "send_private_msg", "delay_s": 1.0, "times": 1}
        )
        target = Target(Scene.C2C, "20001", "onebot")
        with pytest.raises(DeliveryError) as first:
            await s.platform.send(request(target, Text("slow")))
        with pytest.raises(DeliveryError) as retried:
            await s.platform.send(request(target, Text("slow")))
        details = await s.platform.item_details("item-1")
        await asyncio.sleep(1.2)  # the emulator's slow answer comes: the message did go out
        entries = await s.sent("private", "20001")
    assert first.value.kind is retried.value.kind is ErrorKind.OUTCOME_UNKNOWN
    assert "not sent again" in str(retried.value)
    assert [e["text"] for e in entries] == ["slow"]  # once: the retry did not send it again
    assert dict(details[0])["message_id"].startswith("no answer")


async def test_a_retry_goes_on_after_the_messages_already_sent(db_url: str) -> None:
    async with side(db_url, max_text_chars=100) as s:
        await s.platform.wait_ready()
        item = request(Target(Scene.C2C, "20001", "onebot"), Text("a" * 100 + "b" * 100 + "c" * 100))
        # The second message of the three is refused once (retcode 100: a failure of the moment).
        await s.control(
            "POST",
            "/_sim/onebot/faults",
            {"action": "send_private_msg", "retcode": 100, "times": 1, "after": 1},
        )
        with pytest.raises(DeliveryError) as raised:
            await s.platform.send(item)
        sent = await s.platform.send(item)
        entries = [e for e in await s.sent("private", "20001") if e["status"] == "ok"]
    assert raised.value.kind is ErrorKind.RETRY_LATER and "after 1 of its messages" in str(raised.value)
    assert [e["text"][0] for e in entries] == ["a", "b", "c"]  # the first was not sent twice
    assert sent.platform_ids == tuple(str(e["message_id"]) for e in entries)


async def test_a_dropped_socket_reconnects_and_events_keep_flowing(db_url: str) -> None:
    async with side(db_url) as s:
        await s.platform.wait_ready()
        await s.control("POST", "/_sim/onebot/faults", {"drop": True})
        await until(lambda: s.platform.connection.connections >= 2 and s.platform.health().ready)
        await s.control("POST", "/_sim/onebot/private/20001/messages", {"message": "still here"})
        (event,) = await s.until_events(1)
        assert s.platform.health().reconnects == 1
    assert isinstance(event, InboundMessage) and event.content == "still here"


async def test_a_wrong_access_token_is_refused(db_url: str) -> None:
    async with side(db_url, token="another-token") as s:
        await until(lambda: s.platform.connection.refused >= 2)  # it tries again, and is refused again
        health = s.platform.health()
        with pytest.raises(DeliveryError) as raised:
            await s.platform.send(request(Target(Scene.C2C, "20001", "onebot"), Text("hi")))
    assert s.platform.connection.connections == 0 and not health.ready
    assert "wrong access token" in health.detail
    assert raised.value.kind is ErrorKind.RETRY_LATER


async def test_reach_says_every_target_takes_messages_now() -> None:
    platform = OneBotPlatform(OneBotConfig(port=0), Database("sqlite+aiosqlite://"))
    reach = await platform.reach(Target(Scene.C2C, "20001", "onebot"))
    assert reach.next_send.route is NextRoute.PROACTIVE
    channel = await platform.reach(Target(Scene.CHANNEL, "1", "onebot"))
    assert channel.next_send.route is NextRoute.UNDELIVERABLE
