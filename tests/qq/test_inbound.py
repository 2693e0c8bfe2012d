"""The inbound pipeline: parse → drop redeliveries → acknowledge interactions → hand on, in order."""

from __future__ import annotations

from typing import Any

import pytest

from herald.core import InboundEvent, InboundMessage, Interaction, InteractionAnswer
from herald.qq.api import QQApi
from herald.qq.inbound import InboundPipeline
from tests.sim_control import SimControl

Collector = Any


def c2c(n: int, envelope: str | None = None, msg_id: str | None = None) -> dict[str, Any]:
    return {
        "op": 0,
        "s": n,
        "t": "C2C_MESSAGE_CREATE",
        "id": envelope or f"C2C_MESSAGE_CREATE:{n}",
        "d": {"id": msg_id or f"ROBOT1.0_{n}", "author": {"user_openid": "u1"}, "content": f"m{n}"},
    }


def texts(events: list[InboundEvent]) -> list[str]:
    return [e.content for e in events if isinstance(e, InboundMessage)]


async def test_redeliveries_are_dropped_by_envelope_or_message_id(sink: Collector) -> None:
    pipeline = InboundPipeline(None, sink)
    await pipeline.handle_dispatch(c2c(1))
    await pipeline.handle_dispatch(c2c(1))  # same envelope
    await pipeline.handle_dispatch(
        c2c(2, envelope="C2C_MESSAGE_CREATE:other", msg_id="ROBOT1.0_1")
    )  # same d.id
    await pipeline.handle_dispatch(c2c(3))
    await pipeline.handle_dispatch({"op": 0, "t": "GUILD_CREATE", "id": "GUILD_CREATE:1", "d": {}})
    assert texts(sink.events) == ["m1", "m3"]
    assert (pipeline.duplicates, pipeline.ignored) == (2, 1)


async def test_memory_is_bounded(sink: Collector) -> None:
    pipeline = InboundPipeline(None, sink, seen_limit=4)
    for n in range(1, 6):
        await pipeline.handle_dispatch(c2c(n))
    assert len(pipeline.seen) == 4
    await pipeline.handle_dispatch(c2c(1))  # long forgotten: handled again
    await pipeline.handle_dispatch(c2c(5))  # still remembered
    assert texts(sink.events) == ["m1", "m2", "m3", "m4", "m5", "m1"]


async def test_a_failed_handler_leaves_the_event_unseen(sink: Collector) -> None:
    calls = 0

    async def fails_once(event: InboundEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store unavailable")
        await sink(event)

    pipeline = InboundPipeline(None, fails_once)
    with pytest.raises(RuntimeError):
        await pipeline.handle_dispatch(c2c(1))
    await pipeline.handle_dispatch(c2c(1))  # the platform redelivers: this time it is handled
    assert texts(sink.events) == ["m1"]


async def test_interactions_are_acknowledged_once_after_their_handler_decided(
    api: QQApi, control: SimControl, sink: Collector
) -> None:
    d = {"id": "btn-1", "type": 11, "scene": "c2c", "chat_type": 2, "user_openid": "u1", "data": {"type": 11}}
    envelope_id = await control.event("INTERACTION_CREATE", d)
    acks_during: list[int] = []

    async def on_event(event: InboundEvent) -> None:
        log = await control.requests()
        acks_during.extend(r["status"] for r in log if r["path"] == "/interactions/btn-1")
        await sink(event)
        assert isinstance(event, Interaction)
        await pipeline.acknowledge(event, InteractionAnswer.NO_PERMISSION)

    pipeline = InboundPipeline(api, on_event)
    envelope = {"op": 0, "s": 1, "t": "INTERACTION_CREATE", "id": envelope_id, "d": d}
    await pipeline.handle_dispatch(envelope)
    await pipeline.handle_dispatch(envelope)  # redelivered: neither acknowledged nor handled again
    assert acks_during == []  # not before the handler decided
    acks = [r for r in await control.requests() if r["path"] == "/interactions/btn-1"]
    assert [r["status"] for r in acks] == [204]  # once: the handler's answer, not a second OK
    assert (await control.call("GET", "/_sim/interactions/btn-1"))["code"] == InteractionAnswer.NO_PERMISSION
    (event,) = sink.events
    assert isinstance(event, Interaction) and event.event_id == envelope_id
    # An interaction the platform does not know cannot be acknowledged; it is still handled.
    unknown = {**envelope, "id": "INTERACTION_CREATE:zz", "d": {**d, "id": "btn-unknown"}}
    await pipeline.handle_dispatch(unknown)
    assert len(sink.events) == 2
