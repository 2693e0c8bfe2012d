"""The gateway client against `herald sim` over real sockets: every scene arrives, in order, once,
through closes, op 7, socket cuts, dead sockets, expired tokens and redeliveries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from herald.core import InboundMessage, Interaction, RelationEvent, RelationKind, VirtualClock
from herald.qq.api import QQApi
from herald.qq.auth import TokenManager
from herald.qq.gateway import GatewayClient, GatewayError
from herald.qq.inbound import BUG_ATTEMPTS, InboundPipeline
from herald.sim.app import RunningSim
from tests.sim_control import SimControl

WAIT_S = 20.0  # a safety limit against hangs, never a timing assertion
ALL_INTENTS = (1 << 25) | (1 << 26) | (1 << 30) | (1 << 12) | (1 << 9)
Collector = Any
Proxy = Any


@asynccontextmanager
async def running(
    api: QQApi,
    tokens: TokenManager,
    sink: Collector,
    *,
    intents: int = ALL_INTENTS,
    url: str | None = None,
    close_timeout_s: float = 5.0,
) -> AsyncIterator[tuple[GatewayClient, InboundPipeline]]:
    pipeline = InboundPipeline(api, sink)
    gateway = GatewayClient(
        api,
        tokens,
        intents,
        (0, 1),
        pipeline.handle_dispatch,
        url=url,
        backoff_base_s=0.02,
        close_timeout_s=close_timeout_s,
        order_key=pipeline.order_key,  # as the adapter wires it: conversations stored at once
    )
    task = asyncio.create_task(gateway.run())
    try:
        async with asyncio.timeout(WAIT_S):
            await gateway.wait_ready()
        yield gateway, pipeline
    finally:
        await gateway.stop()
        async with asyncio.timeout(WAIT_S):
            await task


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 (polls a counter owned by the client)
            await asyncio.sleep(0.01)


def contents(events: list[Any]) -> list[str]:
    return [e.content for e in events if isinstance(e, InboundMessage)]


async def test_every_scene_and_event_kind_arrives_in_order(
    sink: Collector, api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    async with running(api, tokens, sink):
        c2c = await control.c2c("u1", "private hello")
        grp = await control.group("g1", "m1", "group hello")
        await control.group("g1", "m2", "not at bot", at_bot=False)
        ch = await control.channel("c1", "4194304", "guser", "channel hello")
        dm = await control.dm("dmguild1", "guser", "dm hello")
        friend = await control.event("FRIEND_ADD", {"timestamp": 1700000000, "openid": "u1"})
        await control.event("C2C_MSG_REJECT", {"timestamp": 1700000001, "openid": "u1"})
        added = await control.event(
            "GROUP_ADD_ROBOT", {"timestamp": 1700000002, "group_openid": "g2", "op_member_openid": "m9"}
        )
        await control.event(
            "INTERACTION_CREATE",
            {
                "id": "interaction-1",
                "type": 11,
                "scene": "group",
                "chat_type": 1,
                "group_openid": "g1",
                "group_member_openid": "m1",
                "data": {"type": 11, "resolved": {"button_id": "b1", "button_data": "yes"}},
            },
        )
        events = await sink.wait_for(9)

    c2c_msg, grp_msg, full_msg, ch_msg, dm_msg, fr, rej, add, inter = events
    assert isinstance(c2c_msg, InboundMessage) and c2c_msg.target.key == "c2c:u1"
    assert (c2c_msg.message_id, c2c_msg.content, c2c_msg.author_id) == (c2c["msg_id"], "private hello", "u1")
    assert isinstance(grp_msg, InboundMessage) and grp_msg.target.key == "group:g1"
    assert (grp_msg.message_id, grp_msg.author_id, grp_msg.mentions_bot) == (grp["msg_id"], "m1", True)
    assert isinstance(full_msg, InboundMessage) and not full_msg.mentions_bot
    assert isinstance(ch_msg, InboundMessage) and ch_msg.target.key == "channel:c1"
    assert (ch_msg.message_id, ch_msg.guild_id, ch_msg.content) == (ch["msg_id"], "4194304", "channel hello")
    assert isinstance(dm_msg, InboundMessage) and dm_msg.target.key == "dm:dmguild1"
    assert dm_msg.message_id == dm["msg_id"]
    # Messages are anchored by msg_id, not by event id.
    assert all(m.event_id is None for m in (c2c_msg, grp_msg, full_msg, ch_msg, dm_msg))
    assert isinstance(fr, RelationEvent) and (fr.kind, fr.event_id) == (RelationKind.FRIEND_ADDED, friend)
    assert isinstance(rej, RelationEvent) and (rej.kind, rej.event_id) == (
        RelationKind.PROACTIVE_REFUSED,
        None,
    )
    assert isinstance(add, RelationEvent) and (add.kind, add.target.key, add.event_id, add.operator_id) == (
        RelationKind.BOT_ADDED,
        "group:g2",
        added,
        "m9",
    )
    assert isinstance(inter, Interaction) and inter.target == inter.target.parse("group:g1")
    assert (inter.interaction_id, inter.button_id, inter.button_data, inter.user_id) == (
        "interaction-1",
        "b1",
        "yes",
        "m1",
    )
    acks = [r for r in await control.requests() if r.get("path") == "/interactions/interaction-1"]
    assert len(acks) == 1 and acks[0].get("method") == "PUT"


async def talk(control: SimControl, round_no: int) -> list[str]:
    said = [f"r{round_no} u{i}" for i in range(3)]
    for i, text in enumerate(said):
        if i == 1:
            await control.group("g1", "m1", text)
        else:
            await control.c2c(f"u{i}", text)
    return said


async def test_close_4009_every_30s_for_5_virtual_minutes_loses_and_repeats_nothing(
    sink: Collector, api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    expected: list[str] = []
    async with running(api, tokens, sink) as (gateway, _):
        for round_no in range(10):  # 10 x 30 s of virtual time
            expected += await talk(control, round_no)
            await control.fault(kind="close", code=4009)
            expected += await talk(control, round_no + 100)  # while the client is away
            await control.advance(30)
        await sink.wait_for(len(expected))
        await until(lambda: gateway.ready.is_set())
        assert gateway.identifies == 1
        assert gateway.resumes >= 1
    got = contents(sink.events)
    assert sorted(got) == sorted(expected)  # nothing lost, nothing twice
    # In order per conversation: different conversations are stored at once (`order_key`), so
    # their events may interleave differently from the order they were sent in.
    for user in ("u0", "u1", "u2"):
        assert [t for t in got if t.endswith(user)] == [t for t in expected if t.endswith(user)]


async def test_op7_reconnect_resumes_without_loss(
    sink: Collector, api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    async with running(api, tokens, sink) as (gateway, _):
        said = await talk(control, 1)
        await control.fault(kind="reconnect")
        said += await talk(control, 2)
        await sink.wait_for(len(said))
        assert gateway.identifies == 1 and gateway.resumes >= 1
    assert contents(sink.events) == said


async def test_socket_cut_without_close_frame_resumes(
    sink: Collector, sim: RunningSim, api: QQApi, tokens: TokenManager, control: SimControl, proxy: Proxy
) -> None:
    url = f"ws://127.0.0.1:{proxy.port}/websocket/"
    async with running(api, tokens, sink, url=url) as (gateway, _):
        said = await talk(control, 1)
        await sink.wait_for(len(said))
        proxy.cut()
        said += await talk(control, 2)
        await sink.wait_for(len(said))
        assert proxy.connections >= 2
        assert gateway.identifies == 1 and gateway.resumes >= 1
    assert contents(sink.events) == said


async def test_unanswered_heartbeat_means_a_dead_socket(
    sink: Collector, sim: RunningSim, api: QQApi, tokens: TokenManager, control: SimControl, proxy: Proxy
) -> None:
    await control.settings(heartbeat_interval_ms=200)
    url = f"ws://127.0.0.1:{proxy.port}/websocket/"
    async with running(api, tokens, sink, url=url, close_timeout_s=0.2) as (gateway, _):
        said = await talk(control, 1)
        await sink.wait_for(len(said))
        proxy.freeze()  # the socket stays open but nothing comes back: only a missed ACK shows it
        said += await talk(control, 2)
        await sink.wait_for(len(said))
        assert proxy.connections >= 2 and gateway.identifies == 1
    assert contents(sink.events) == said


async def test_all_tokens_expired_mid_session(
    sink: Collector, api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    async with running(api, tokens, sink) as (gateway, _):
        said = await talk(control, 1)
        await control.fault(kind="expire_tokens")
        await control.fault(kind="close", code=4009)  # the resume must carry a fresh token
        said += await talk(control, 2)
        await sink.wait_for(len(said))
        # REST also recovers: 401 → refresh once → retry once.
        answer = await api.me()
        assert answer["id"]
        assert tokens.fetches >= 2
        # The resume with the stale token got 4004; a fresh token resumed the same session.
        assert (gateway.last_close_code, gateway.identifies) == (4004, 1)
    assert contents(sink.events) == said


async def test_redelivered_event_is_handled_once(
    sink: Collector, api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    async with running(api, tokens, sink) as (_, pipeline):
        await control.c2c("u1", "once")
        await control.fault(kind="redeliver_last")
        await control.c2c("u1", "twice")
        await sink.wait_for(2)
        await until(lambda: pipeline.duplicates == 1)
    assert contents(sink.events) == ["once", "twice"]


async def test_invalid_session_reidentifies(
    sink: Collector, api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    async with running(api, tokens, sink) as (gateway, _):
        await control.fault(kind="close", code=4006)
        await until(lambda: gateway.identifies == 2 and gateway.ready.is_set())
        said = await talk(control, 1)
        await sink.wait_for(len(said))
    assert contents(sink.events) == said


async def run_until_error(api: QQApi, tokens: TokenManager, intents: int) -> GatewayError:
    gateway = GatewayClient(api, tokens, intents, (0, 1), None, backoff_base_s=0.02)
    with pytest.raises(GatewayError) as info:
        async with asyncio.timeout(WAIT_S):
            await gateway.run()
    return info.value


async def test_intent_not_permitted_stops_with_the_intents_named(
    api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    await control.settings(intents_allowed=(1 << 25) | (1 << 26))
    error = await run_until_error(api, tokens, (1 << 25) | (1 << 30))
    assert error.code == 4014
    assert "PUBLIC_GUILD_MESSAGES" in error.message and "GROUP_AND_C2C_EVENT" in error.message


async def test_banned_bot_stops(api: QQApi, tokens: TokenManager, control: SimControl) -> None:
    await control.call("PUT", "/_sim/gateway", {"refusal_code": 4915})
    error = await run_until_error(api, tokens, 1 << 25)
    assert error.code == 4915 and "banned" in error.message


async def test_dispatch_handler_failure_does_not_stop_the_stream(
    sink: Collector, api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    """A handler that raises means "not stored": the event is asked for again (resume from the
    last handled `s`); a bug that fails it every time gives it up after BUG_ATTEMPTS, loudly."""
    tries: list[str] = []

    async def flaky(event: Any) -> None:
        if isinstance(event, InboundMessage) and event.content == "boom":
            tries.append(event.content)
            raise RuntimeError("handler bug")
        await sink(event)

    handler: Callable[[Any], Awaitable[None]] = flaky
    pipeline = InboundPipeline(api, handler)
    gateway = GatewayClient(api, tokens, ALL_INTENTS, (0, 1), pipeline.handle_dispatch, backoff_base_s=0.02)
    task = asyncio.create_task(gateway.run())
    try:
        async with asyncio.timeout(WAIT_S):
            await gateway.wait_ready()
        await control.c2c("u1", "boom")
        await control.c2c("u1", "after")
        await sink.wait_for(1)
    finally:
        await gateway.stop()
        await task
    assert contents(sink.events) == ["after"]
    assert len(tries) == BUG_ATTEMPTS


async def test_conversations_are_stored_at_once_but_a_failure_keeps_its_conversation_in_order(
    sink: Collector, api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    """With `order_key` (as the adapter wires it) another conversation is stored while one event
    waits; when that event fails, the later event of its conversation is not stored before it, and
    the replay stores it once, in order, without storing the other conversation's event twice."""
    failures = 1
    clients: list[GatewayClient] = []  # the one `running` starts
    received = 0

    async def flaky(event: Any) -> None:
        nonlocal failures
        if isinstance(event, InboundMessage) and event.content == "first" and failures:
            # All three are received, and the later two handed over, before this one fails.
            await until(lambda: clients[0].seq >= received + 3)
            failures -= 1
            raise OSError("the disk is full")  # storage unavailable: asked for again
        await sink(event)

    async with running(api, tokens, flaky) as (gateway, _):
        clients.append(gateway)
        received = gateway.seq
        await control.c2c("u1", "first")
        await control.c2c("u2", "other")
        await control.c2c("u1", "second")
        await sink.wait_for(3)
    by = {
        user: [e.content for e in sink.events if isinstance(e, InboundMessage) and e.author_id == user]
        for user in ("u1", "u2")
    }
    assert by == {"u1": ["first", "second"], "u2": ["other"]}
    assert contents(sink.events)[0] == "other"  # stored while "first" waited, not after it
    assert gateway.store_failures == 1


async def test_a_virtual_clock_neither_stalls_reconnects_nor_floods_heartbeats(
    sink: Collector, api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    """Herald's app hands its VirtualClock to the gateway: hours of virtual time must not look like
    missed heartbeats, and a reconnect must not wait for someone to advance the clock."""
    clock = VirtualClock()
    await control.settings(heartbeat_interval_ms=300)
    pipeline = InboundPipeline(api, sink)
    gateway = GatewayClient(
        api, tokens, ALL_INTENTS, (0, 1), pipeline.handle_dispatch, clock, backoff_base_s=0.05
    )
    task = asyncio.create_task(gateway.run())
    try:
        async with asyncio.timeout(WAIT_S):
            await gateway.wait_ready()
        said = await talk(control, 1)
        await clock.advance(6 * 3600, settle=0.01)
        said += await talk(control, 2)
        await sink.wait_for(len(said))
        assert gateway.connections == 1
        await control.fault(kind="close", code=4009)  # the clock is never advanced again
        said += await talk(control, 3)
        await sink.wait_for(len(said))
        assert (gateway.identifies, gateway.connections) == (1, 2)
    finally:
        await gateway.stop()
        await task
    assert contents(sink.events) == said


async def test_shards_identify_in_buckets_and_each_gets_its_guilds(
    api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    """Two shards of one bot: shard 1 waits its turn to identify (`max_concurrency` 1 per 5 s),
    then each gets the guild events its shard formula gives it, and private chats go to shard 0."""
    from tests.qq.conftest import Collector as Sink

    await control.settings(gateway_shards=2, gateway_max_concurrency=1)
    clock = VirtualClock()
    sinks = [Sink(), Sink()]
    clients = [
        GatewayClient(api, tokens, ALL_INTENTS, (i, 2), InboundPipeline(api, sinks[i]).handle_dispatch, clock)
        for i in range(2)
    ]
    assert [client.identify_delay_s() for client in clients] == [0.0, 0.0]  # before /gateway/bot
    tasks = [asyncio.create_task(client.run()) for client in clients]
    try:
        async with asyncio.timeout(WAIT_S):
            await clients[0].wait_ready()
            await until(lambda: clients[1].start_limit != {})
        assert clients[1].recommended_shards == 2
        await clock.advance(5)
        async with asyncio.timeout(WAIT_S):
            await clients[1].wait_ready()
        # Guild ids whose shard is 0 and 1: (id >> 22) % 2.
        await control.channel("chan-even", str(2 << 22), "u1", "to shard 0")
        await control.channel("chan-odd", str(3 << 22), "u2", "to shard 1")
        await control.c2c("someone", "private")
        await sinks[0].wait_for(2)
        await sinks[1].wait_for(1)
        assert sorted(contents(sinks[0].events)) == ["private", "to shard 0"]
        assert contents(sinks[1].events) == ["to shard 1"]
        assert [client.identifies for client in clients] == [1, 1]
        assert [client.identify_waits for client in clients] == [[], [5.0]]
    finally:
        for client in clients:
            await client.stop()
        async with asyncio.timeout(WAIT_S):
            await asyncio.gather(*tasks)
