"""`[telemetry]`: one trace per turn reaches an OTLP/HTTP collector (a real HTTP server here,
decoding the protobuf a collector gets): the turn, its model requests, each tool call, and each
delivery under the call or turn that enqueued it, with its route and msg_seq."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from herald.config import HeraldConfig
from tests.app.herald_harness import harness


@asynccontextmanager
async def collector() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    spans: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
                    spans.append(
                        {
                            "name": span.name,
                            "trace": span.trace_id.hex(),
                            "id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "service": service,
                            "attributes": attributes,
                        }
                    )
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1/traces", spans
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_turn_is_one_trace_from_message_to_deliveries(db_url: str) -> None:
    async with collector() as (endpoint, spans):

        def configure(config: HeraldConfig) -> None:
            config.telemetry.otlp_endpoint = endpoint
            config.telemetry.service_name = "herald-test"

        async with harness(db_url, configure=configure) as h:
            await h.user_says("traced", "请向我连续发送3条测试消息")
            await h.wait_delivered("c2c", "traced", 4)
            await h.idle()
        # Herald's stop flushed the spans to the collector.

    turns = [s for s in spans if s["name"] == "herald.turn"]
    assert len(turns) == 1
    turn = turns[0]
    assert turn["attributes"]["herald.conversation"] == "c2c:traced"
    in_trace = [s for s in spans if s["trace"] == turn["trace"]]
    by_id = {s["id"]: s for s in in_trace}
    models = [s for s in in_trace if s["name"].startswith("chat ")]
    tools = [s for s in in_trace if s["name"] == "herald.tool send_message_to_user"]
    deliveries = [s for s in in_trace if s["name"] == "herald.delivery"]
    assert len(models) == 2  # the request that called the tools, and the one that answered
    assert all(s["parent"] == turn["id"] for s in [*models, *tools])
    assert len(tools) == 3 and len(deliveries) == 4
    assert [d["attributes"]["herald.route"] for d in deliveries] == ["passive"] * 4
    assert sorted(d["attributes"]["herald.msg_seq"] for d in deliveries) == ["1", "2", "3", "4"]
    # Each tool's send is delivered under that tool call; the final answer under the turn.
    parents = sorted(by_id[d["parent"]]["name"] for d in deliveries)
    assert parents == ["herald.tool send_message_to_user"] * 3 + ["herald.turn"]
    assert {s["service"] for s in spans} == {"herald-test"}
    # Off by default: no user text in any span.
    assert not any("测试消息" in str(s["attributes"]) for s in spans)


def test_tracing_without_the_sdk_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from herald.config import ConfigError, TelemetryConfig
    from herald.telemetry import start_tracing

    # What importing a package that is not installed does: the `otel` extra left out.
    for name in ("opentelemetry.sdk", "opentelemetry.sdk.trace", "opentelemetry.sdk.resources"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match=r"pip install 'herald\[otel\]'"):
        start_tracing(TelemetryConfig(otlp_endpoint="http://127.0.0.1:4318/v1/traces"))
