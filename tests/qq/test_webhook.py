"""The webhook receiver: the official signing vectors, the sim's signed pushes arriving as core
events in order, and rejection of forged, tampered, stale, malformed and oversized requests."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import uvicorn
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.types import ASGIApp

from herald.core import InboundMessage, Interaction, RelationEvent
from herald.qq.api import QQApi
from herald.qq.inbound import InboundPipeline
from herald.qq.webhook import Signer, WebhookReceiver, seed_from_secret
from herald.sim.app import RunningSim
from tests.sim_control import SimControl

WAIT_S = 20.0  # a safety limit against hangs, never a timing assertion
Collector = Any


@asynccontextmanager
async def serve_app(app: ASGIApp) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(WAIT_S):
        while not server.started:  # noqa: ASYNC110 (uvicorn exposes only a flag)
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await task
        sock.close()


def test_official_signing_vectors() -> None:
    signer = Signer("DG5g3B4j9X2KOErG")
    assert signer.validation_signature("1725442341", "Arq0D5A61EgUu4OxUvOp") == (
        "87befc99c42c651b3aac0278e71ada338433ae26fcb24307bdc5ad38c1adc2d0"
        "1bcfcadc0842edac85e85205028a1132afe09280305f13aa6909ffc2d652c706"
    )
    assert seed_from_secret("naOC0ocQE3shWLAfffVLB1rhYPG7") == b"naOC0ocQE3shWLAfffVLB1rhYPG7naOC"
    public = Signer("naOC0ocQE3shWLAfffVLB1rhYPG7").public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert public.hex() == "d7c362fe78aef81ff23287b493628b5db02a3c4fe30b215e4d19609b5d76673a"
    assert "naOC" not in repr(Signer("naOC0ocQE3shWLAfffVLB1rhYPG7"))


async def test_sim_pushes_arrive_in_order_once(
    sim: RunningSim, api: QQApi, control: SimControl, sink: Collector
) -> None:
    s = sim.state.settings
    pipeline = InboundPipeline(api, sink)
    receiver = WebhookReceiver(s.app_id, s.secret, pipeline.handle_dispatch)
    async with serve_app(receiver.app) as url:
        await control.settings(webhook_url=url)
        await control.c2c("u1", "private hello")
        await control.group("g1", "m1", "group hello")
        await control.channel("c1", "4194304", "guser", "channel hello")
        await control.dm("dmguild1", "guser", "dm hello")
        await control.event(
            "GROUP_MSG_RECEIVE", {"timestamp": 1, "group_openid": "g1", "op_member_openid": "m1"}
        )
        await control.event(
            "INTERACTION_CREATE",
            {
                "id": "i-9",
                "type": 11,
                "scene": "c2c",
                "chat_type": 2,
                "user_openid": "u1",
                "data": {"type": 11},
            },
        )
        await control.c2c("u1", "last")
        await control.fault(kind="redeliver_last")
        await control.c2c("u1", "after redelivery")
        events = await sink.wait_for(8)
        async with asyncio.timeout(WAIT_S):
            while pipeline.duplicates < 1:  # noqa: ASYNC110 (a counter of the pipeline)
                await asyncio.sleep(0.01)
        await receiver.close()
        status = await control.call("GET", "/_sim/webhook")
    assert status["validation"]["status"] == "ok"
    assert receiver.validations >= 1 and receiver.rejected == 0
    messages = [e.content for e in events if isinstance(e, InboundMessage)]
    assert messages == [
        "private hello",
        "group hello",
        "channel hello",
        "dm hello",
        "last",
        "after redelivery",
    ]
    assert [type(e) for e in events[4:6]] == [RelationEvent, Interaction]
    assert [e.target.key for e in events[:4]] == ["c2c:u1", "group:g1", "channel:c1", "dm:dmguild1"]
    assert len(events) == 8


class Pushes:
    """Builds requests the way the platform signs them, and variations that must be refused."""

    def __init__(self, secret: str) -> None:
        self.signer = Signer(secret)

    def headers(self, body: bytes, ts: str | None = None, signer: Signer | None = None) -> dict[str, str]:
        ts = ts or str(int(time.time()))
        return {
            "Content-Type": "application/json",
            "X-Signature-Timestamp": ts,
            "X-Signature-Ed25519": (signer or self.signer).sign(ts.encode() + body),
        }


def envelope(n: int) -> bytes:
    d = {"id": f"ROBOT1.0_m{n}", "author": {"user_openid": "u1"}, "content": f"m{n}"}
    return json.dumps(
        {"op": 0, "s": n, "t": "C2C_MESSAGE_CREATE", "id": f"C2C_MESSAGE_CREATE:{n}", "d": d}
    ).encode()


async def test_forged_tampered_stale_malformed_and_oversized_requests_are_refused(
    http: aiohttp.ClientSession, sink: Collector
) -> None:
    secret = "test-secret-abc"
    pipeline = InboundPipeline(None, sink)
    receiver = WebhookReceiver("1", secret, pipeline.handle_dispatch, max_age_s=60, max_body=4096)
    pushes = Pushes(secret)
    async with serve_app(receiver.app) as url:

        async def post(body: bytes, headers: dict[str, str]) -> int:
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

        good = envelope(1)
        good_headers = pushes.headers(good)
        tampered = good.replace(b"m1", b"m2")
        stale_ts = str(int(time.time()) - 3600)
        statuses = {
            "unsigned": await post(good, {"Content-Type": "application/json"}),
            "forged": await post(good, pushes.headers(good, signer=Signer("someone-else"))),
            "tampered": await post(tampered, good_headers),
            "replayed, new timestamp": await post(good, {**good_headers, "X-Signature-Timestamp": "1"}),
            "signature not hex": await post(good, {**good_headers, "X-Signature-Ed25519": "zz" * 64}),
            "stale": await post(good, pushes.headers(good, ts=stale_ts)),
            # A token that is not a plain token would make the answer a signature over JSON.
            "unsigned op 13, JSON token": await post(
                json.dumps({"op": 13, "d": {"plain_token": '{"op":0}', "event_ts": "1"}}).encode(), {}
            ),
            "malformed, signed": await post(b"{not json", pushes.headers(b"{not json")),
            "no op, signed": await post(b'{"d": {}}', pushes.headers(b'{"d": {}}')),
            "oversized": await post(b"x" * 5000, pushes.headers(b"x" * 5000)),
        }
        assert statuses == {
            "unsigned": 401,
            "forged": 401,
            "tampered": 401,
            "replayed, new timestamp": 401,
            "signature not hex": 401,
            "stale": 401,
            "unsigned op 13, JSON token": 401,
            "malformed, signed": 400,
            "no op, signed": 400,
            "oversized": 413,
        }
        assert await post(good, good_headers) == 200
        await receiver.drain()
    assert [e.message_id for e in sink.events if isinstance(e, InboundMessage)] == ["ROBOT1.0_m1"]
    assert receiver.rejected == len(statuses)


async def test_an_unsigned_validation_with_a_plain_token_is_answered(
    http: aiohttp.ClientSession, sink: Collector
) -> None:
    receiver = WebhookReceiver("11111111", "DG5g3B4j9X2KOErG", InboundPipeline(None, sink).handle_dispatch)
    body = json.dumps({"d": {"plain_token": "Arq0D5A61EgUu4OxUvOp", "event_ts": "1725442341"}, "op": 13})
    async with serve_app(receiver.app) as url, http.post(url, data=body.encode()) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["signature"].startswith("87befc99c42c651b")


async def test_validation_answer_is_signed_with_the_bot_key(
    http: aiohttp.ClientSession, sink: Collector
) -> None:
    secret = "DG5g3B4j9X2KOErG"
    receiver = WebhookReceiver(
        "11111111", secret, InboundPipeline(None, sink).handle_dispatch, max_age_s=None
    )
    body = json.dumps(
        {"d": {"plain_token": "Arq0D5A61EgUu4OxUvOp", "event_ts": "1725442341"}, "op": 13}
    ).encode()
    async with (
        serve_app(receiver.app) as url,
        http.post(url, data=body, headers=Pushes(secret).headers(body)) as r,
    ):
        answer = await r.json()
    assert answer["plain_token"] == "Arq0D5A61EgUu4OxUvOp"
    assert answer["signature"].startswith("87befc99c42c651b")


async def test_deep_nesting_and_non_finite_timestamps_are_refused_cleanly(
    http: aiohttp.ClientSession, sink: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    """`'[' * 100000` used to escape as a RecursionError (HTTP 500 and a traceback per request);
    an `inf` timestamp answered 500 and a `nan` one passed the freshness check."""
    secret = "test-secret-abc"
    receiver = WebhookReceiver("1", secret, InboundPipeline(None, sink).handle_dispatch, max_age_s=60)
    pushes = Pushes(secret)
    deep = b"[" * 100_000
    async with serve_app(receiver.app) as url:

        async def post(body: bytes, headers: dict[str, str]) -> int:
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

        good = envelope(1)
        statuses = {
            "deep, unsigned": await post(deep, {"Content-Type": "application/json"}),
            "deep, signed": await post(deep, pushes.headers(deep)),
            "inf": await post(good, pushes.headers(good, ts="inf")),
            "-inf": await post(good, pushes.headers(good, ts="-inf")),
            "nan": await post(good, pushes.headers(good, ts="nan")),
            "1e999": await post(good, pushes.headers(good, ts="1e999")),
        }
        assert statuses == {
            "deep, unsigned": 400,
            "deep, signed": 400,
            "inf": 401,
            "-inf": 401,
            "nan": 401,
            "1e999": 401,
        }
        await receiver.drain()
    assert sink.events == []
    assert not [r for r in caplog.records if r.exc_info], "a rejection logged a traceback"


async def test_a_push_that_is_not_stored_is_answered_503_and_stored_on_redelivery_in_order(
    sim: RunningSim, api: QQApi, control: SimControl, sink: Collector
) -> None:
    """The receiver used to answer 200 at once: a push whose storing failed was lost. Now it gets
    503, the platform redelivers it, and the pushes after it wait for it (order holds)."""
    failures = ["m2"]

    async def storing(event: Any) -> None:
        if isinstance(event, InboundMessage) and event.content in failures:
            failures.remove(event.content)
            raise OSError(28, "No space left on device")
        await sink(event)

    s = sim.state.settings
    receiver = WebhookReceiver(s.app_id, s.secret, InboundPipeline(api, storing).handle_dispatch)
    async with serve_app(receiver.app) as url:
        await control.settings(webhook_url=url)
        for content in ("m1", "m2", "m3", "m4"):
            await control.c2c("u1", content)
        await sink.wait_for(4)
        log = (await control.call("GET", "/_sim/webhook"))["deliveries"]
    assert [e.content for e in sink.events if isinstance(e, InboundMessage)] == ["m1", "m2", "m3", "m4"]
    assert receiver.refused >= 1
    m2 = [entry for entry in log if entry["t"] == "C2C_MESSAGE_CREATE"][1]
    assert m2["status"] == "acked" and m2["attempts"] >= 2, m2
