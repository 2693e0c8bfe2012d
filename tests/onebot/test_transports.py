"""The three OneBot transports against the OneBot emulator over real sockets: each carries events in
and sends out the same way, and each refuses (and reports) wrong credentials. Plus what does not
depend on the transport but needs actions beyond sending: requests answered as configured, quoted
messages looked up with `get_msg`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from herald.config import OneBotConfig
from herald.core.errors import DeliveryError, ErrorKind
from herald.core.events import ContactRequest, InboundEvent, InboundMessage, RequestKind
from herald.core.segments import Text
from herald.core.target import Scene, Target
from herald.onebot import OneBotPlatform
from herald.serving import serve
from herald.sim.onebot import OneBotSimSettings, serve_onebot
from herald.store import Database
from tests.onebot.test_platform import WAIT_S, Side, request, until
from tests.sim_control import free_port

TRANSPORTS = ("reverse-ws", "forward-ws", "http")
SECRET = "post-secret"


@contextlib.asynccontextmanager
async def linked(
    db_url: str,
    transport: str,
    *,
    herald_token: str = "sim-token",
    herald_secret: str = SECRET,
    **settings: Any,
) -> AsyncIterator[Side]:
    """Herald's OneBot platform linked to the emulator by `transport` (the emulator's token is
    "sim-token" and, over HTTP, it signs its event POSTs with SECRET)."""
    db = Database(db_url)
    await db.migrate()
    async with serve_onebot(OneBotSimSettings()) as sim, aiohttp.ClientSession() as http:
        token = SecretStr(herald_token)
        if transport == "reverse-ws":
            config = OneBotConfig(port=0, access_token=token, **settings)
        elif transport == "forward-ws":
            config = OneBotConfig(
                transport="forward-ws", url=f"ws://{sim.host}:{sim.port}/", access_token=token, **settings
            )
        else:
            config = OneBotConfig(
                transport="http", url=sim.base_url, port=0, access_token=token,
                secret=SecretStr(herald_secret), **settings,
            )  # fmt: skip
        platform = OneBotPlatform(config, db)
        s = Side(sim, platform, http)
        await platform.start(s.sink)
        try:
            async with serve(platform.endpoints()):  # as the app serves them
                if transport == "reverse-ws":
                    sim.connect_to(platform.connection.url)
                elif transport == "http":
                    post = {"url": platform.connection.url, "secret": SECRET}
                    await s.control("POST", "/_sim/onebot/post", post)
                yield s
        finally:
            await platform.stop()
            await db.dispose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_each_transport_carries_messages_both_ways(db_url: str, transport: str) -> None:
    async with linked(db_url, transport) as s:
        async with asyncio.timeout(WAIT_S):
            await s.platform.wait_ready()
        health = s.platform.health()
        assert health.ready
        assert health.transport == {"reverse-ws": "reverse-websocket", "forward-ws": "forward-websocket"}.get(
            transport, transport
        )
        await s.control("POST", "/_sim/onebot/groups/30001/messages", {"user_id": 20002, "message": "hi all"})
        (message,) = await s.until_events(1)
        assert isinstance(message, InboundMessage)
        # The account's id is known on every transport, so an @ of it counts as addressed.
        assert (message.target.key, message.content, message.mentions_bot) == (
            "onebot:group:30001",
            "hi all",
            True,
        )

        sent = await s.platform.send(request(Target(Scene.GROUP, "30001", "onebot"), Text("hello group")))
        (entry,) = await s.sent("group", "30001")
    assert entry["text"] == "hello group" and entry["status"] == "ok"
    assert sent.platform_ids == (str(entry["message_id"]),) and sent.route == "send_group_msg"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_wrong_access_token_is_refused_and_reported(db_url: str, transport: str) -> None:
    async with linked(db_url, transport, herald_token="not-the-token") as s:
        await until(lambda: s.platform.connection.refused >= 1)
        health = s.platform.health()
        with pytest.raises(DeliveryError) as raised:
            await s.platform.send(request(Target(Scene.C2C, "20001", "onebot"), Text("lost?")))
        assert await s.sent("private", "20001") == []
    assert not health.ready
    assert "access token" in health.detail and "[onebot] access_token" in health.detail
    # Nothing reached the implementation: the outbox tries again (once the token is fixed).
    assert raised.value.kind is ErrorKind.RETRY_LATER


async def test_an_event_post_with_a_forged_signature_is_refused(db_url: str) -> None:
    async with linked(db_url, "http") as s:
        await s.platform.wait_ready()
        body = json.dumps({"post_type": "message", "message_type": "private", "user_id": 666, "message_id": 1,
                           "message": "forged", "self_id": 10001, "time": 0}).encode()  # fmt: skip
        forged = "sha1=" + hmac.new(b"guessed", body, hashlib.sha1).hexdigest()
        headers = {"Content-Type": "application/json", "X-Signature": forged}
        async with s.http.post(s.platform.connection.url, data=body, headers=headers) as resp:
            assert resp.status == 403
        unsigned_headers = {"Content-Type": "application/json"}
        async with s.http.post(s.platform.connection.url, data=body, headers=unsigned_headers) as resp:
            assert resp.status == 403
        # The emulator's own, correctly signed, POST still gets through.
        await s.control("POST", "/_sim/onebot/private/20001/messages", {"message": "genuine"})
        (message,) = await s.until_events(1)
    assert isinstance(message, InboundMessage) and message.content == "genuine"
    assert s.platform.connection.refused == 2
    assert "X-Signature" in s.platform.connection.last_refusal


@pytest.mark.parametrize(("policy", "approved"), [("accept", True), ("refuse", False), ("leave", None)])
async def test_friend_requests_are_answered_as_configured(
    db_url: str, policy: str, approved: bool | None
) -> None:
    async with linked(db_url, "reverse-ws", friend_requests=policy) as s:
        await s.platform.wait_ready()
        await s.control(
            "POST",
            "/_sim/onebot/requests",
            {"request_type": "friend", "user_id": 20042, "comment": "加个好友"},
        )
        # Events are handled one after the other, a request's answer included: once the next
        # message arrived, the request was answered or left.
        await s.control("POST", "/_sim/onebot/private/20001/messages", {"message": "next"})
        event, _ = await s.until_events(2)
        answers = [
            r for r in (await s.control("GET", "/_sim/onebot/requests"))["requests"] if r.get("answered")
        ]
    assert isinstance(event, ContactRequest)
    assert (event.kind, event.user_id, event.comment) == (RequestKind.FRIEND, "20042", "加个好友")
    assert event.target == Target(Scene.C2C, "20042", "onebot")
    assert [answer["approve"] for answer in answers] == ([approved] if approved is not None else [])


async def test_a_quoted_message_herald_never_saw_is_looked_up(db_url: str) -> None:
    async with linked(db_url, "reverse-ws") as s:
        await s.platform.wait_ready()
        first = await s.control("POST", "/_sim/onebot/private/20001/messages", {"message": "the original"})
        await s.control(
            "POST",
            "/_sim/onebot/private/20001/messages",
            {"message": [{"type": "reply", "data": {"id": str(first["message_id"])}},
                         {"type": "text", "data": {"text": "what about this?"}}]},
        )  # fmt: skip
        _, quoting = await s.until_events(2)
    assert isinstance(quoting, InboundMessage)
    assert quoting.quotes == str(first["message_id"])
    assert (quoting.quoted_author, quoting.quoted_text) == ("20001", "the original")


@pytest.mark.parametrize("transport", ["reverse-ws", "forward-ws"])
async def test_a_dropped_websocket_comes_back_and_carries_on(db_url: str, transport: str) -> None:
    async with linked(db_url, transport) as s:
        await s.platform.wait_ready()
        await s.control("POST", "/_sim/onebot/faults", {"drop": True})
        await until(lambda: s.platform.connection.connections >= 2 and s.platform.health().ready)
        await s.control("POST", "/_sim/onebot/private/20001/messages", {"message": "after the drop"})
        (message,) = await s.until_events(1)
        await s.platform.send(request(Target(Scene.C2C, "20001", "onebot"), Text("still here")))
        (entry,) = await s.sent("private", "20001")
    assert isinstance(message, InboundMessage) and message.content == "after the drop"
    assert entry["text"] == "still here"


async def nowhere(event: InboundEvent) -> None:
    raise AssertionError(f"no event expected, got {event!r}")


async def test_an_unreachable_implementation_is_reported(db_url: str) -> None:
    db = Database(db_url)
    await db.migrate()
    config = OneBotConfig(transport="forward-ws", url=f"ws://127.0.0.1:{free_port()}/")
    platform = OneBotPlatform(config, db)
    try:
        await platform.start(nowhere)
        await until(lambda: "cannot connect" in platform.health().detail)
        with pytest.raises(DeliveryError) as raised:
            await platform.send(request(Target(Scene.C2C, "20001", "onebot"), Text("later")))
    finally:
        await platform.stop()
        await db.dispose()
    assert raised.value.kind is ErrorKind.RETRY_LATER
