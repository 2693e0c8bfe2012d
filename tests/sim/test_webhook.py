"""Webhook mode over real HTTP (rules 16-19 and 79; docs/sim.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from herald.sim import signing
from herald.sim.app import RunningSim, serve
from herald.sim.settings import SimSettings

SECRET = "webhook-test-secret"
WAIT = 5.0  # a ceiling for something that must happen, not a timing assertion


def test_validation_signature_matches_the_official_vector() -> None:
    signature = signing.validation_signature("DG5g3B4j9X2KOErG", "1725442341", "Arq0D5A61EgUu4OxUvOp")
    assert signature == (
        "87befc99c42c651b3aac0278e71ada338433ae26fcb24307bdc5ad38c1adc2d0"
        "1bcfcadc0842edac85e85205028a1132afe09280305f13aa6909ffc2d652c706"
    )


def test_seed_and_public_key_match_the_official_vector() -> None:
    assert signing.seed_from_secret("naOC0ocQE3shWLAfffVLB1rhYPG7") == b"naOC0ocQE3shWLAfffVLB1rhYPG7naOC"
    assert signing.public_key_hex("naOC0ocQE3shWLAfffVLB1rhYPG7") == (
        "d7c362fe78aef81ff23287b493628b5db02a3c4fe30b215e4d19609b5d76673a"
    )


@pytest.mark.parametrize(
    ("secret", "seed"),
    [
        ("abc", b"abcabcabcabcabcabcabcabcabcabcab"),  # doubled until >= 32, then cut
        ("x" * 40, b"x" * 32),  # longer secrets are simply truncated
    ],
)
def test_seed_derivation_repeats_then_truncates(secret: str, seed: bytes) -> None:
    assert signing.seed_from_secret(secret) == seed


def test_a_push_signature_covers_timestamp_then_body() -> None:
    body = b'{"op":0,"d":{},"t":"GATEWAY_EVENT_NAME"}'
    signature = signing.sign_push(SECRET, "1725442341", body)
    public = bytes.fromhex(signing.public_key_hex(SECRET))
    assert signing.verify(public, b"1725442341" + body, signature)
    assert not signing.verify(public, body + b"1725442341", signature)
    assert not signing.verify(public, b"1725442342" + body, signature)


@dataclass
class Receiver:
    """A bot's webhook endpoint: answers op 13 and records every push."""

    secret: str = SECRET
    pushes: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)
    # Called per push with its 0-based index; returns the HTTP status to answer (or sleeps).
    answer: Callable[[int], Any] | None = None
    wrong_signature: bool = False
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        payload = json.loads(raw)
        if payload.get("op") == 13:
            self.validations.append(payload)
            d = payload["d"]
            signature = signing.validation_signature(
                "not-" + self.secret if self.wrong_signature else self.secret, d["event_ts"], d["plain_token"]
            )
            return web.json_response({"plain_token": d["plain_token"], "signature": signature})
        index = len(self.pushes)
        self.pushes.append((dict(request.headers), raw))
        status = 200
        if self.answer is not None:
            result = self.answer(index)
            status = await result if asyncio.iscoroutine(result) else result
        return web.Response(status=status, text="" if status == 200 else "nope")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/qqbot", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/qqbot"
    yield rec
    await runner.cleanup()


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


async def status(sim: RunningSim) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.base_url}/_sim/webhook") as response:
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result


def settings(receiver: Receiver, **extra: Any) -> SimSettings:
    return SimSettings(port=0, secret=SECRET, webhook_url=receiver.url, **extra)


async def test_the_url_is_validated_with_op13_on_start(receiver: Receiver) -> None:
    async with serve(settings(receiver)) as sim:
        await until(lambda: sim.state.bus.online())
        (validation,) = receiver.validations
        assert set(validation) == {"op", "d"} and validation["op"] == 13
        assert set(validation["d"]) == {"plain_token", "event_ts"}
        assert isinstance(validation["d"]["event_ts"], str)  # a string, as documented
        report = await status(sim)
        assert report["validation"]["status"] == "ok"
        assert report["public_key"] == signing.public_key_hex(SECRET)


async def test_a_wrong_validation_answer_is_refused_and_nothing_is_pushed(receiver: Receiver) -> None:
    receiver.wrong_signature = True
    async with serve(settings(receiver)) as sim:
        await until(lambda: bool(receiver.validations))
        sim.inject.c2c("user-1", "lost")
        await until(lambda: len(sim_log(sim)) == 1)
        assert sim_log(sim)[0]["status"] == "skipped"
        report = await status(sim)
        assert report["validation"]["status"] == "failed"
        assert report["validation"]["error"] == "wrong signature"
        assert not sim.state.bus.online()
        assert receiver.pushes == []


def sim_log(sim: RunningSim) -> list[dict[str, Any]]:
    from herald.sim import webhook

    pusher = webhook.pusher_for(sim.state)
    assert pusher is not None
    deliveries: list[dict[str, Any]] = pusher.describe()["deliveries"]
    return deliveries


async def test_every_dispatch_is_pushed_signed_with_the_documented_headers(receiver: Receiver) -> None:
    async with serve(settings(receiver)) as sim:
        injected = [sim.inject.c2c("user-1", f"hi {n}") for n in range(3)]
        await until(lambda: len(receiver.pushes) == 3)
        public = bytes.fromhex(signing.public_key_hex(SECRET))
        for n, ((headers, raw), inj) in enumerate(zip(receiver.pushes, injected, strict=True)):
            assert headers["User-Agent"] == "QQBot-Callback"
            assert headers["X-Bot-Appid"] == sim.state.settings.app_id
            timestamp = headers["X-Signature-Timestamp"]
            assert timestamp.isdigit()
            assert signing.verify(public, timestamp.encode() + raw, headers["X-Signature-Ed25519"])
            envelope = json.loads(raw)
            assert envelope["op"] == 0 and envelope["t"] == "C2C_MESSAGE_CREATE"
            assert envelope["id"] == inj.event_id and envelope["d"]["id"] == inj.msg_id
            assert envelope["s"] == n + 1
            assert envelope["d"]["content"] == f"hi {n}"


async def test_a_non_200_answer_is_redelivered_with_the_same_envelope(receiver: Receiver) -> None:
    receiver.answer = lambda index: 500 if index == 0 else 200
    async with serve(settings(receiver)) as sim:
        injected = sim.inject.c2c("user-1", "again please")
        await until(lambda: len(receiver.pushes) == 2)
        (_, first), (_, second) = receiver.pushes
        assert first == second
        assert json.loads(first)["id"] == injected.event_id
        await until(lambda: sim_log(sim)[0]["status"] == "acked")
        assert sim_log(sim)[0]["attempts"] == 2


async def test_a_timeout_is_redelivered(receiver: Receiver) -> None:
    async def slow_first(index: int) -> int:
        if index == 0:
            await asyncio.sleep(1.0)
        return 200

    receiver.answer = slow_first
    async with serve(settings(receiver, webhook_timeout_s=0.2)) as sim:
        sim.inject.c2c("user-1", "slow")
        await until(lambda: len(receiver.pushes) == 2 and sim_log(sim)[0]["status"] == "acked")
        (_, first), (_, second) = receiver.pushes
        assert json.loads(first)["id"] == json.loads(second)["id"]


async def test_retries_are_bounded_and_can_be_switched_off(receiver: Receiver) -> None:
    receiver.answer = lambda index: 503
    async with serve(settings(receiver, webhook_redeliver=False)) as sim:
        sim.inject.c2c("user-1", "once only")
        await until(lambda: sim_log(sim) != [] and sim_log(sim)[0]["status"] == "failed")
        assert len(receiver.pushes) == 1
        assert sim_log(sim)[0]["http_status"] == 503


async def test_redelivery_gives_up_after_a_bounded_number_of_attempts(receiver: Receiver) -> None:
    from herald.sim import webhook

    receiver.answer = lambda index: 500
    async with serve(settings(receiver)) as sim:
        pusher = webhook.pusher_for(sim.state)
        assert pusher is not None
        pusher.retry_base_s = 0.01
        sim.inject.c2c("user-1", "never acked")
        await until(lambda: sim_log(sim) != [] and sim_log(sim)[0]["status"] == "failed")
        assert len(receiver.pushes) == webhook.MAX_ATTEMPTS
        assert len({raw for _, raw in receiver.pushes}) == 1


async def test_any_200_is_an_ack_whatever_the_body(receiver: Receiver) -> None:
    async with serve(settings(receiver)) as sim:
        sim.inject.c2c("user-1", "ack me")  # the receiver answers an empty 200
        await until(lambda: sim_log(sim) != [] and sim_log(sim)[0]["status"] == "acked")
        assert len(receiver.pushes) == 1


async def test_setting_the_url_at_run_time_validates_it(receiver: Receiver) -> None:
    async with serve(SimSettings(port=0, secret=SECRET)) as sim:
        assert not sim.state.bus.online()
        async with aiohttp.ClientSession() as http:
            put = await http.put(f"{sim.base_url}/_sim/settings", json={"webhook_url": receiver.url})
            assert put.status == 200
        await until(lambda: sim.state.bus.online())
        assert len(receiver.validations) == 1
        sim.inject.c2c("user-1", "now pushed")
        await until(lambda: len(receiver.pushes) == 1)


async def test_a_redelivered_message_keeps_its_id(receiver: Receiver) -> None:
    async with serve(settings(receiver)) as sim:
        injected = sim.inject.c2c("user-1", "twice")
        sim.state.bus.redeliver_last()
        await until(lambda: len(receiver.pushes) == 2)
        first, second = (json.loads(raw) for _, raw in receiver.pushes)
        assert first["id"] == second["id"] == injected.event_id
        assert first["d"] == second["d"]
        assert second["s"] == first["s"] + 1  # a new push, not a retry


async def test_validation_can_be_rerun_from_the_control_api(receiver: Receiver) -> None:
    async with serve(settings(receiver)) as sim:
        await until(lambda: sim.state.bus.online())
        async with aiohttp.ClientSession() as http, http.post(f"{sim.base_url}/_sim/webhook") as response:
            report = await response.json()
        assert report["validation"]["status"] == "ok"
        assert len(receiver.validations) == 2
        assert receiver.validations[0]["d"]["plain_token"] != receiver.validations[1]["d"]["plain_token"]
