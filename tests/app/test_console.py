"""`[console]`: `/metrics` (parsed by prometheus_client's own parser, its counters checked against
the emulator's transcript), `/healthz`, `/readyz` (ready while the gateway is connected and the
database answers), and a metrics token."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.routing import Route

from herald.config import HeraldConfig
from tests.app.console_browser import enable_console
from tests.app.herald_harness import WAIT_S, Harness, harness


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def get(h: Harness, path: str, **headers: str) -> tuple[int, str]:
    assert h.herald is not None and h.herald.console is not None
    async with (
        aiohttp.ClientSession() as http,
        http.get(h.herald.console.base_url + path, headers=headers) as r,
    ):
        return r.status, await r.text()


async def test_metrics_count_what_the_emulator_saw(db_url: str) -> None:
    async with harness(db_url, configure=enable_console) as h:
        await h.call(
            "POST", "/_sim/faults", {"kind": "fail_next", "count": 1, "status": 500, "code": 50055001}
        )
        await h.user_says("m1", "请向我连续发送3条测试消息")
        await h.wait_for_request_code(50055001)
        await h.advance_until_delivered("c2c", "m1", 4)  # the refused send's retry comes due
        await h.member_says("g1", "member-1", "hello group")
        await h.wait_delivered("group", "g1", 1)
        await h.idle()
        # The emulator has the messages before Herald has recorded their outcome (and the final
        # answer is nobody's receipt): scrape until every finished item is counted.
        async with asyncio.timeout(WAIT_S):
            while True:
                status, text = await get(h, "/metrics")
                delivered = sum(
                    v
                    for (name, labels), v in samples(text).items()
                    if name == "herald_deliveries_total" and ("outcome", "delivered") in labels
                )
                if delivered >= 5:  # the refused attempt's retry counts once it is delivered
                    break
                await asyncio.sleep(0.02)
        c2c = await h.delivered("c2c", "m1")
        group = await h.delivered("group", "g1")
        refused = [r for r in await h.requests() if r["code"] == 50055001]
    assert status == 200
    found = samples(text)

    def value(name: str, **labels: str) -> float:
        return found.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("herald_inbound_events_total", scene="c2c") == 1
    assert value("herald_inbound_events_total", scene="group") == 1
    passive_c2c = [e for e in c2c if e.get("msg_id")]
    assert (
        value("herald_deliveries_total", scene="c2c", route="passive", outcome="delivered")
        == len(passive_c2c)
        == 4
    )
    assert value("herald_deliveries_total", scene="group", route="passive", outcome="delivered") == len(group)
    assert value("herald_platform_errors_total", code="50055001") == len(refused) == 1
    assert value("herald_outbox_items", state="delivered") == 5
    assert value("herald_outbox_items", state="pending") == 0
    assert value("herald_turn_seconds_count") == 2
    assert value("herald_llm_tokens_total", kind="input") > 0
    assert ("herald_gateway_reconnects_total", ()) in found


async def test_health_and_readiness(db_url: str) -> None:
    async with harness(db_url, configure=enable_console) as h:
        healthy = await get(h, "/healthz")
        ready = await get(h, "/readyz")
        await h.call("POST", "/_sim/faults", {"kind": "close", "code": 4009})
        assert h.herald is not None and h.herald.platform is not None
        await h.herald.wait_ready()
    assert healthy[0] == 200
    assert ready[0] == 200 and '"status":"ready"' in ready[1] and "websocket" in ready[1]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_not_ready_names_the_cause(db_url: str) -> None:
    async with harness(db_url, configure=enable_console) as h:
        assert h.herald is not None and h.herald.platform is not None
        platform: Any = h.herald.platforms.members["qq"] if h.herald.platforms else None
        gateway = platform.gateway
        gateway.ready.clear()  # as while the socket is down, between reconnects
        status, body = await get(h, "/readyz")
        gateway.ready.set()
    assert status == 503 and "platform websocket not ready" in body


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_metrics_token_is_required_when_set(db_url: str) -> None:
    def configure(config: HeraldConfig) -> None:
        enable_console(config)
        config.console.metrics_token = SecretStr("scrape-me")

    async with harness(db_url, configure=configure) as h:
        refused = await get(h, "/metrics")
        allowed = await get(h, "/metrics", Authorization="Bearer scrape-me")
    assert refused[0] == 401 and "scrape-me" not in refused[1]
    assert allowed[0] == 200 and "herald_inbound_events_total" in allowed[1]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_nothing_but_the_probes_answers_without_a_session(db_url: str) -> None:
    """Every page and every change of the console, asked without a session or token, is sent to
    sign in (`/` first goes to the outbox page, which does)."""

    def outcome(response: aiohttp.ClientResponse) -> str:
        where = response.headers.get("location", "")
        return (
            "sign in"
            if response.status == 303 and where.startswith("/login")
            else f"{response.status} {where}"
        )

    async with harness(db_url, configure=enable_console) as h:
        assert h.herald is not None and h.herald.console is not None
        console = h.herald.console
        paths = {
            route.path.replace("{key:path}", "c2c:someone").replace("{id}", "job1")
            for route in console.app.routes
            if isinstance(route, Route)
        } - {"/", "/login", "/healthz", "/readyz", "/metrics"}
        answers: dict[str, str] = {}
        async with aiohttp.ClientSession() as http:
            for path in sorted(paths):
                for method in ("GET", "POST"):
                    async with http.request(method, console.base_url + path, allow_redirects=False) as r:
                        if r.status != 405:
                            answers[f"{method} {path}"] = outcome(r)
    assert len(answers) >= 18  # the pages, /live and every change
    assert {request: answer for request, answer in answers.items() if answer != "sign in"} == {}
