"""The WebSocket gateway over a real socket (rules 6-15 and 79; docs/sim.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings

C2C = 1 << 25
PUBLIC_GUILD = 1 << 30
INTERACTION = 1 << 26
WAIT = 5.0  # a ceiling for a frame that must come, not a timing assertion


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with serve(SimSettings(port=0)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), WAIT)
    assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data, ws.close_code)
    frame: dict[str, Any] = json.loads(message.data)
    return frame


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Reads until the server closes the socket; returns the close code."""
    while True:
        message = await asyncio.wait_for(ws.receive(), WAIT)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code
        assert message.type == aiohttp.WSMsgType.TEXT, message


def token(sim: RunningSim) -> str:
    return "QQBot " + sim.state.issue_token().value


async def hello(
    http: aiohttp.ClientSession, sim: RunningSim, path: str = "/websocket/"
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"ws://{sim.host}:{sim.port}{path}")
    frame = await recv(ws)
    assert frame["op"] == 10
    return ws


async def identify(
    http: aiohttp.ClientSession, sim: RunningSim, intents: int = C2C, shard: list[int] | None = None
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await hello(http, sim)
    await ws.send_json({"op": 2, "d": {"token": token(sim), "intents": intents, "shard": shard or [0, 1]}})
    ready = await recv(ws)
    assert ready["t"] == "READY", ready
    return ws, ready


async def resume(
    http: aiohttp.ClientSession, sim: RunningSim, session_id: str, seq: int
) -> aiohttp.ClientWebSocketResponse:
    ws = await hello(http, sim)
    await ws.send_json({"op": 6, "d": {"token": token(sim), "session_id": session_id, "seq": seq}})
    return ws


@pytest.mark.parametrize("path", ["/websocket/", "/websocket"])
async def test_hello_comes_first_with_the_heartbeat_interval(http: aiohttp.ClientSession, path: str) -> None:
    async with serve(SimSettings(port=0, heartbeat_interval_ms=41_250)) as sim:
        ws = await http.ws_connect(f"ws://{sim.host}:{sim.port}{path}")
        assert await recv(ws) == {"op": 10, "d": {"heartbeat_interval": 41_250}}
        await ws.close()


async def test_identify_gets_ready_with_session_user_and_shard(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    ws, ready = await identify(http, sim, shard=[0, 1])
    assert ready["op"] == 0 and ready["s"] == 1
    d = ready["d"]
    assert d["version"] == 1
    assert isinstance(d["session_id"], str) and d["session_id"]
    assert d["user"]["id"] == sim.state.settings.bot_id
    assert d["user"]["username"] == sim.state.settings.bot_name
    assert d["user"]["bot"] is True
    assert d["shard"] == [0, 1]
    await ws.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"op":1,"d":null}', 4001),  # a heartbeat before identify
        ('{"op":5,"d":{}}', 4001),  # no such opcode
        ("not json", 4002),
        ('{"d":{}}', 4002),  # no op
        ('{"op":2,"d":"token"}', 4002),  # identify without an object
    ],
)
async def test_anything_but_identify_or_resume_before_auth_closes(
    sim: RunningSim, http: aiohttp.ClientSession, frame: str, code: int
) -> None:
    ws = await hello(http, sim)
    await ws.send_str(frame)
    assert await closed_with(ws) == code


@pytest.mark.parametrize("kind", ["wrong", "no-prefix", "legacy-bot", "expired"])
async def test_identify_with_a_bad_token_closes_4004(
    sim: RunningSim, http: aiohttp.ClientSession, kind: str
) -> None:
    good = sim.state.issue_token().value
    bad = {
        "wrong": "QQBot not-a-token",
        "no-prefix": good,
        "legacy-bot": f"Bot {sim.state.settings.app_id}.{good}",
        "expired": "QQBot " + good,
    }[kind]
    if kind == "expired":
        sim.state.clock.advance(sim.state.settings.token_ttl_s + 1)
    ws = await hello(http, sim)
    await ws.send_json({"op": 2, "d": {"token": bad, "intents": C2C, "shard": [0, 1]}})
    assert await closed_with(ws) == 4004


@pytest.mark.parametrize(
    ("intents", "code"),
    [(C2C | (1 << 3), 4013), (C2C | (1 << 9), 4014), (C2C | (1 << 28), 4014), (-1, 4013)],
)
async def test_intents_outside_the_allowed_set_are_refused(
    sim: RunningSim, http: aiohttp.ClientSession, intents: int, code: int
) -> None:
    # GUILD_MESSAGES and FORUMS_EVENT are documented, but only private-domain bots get them.
    assert not sim.state.settings.intents_allowed & ((1 << 9) | (1 << 28))
    ws = await hello(http, sim)
    await ws.send_json({"op": 2, "d": {"token": token(sim), "intents": intents, "shard": [0, 1]}})
    assert await closed_with(ws) == code


# What unmodified clients identify with when nothing is configured: NoneBot's QQ adapter (GUILDS,
# GUILD_MEMBERS, GUILD_MESSAGE_REACTIONS, MESSAGE_AUDIT, PUBLIC_GUILD_MESSAGES), and every public intent.
NONEBOT_DEFAULT = (1 << 0) | (1 << 1) | (1 << 10) | (1 << 27) | (1 << 30)
EVERY_PUBLIC = NONEBOT_DEFAULT | (1 << 12) | (1 << 18) | (1 << 19) | (1 << 25) | (1 << 26) | (1 << 29)


@pytest.mark.parametrize("intents", [NONEBOT_DEFAULT, EVERY_PUBLIC])
async def test_an_ordinary_bot_may_subscribe_to_every_public_intent(
    sim: RunningSim, http: aiohttp.ClientSession, intents: int
) -> None:
    ws, ready = await identify(http, sim, intents=intents)
    assert ready["d"]["session_id"]
    await ws.close()


async def test_private_intents_are_granted_when_configured(http: aiohttp.ClientSession) -> None:
    private = (1 << 9) | (1 << 24) | (1 << 28)
    async with serve(SimSettings(port=0, intents_allowed=EVERY_PUBLIC | private)) as sim:
        ws, ready = await identify(http, sim, intents=C2C | private)
        assert ready["d"]["session_id"]
        await ws.close()


async def test_an_impossible_shard_closes_4010(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    ws = await hello(http, sim)
    await ws.send_json({"op": 2, "d": {"token": token(sim), "intents": C2C, "shard": [1, 1]}})
    assert await closed_with(ws) == 4010


async def test_every_heartbeat_is_acked_in_either_form(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    ws, _ = await identify(http, sim)
    await ws.send_json({"op": 1, "d": 1})
    assert await recv(ws) == {"op": 11}
    await ws.send_json({"op": 1, "s": 1})  # Koishi puts the seq in `s`
    assert await recv(ws) == {"op": 11}
    await ws.send_json({"op": 1, "d": None})
    assert await recv(ws) == {"op": 11}
    await ws.close()


async def test_dispatches_are_numbered_per_session_and_carry_the_event_id(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    ws, _ = await identify(http, sim)
    injected = [sim.inject.c2c("user-1", f"hello {n}") for n in range(3)]
    frames = [await recv(ws) for _ in injected]
    assert [f["s"] for f in frames] == [2, 3, 4]
    for frame, inj in zip(frames, injected, strict=True):
        assert frame["op"] == 0 and frame["t"] == "C2C_MESSAGE_CREATE"
        assert frame["id"] == inj.event_id and frame["id"].startswith("C2C_MESSAGE_CREATE:")
        assert frame["d"]["id"] == inj.msg_id
    assert [f["d"]["content"] for f in frames] == ["hello 0", "hello 1", "hello 2"]

    # A second session numbers its own frames from its own READY.
    other, _ = await identify(http, sim)
    sim.inject.c2c("user-1", "to both")
    assert (await recv(ws))["s"] == 5
    assert (await recv(other))["s"] == 2
    await ws.close()
    await other.close()


async def test_delivery_follows_the_subscribed_intents(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    guild_only, _ = await identify(http, sim, intents=PUBLIC_GUILD)
    c2c_only, _ = await identify(http, sim, intents=C2C)
    sim.inject.c2c("user-1", "private")
    sim.inject.group("group-1", "member-1", "in a group", at_bot=True)
    sim.state.bus.publish("INTERACTION_CREATE", {"id": "i-1", "scene": "c2c", "chat_type": 2}, at=0.0)
    sim.inject.channel("channel-1", "1234", "guild-user", "hi bot")

    # The guild-only session's first frame is the channel @: nothing it didn't subscribe to came before.
    first = await recv(guild_only)
    assert first["t"] == "AT_MESSAGE_CREATE" and first["s"] == 2
    assert [(await recv(c2c_only))["t"] for _ in range(2)] == [
        "C2C_MESSAGE_CREATE",
        "GROUP_AT_MESSAGE_CREATE",
    ]

    interactions, _ = await identify(http, sim, intents=INTERACTION)
    sim.state.bus.publish("INTERACTION_CREATE", {"id": "i-2", "scene": "c2c", "chat_type": 2}, at=0.0)
    got = await recv(interactions)
    assert got["t"] == "INTERACTION_CREATE" and got["d"]["id"] == "i-2"
    for ws in (guild_only, c2c_only, interactions):
        await ws.close()


async def test_resume_after_socket_loss_replays_missed_dispatches_in_order(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    ws, ready = await identify(http, sim)
    session_id = ready["d"]["session_id"]
    sim.inject.c2c("user-1", "seen")
    seen = await recv(ws)
    await ws.close()  # the client drops; no close code from the server
    missed = [sim.inject.c2c("user-1", f"missed {n}") for n in range(3)]

    again = await resume(http, sim, session_id, seen["s"])
    replay = [await recv(again) for _ in missed]
    assert [f["d"]["id"] for f in replay] == [m.msg_id for m in missed]
    assert [f["s"] for f in replay] == [seen["s"] + 1, seen["s"] + 2, seen["s"] + 3]
    resumed = await recv(again)
    assert resumed["op"] == 0 and resumed["t"] == "RESUMED" and resumed["d"] == ""

    after = sim.inject.c2c("user-1", "after resume")
    frame = await recv(again)
    assert frame["d"]["id"] == after.msg_id and frame["s"] > resumed["s"]
    await again.close()


async def test_resume_with_an_older_seq_replays_frames_the_client_never_read(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    ws, ready = await identify(http, sim)
    sent = [sim.inject.c2c("user-1", f"m{n}") for n in range(2)]
    await ws.close()  # both frames may have been written, but the client processed only READY
    again = await resume(http, sim, ready["d"]["session_id"], ready["s"])
    assert [(await recv(again))["d"]["id"] for _ in sent] == [m.msg_id for m in sent]
    assert (await recv(again))["t"] == "RESUMED"
    await again.close()


@pytest.mark.parametrize("code", [4008, 4009])
async def test_resume_succeeds_after_a_resumable_close(
    sim: RunningSim, http: aiohttp.ClientSession, code: int
) -> None:
    ws, ready = await identify(http, sim)
    assert await sim.state.bus.close_sessions(code) == 1
    assert await closed_with(ws) == code
    missed = sim.inject.c2c("user-1", "while closed")
    again = await resume(http, sim, ready["d"]["session_id"], ready["s"])
    assert (await recv(again))["d"]["id"] == missed.msg_id
    assert (await recv(again))["t"] == "RESUMED"
    await again.close()


@pytest.mark.parametrize("code", [4006, 4007, 4900, 4001])
async def test_resume_fails_after_any_other_close(
    sim: RunningSim, http: aiohttp.ClientSession, code: int
) -> None:
    ws, ready = await identify(http, sim)
    await sim.state.bus.close_sessions(code)
    assert await closed_with(ws) == code
    again = await resume(http, sim, ready["d"]["session_id"], ready["s"])
    assert await recv(again) == {"op": 9, "d": False}
    assert await closed_with(again) == 4006
    # A fresh identify still works: these codes allow a new session.
    fresh, _ = await identify(http, sim)
    await fresh.close()


async def test_resume_of_an_unknown_session_is_an_invalid_session(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    ws = await resume(http, sim, "no-such-session", 1)
    assert await recv(ws) == {"op": 9, "d": False}
    assert await closed_with(ws) == 4006


async def test_resume_with_a_seq_from_the_future_closes_4007(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    ws, ready = await identify(http, sim)
    await ws.close()
    again = await resume(http, sim, ready["d"]["session_id"], 99)
    assert await closed_with(again) == 4007


async def test_op7_on_demand_then_resume_replays(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    ws, ready = await identify(http, sim)
    assert await sim.state.bus.request_reconnect() == 1
    assert await recv(ws) == {"op": 7}
    assert await closed_with(ws) == 4009
    missed = sim.inject.c2c("user-1", "during reconnect")
    again = await resume(http, sim, ready["d"]["session_id"], ready["s"])
    assert (await recv(again))["d"]["id"] == missed.msg_id
    assert (await recv(again))["t"] == "RESUMED"
    await again.close()


async def test_missing_heartbeats_close_4009_and_the_session_resumes() -> None:
    async with serve(SimSettings(port=0, heartbeat_interval_ms=200)) as sim, aiohttp.ClientSession() as http:
        ws, ready = await identify(http, sim)
        assert await closed_with(ws) == 4009  # no heartbeat sent at all
        again = await resume(http, sim, ready["d"]["session_id"], ready["s"])
        assert (await recv(again))["t"] == "RESUMED"
        await again.close()


async def test_heartbeats_keep_the_socket_open() -> None:
    async with serve(SimSettings(port=0, heartbeat_interval_ms=200)) as sim, aiohttp.ClientSession() as http:
        ws, _ = await identify(http, sim)
        for _ in range(5):  # 5 x 100 ms is well past 1.5 x 200 ms without a heartbeat
            await asyncio.sleep(0.1)
            await ws.send_json({"op": 1, "d": 1})
            assert await recv(ws) == {"op": 11}
        assert not ws.closed
        await ws.close()


@pytest.mark.parametrize("code", [4914, 4915])
async def test_a_taken_down_or_banned_bot_cannot_identify(
    sim: RunningSim, http: aiohttp.ClientSession, code: int
) -> None:
    ws, ready = await identify(http, sim)
    await sim.state.bus.close_sessions(code)
    assert await closed_with(ws) == code
    again = await hello(http, sim)
    await again.send_json({"op": 2, "d": {"token": token(sim), "intents": C2C, "shard": [0, 1]}})
    assert await closed_with(again) == code
    resumed = await resume(http, sim, ready["d"]["session_id"], ready["s"])
    assert await closed_with(resumed) == code

    # Clearing the switch lets the bot back in.
    async with http.put(f"{sim.base_url}/_sim/gateway", json={"refusal_code": None}) as response:
        assert response.status == 200
    fresh, _ = await identify(http, sim)
    await fresh.close()


async def test_the_platform_may_push_the_same_message_twice(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    ws, _ = await identify(http, sim)
    injected = sim.inject.c2c("user-1", "once")
    first = await recv(ws)
    assert sim.state.bus.redeliver_last() is not None
    second = await recv(ws)
    assert second["id"] == first["id"] == injected.event_id
    assert second["d"] == first["d"]
    assert second["s"] == first["s"] + 1
    await ws.close()


async def test_gateway_status_lists_sessions_and_online(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    assert not sim.state.bus.online()
    ws, ready = await identify(http, sim)
    assert sim.state.bus.online()
    async with http.get(f"{sim.base_url}/_sim/gateway") as response:
        status = await response.json()
    (session,) = status["sessions"]
    assert session["session_id"] == ready["d"]["session_id"] and session["online"] is True
    await ws.close()
    await _until(lambda: not sim.state.bus.online())


async def test_a_burst_arrives_complete_and_in_order(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    ws, _ = await identify(http, sim)
    sent = [sim.inject.c2c(f"user-{n % 7}", f"burst {n}") for n in range(2000)]
    got = [await recv(ws) for _ in sent]
    assert [f["d"]["id"] for f in got] == [m.msg_id for m in sent]
    assert [f["s"] for f in got] == list(range(2, 2002))
    await ws.close()


async def _until(predicate: Any) -> None:
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


async def test_a_second_identify_on_an_authenticated_socket_closes_4002(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    ws, _ = await identify(http, sim)
    await ws.send_json({"op": 2, "d": {"token": token(sim), "intents": C2C, "shard": [0, 1]}})
    assert await closed_with(ws) == 4002


async def test_a_socket_that_never_identifies_is_closed_4009() -> None:
    async with serve(SimSettings(port=0, heartbeat_interval_ms=200)) as sim, aiohttp.ClientSession() as http:
        ws = await hello(http, sim)
        assert await closed_with(ws) == 4009


async def test_a_lone_surrogate_is_sent_as_a_json_escape_and_the_transcript_still_answers(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    """A lone surrogate used to kill the session's writer silently (no UTF-8 encoding exists) and
    make `/_sim/transcript` answer 500. It travels as the JSON escape `\\ud800` (docs/sim.md)."""
    ws, _ = await identify(http, sim)
    content = "bad \ud800 text"
    # The control API takes JSON; `\ud800` is how such a string can reach it.
    body = json.dumps({"content": content}).encode()
    url = f"{sim.base_url}/_sim/c2c/u-surrogate/messages"
    async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 200
    message = await asyncio.wait_for(ws.receive(), WAIT)
    assert message.type == aiohttp.WSMsgType.TEXT, (message.type, ws.close_code)
    assert "\\ud800" in message.data
    assert json.loads(message.data)["d"]["content"] == content
    # The socket still works: the next message arrives too.
    async with http.post(url, json={"content": "next"}) as r:
        assert r.status == 200
    assert (await recv(ws))["d"]["content"] == "next"
    async with http.get(f"{sim.base_url}/_sim/transcript?scene=c2c&target=u-surrogate") as r:
        assert r.status == 200
        raw = await r.read()
    assert [e["content"] for e in json.loads(raw)["entries"]] == [content, "next"]
    await ws.close()
