"""Fidelity: the official SDK `qq-botpy` 1.2.1, unmodified, runs its bot against the emulator.

Only where botpy connects is changed: `Route.DOMAIN`/`Route.SCHEME` (class attributes) point its
OpenAPI at the emulator, and the token URL, a literal inside `Token.update_access_token`, is
redirected by handing `botpy.robot` an `aiohttp` whose sessions swap that one URL. botpy itself
finds the gateway through `/gateway/bot`, identifies, heartbeats and parses events on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import botpy
import pytest
from botpy import errors as botpy_errors
from botpy import http as botpy_http
from botpy import robot as botpy_robot
from botpy.message import C2CMessage, GroupMessage

from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings

OFFICIAL_TOKEN_URL = "https://bots.qq.com/app/getAppAccessToken"
WAIT = 10.0  # a ceiling for something that must happen, not a timing assertion
# botpy's Robot does int(user["id"]): real bot ids are digit strings.
BOT_ID, APP_ID, SECRET = "2233445566", "102030405", "botpy-fidelity-secret-0123456789"


class _TokenRedirect:
    """A stand-in for `aiohttp.ClientSession` that only changes where the token request goes."""

    def __init__(self, token_url: str) -> None:
        self._token_url = token_url
        self._session = aiohttp.ClientSession()

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._session.post(self._token_url if url == OFFICIAL_TOKEN_URL else url, **kwargs)

    async def close(self) -> None:
        await self._session.close()


@dataclass
class BotHarness:
    sim: RunningSim
    client: Any
    inbox: asyncio.Queue[Any]
    ready: asyncio.Event

    async def next_message(self) -> Any:
        return await asyncio.wait_for(self.inbox.get(), WAIT)

    async def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.sim.base_url}{path}", json=body) as response,
        ):
            assert response.status == 200, await response.text()
            result: dict[str, Any] = await response.json()
            return result

    async def gateway(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.sim.base_url}/_sim/gateway") as response:
            result: dict[str, Any] = await response.json()
            return result

    async def last_outbound(self, scene: str, target: str) -> dict[str, Any]:
        query = {"scene": scene, "target": target}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.sim.base_url}/_sim/transcript", params=query) as response,
        ):
            entries = (await response.json())["entries"]
        outbound: dict[str, Any] = [e for e in entries if e["direction"] == "out"][-1]
        return outbound


@pytest.fixture
async def bot(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BotHarness]:
    async with serve(SimSettings(port=0, bot_id=BOT_ID, app_id=APP_ID, secret=SECRET)) as sim:
        monkeypatch.setattr(botpy_http.Route, "DOMAIN", f"{sim.host}:{sim.port}")
        monkeypatch.setattr(botpy_http.Route, "SCHEME", "http")
        shim = types.SimpleNamespace(
            ClientSession=lambda: _TokenRedirect(sim.token_url), ClientTimeout=aiohttp.ClientTimeout
        )
        monkeypatch.setattr(botpy_robot, "aiohttp", shim)

        inbox: asyncio.Queue[Any] = asyncio.Queue()
        ready = asyncio.Event()

        class Bot(botpy.Client):  # type: ignore[misc]
            async def on_ready(self) -> None:
                ready.set()

            async def on_c2c_message_create(self, message: C2CMessage) -> None:
                inbox.put_nowait(message)

            async def on_group_at_message_create(self, message: GroupMessage) -> None:
                inbox.put_nowait(message)

            async def on_friend_add(self, event: Any) -> None:
                inbox.put_nowait(event)

            async def on_group_add_robot(self, event: Any) -> None:
                inbox.put_nowait(event)

        # botpy's own default: every public-domain intent (not GUILD_MESSAGES nor FORUMS_EVENT).
        client = Bot(intents=botpy.Intents.default(), ext_handlers=False, bot_log=None)

        async def run() -> None:
            async with client:
                await client.start(appid=APP_ID, secret=SECRET)

        task = asyncio.create_task(run())
        try:
            await asyncio.wait_for(ready.wait(), WAIT)
            yield BotHarness(sim=sim, client=client, inbox=inbox, ready=ready)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await client.http.close()


async def test_botpy_logs_in_over_the_gateway(bot: BotHarness) -> None:
    assert bot.client.robot.id == int(BOT_ID)
    assert bot.sim.state.bus.online()
    [session] = (await bot.gateway())["sessions"]
    assert session["intents"] == botpy.Intents.default().value


async def test_botpy_hears_relation_events_and_answers_them_by_event_id(bot: BotHarness) -> None:
    added = await bot.control("/_sim/events", {"t": "FRIEND_ADD", "fields": {"openid": "friend-1"}})
    event = await bot.next_message()
    assert (event.openid, event.event_id) == ("friend-1", added["event_id"])
    assert isinstance(event.timestamp, int)
    await bot.client.api.post_c2c_message(openid="friend-1", content="welcome", event_id=event.event_id)
    sent = await bot.last_outbound("c2c", "friend-1")
    assert (sent["status"], sent["kind"], sent["event_id"]) == (200, "event", added["event_id"])

    joined = await bot.control(
        "/_sim/events",
        {"t": "GROUP_ADD_ROBOT", "fields": {"group_openid": "group-1", "op_member_openid": "owner-1"}},
    )
    event = await bot.next_message()
    assert (event.group_openid, event.op_member_openid) == ("group-1", "owner-1")
    await bot.client.api.post_group_message(
        group_openid="group-1", content="hello all", event_id=event.event_id
    )
    sent = await bot.last_outbound("group", "group-1")
    assert (sent["status"], sent["kind"], sent["event_id"]) == (200, "event", joined["event_id"])


async def test_botpy_receives_a_c2c_message_and_replies_passively_until_the_budget_is_spent(
    bot: BotHarness,
) -> None:
    injected = await bot.control("/_sim/c2c/user-botpy/messages", {"content": "hello bot"})
    message = await bot.next_message()
    assert isinstance(message, C2CMessage)
    assert message.id == injected["msg_id"]
    assert message.event_id == injected["event_id"]
    assert message.content == "hello bot"
    assert message.author.user_openid == "user-botpy"

    for seq in range(1, 5):
        reply = await bot.client.api.post_c2c_message(
            openid=message.author.user_openid,
            msg_type=0,
            content=f"reply {seq}",
            msg_id=message.id,
            msg_seq=seq,
        )
        assert isinstance(reply, dict) and reply["id"].startswith("ROBOT1.0_")
    with pytest.raises(botpy_errors.ServerError):
        await bot.client.api.post_c2c_message(
            openid=message.author.user_openid, msg_type=0, content="reply 5", msg_id=message.id, msg_seq=5
        )
    failed = await bot.last_outbound("c2c", "user-botpy")
    assert failed["code"] == 40034128 and failed["status"] == 400


async def test_botpy_replying_to_its_own_message_id_gets_40034024(bot: BotHarness) -> None:
    """The seed bug: AstrBot reused the id of the bot's own sent message as the next msg_id."""
    await bot.control("/_sim/c2c/user-seed/messages", {"content": "send me three messages"})
    message = await bot.next_message()
    first = await message.reply(msg_type=0, content="message 1", msg_seq=1)
    with pytest.raises(botpy_errors.ServerError, match="msg_id"):
        await bot.client.api.post_c2c_message(
            openid="user-seed", msg_type=0, content="message 2", msg_id=first["id"], msg_seq=2
        )
    failed = await bot.last_outbound("c2c", "user-seed")
    assert failed["code"] == 40034024
    # The inbound id is still a good anchor.
    assert (await message.reply(msg_type=0, content="message 2", msg_seq=3))["id"].startswith("ROBOT1.0_")


async def test_botpy_receives_and_answers_a_group_at_message(bot: BotHarness) -> None:
    injected = await bot.control(
        "/_sim/groups/group-botpy/messages", {"member_openid": "member-7", "content": "/ping", "at_bot": True}
    )
    message = await bot.next_message()
    assert isinstance(message, GroupMessage)
    assert message.id == injected["msg_id"]
    assert message.group_openid == "group-botpy"
    assert message.author.member_openid == "member-7"
    assert message.content.strip() == "/ping"

    reply = await message.reply(msg_type=0, content="pong", msg_seq=1)
    assert reply["id"].startswith("ROBOT1.0_")
    sent = await bot.last_outbound("group", "group-botpy")
    assert sent["code"] == 0 and sent["content"] == "pong" and sent["msg_id"] == message.id


async def test_botpy_resumes_after_a_4009_close_and_gets_what_it_missed(bot: BotHarness) -> None:
    (before,) = (await bot.gateway())["sessions"]
    closed = await bot.control("/_sim/faults", {"kind": "close", "code": 4009})
    assert closed["closed"] == 1
    injected = await bot.control("/_sim/c2c/user-resume/messages", {"content": "while you were away"})
    message = await bot.next_message()
    assert message.id == injected["msg_id"]
    (after,) = (await bot.gateway())["sessions"]
    assert after["session_id"] == before["session_id"]  # resumed, not a new identify
    assert after["online"] is True
