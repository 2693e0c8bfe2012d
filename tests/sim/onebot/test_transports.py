"""The OneBot emulator's own servers, spoken to as a bot would over real sockets: the forward
WebSocket (`/`, `/api`, `/event`), the HTTP API (`/<action>`) with its status codes and access
token, HTTP POST of events (signed, failures counted), requests, `get_msg` and heartbeats."""

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
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from herald.sim.onebot import OneBotSimSettings, RunningOneBotSim, serve_onebot
from tests.sim_control import free_port

WAIT_S = 30.0
TOKEN = "sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.asynccontextmanager
async def emulator(**settings: Any) -> AsyncIterator[tuple[RunningOneBotSim, aiohttp.ClientSession]]:
    async with serve_onebot(OneBotSimSettings(**settings)) as sim, aiohttp.ClientSession() as http:
        yield sim, http


async def control(http: aiohttp.ClientSession, sim: RunningOneBotSim, path: str, body: Any = None) -> Any:
    async with http.post(sim.base_url + path, json=body) as response:
        answer = await response.json()
        assert response.status == 200, answer
        return answer


async def next_json(socket: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        frame = await socket.receive()
    assert frame.type is aiohttp.WSMsgType.TEXT, frame
    payload = json.loads(frame.data)
    assert isinstance(payload, dict)
    return payload


async def test_the_forward_websocket_pushes_events_and_answers_actions() -> None:
    async with emulator() as (sim, http):
        ws = f"ws://{sim.host}:{sim.port}"
        async with (
            http.ws_connect(ws + "/", headers=AUTH) as universal,
            http.ws_connect(ws + "/event", headers=AUTH) as events,
            http.ws_connect(ws + "/api", headers=AUTH) as api,
        ):
            assert (await next_json(universal))["meta_event_type"] == "lifecycle"
            assert (await next_json(events))["sub_type"] == "connect"
            injected = await control(http, sim, "/_sim/onebot/private/20001/messages", {"message": "hi"})
            for socket in (universal, events):  # both take events; /api does not
                event = await next_json(socket)
                assert (event["post_type"], event["message_id"]) == ("message", injected["message_id"])
            await api.send_json({"action": "send_private_msg", "params": {"user_id": 20001, "message": "yo"},
                                 "echo": {"n": 1}})  # fmt: skip
            answer = await next_json(api)
            await universal.send_json({"action": "get_login_info", "echo": "me"})
            login = await next_json(universal)
    assert (answer["status"], answer["retcode"], answer["echo"]) == ("ok", 0, {"n": 1})
    assert login["data"]["user_id"] == 10001 and login["echo"] == "me"
    assert [e["text"] for e in sim.account.sent_to("private", "20001")] == ["yo"]


REFUSALS = [({}, "", 401), ({"Authorization": "Bearer nope"}, "", 403), ({}, f"?access_token={TOKEN}", 101)]


@pytest.mark.parametrize(("headers", "query", "status"), REFUSALS)
async def test_the_forward_websocket_asks_for_the_access_token(
    headers: dict[str, str], query: str, status: int
) -> None:
    async with emulator() as (sim, http):
        url = f"ws://{sim.host}:{sim.port}/{query}"
        if status == 101:
            async with http.ws_connect(url, headers=headers) as socket:
                assert (await next_json(socket))["meta_event_type"] == "lifecycle"
        else:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url, headers=headers)
            assert refused.value.status == status


async def test_the_http_api_takes_json_forms_and_queries_with_the_spec_status_codes() -> None:
    async with emulator() as (sim, http):
        api = sim.base_url

        async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            async with http.request(method, api + path, **kwargs) as response:
                body = await response.read()
                return response.status, json.loads(body) if body else None

        as_json = await call(
            "POST", "/send_private_msg", json={"user_id": 20001, "message": "json"}, headers=AUTH
        )
        as_form = await call(
            "POST", "/send_group_msg/", data={"group_id": "30001", "message": "form"}, headers=AUTH
        )
        as_query = await call("GET", f"/send_private_msg?user_id=20001&message=query&access_token={TOKEN}")
        missing_token = await call("GET", "/get_login_info")
        wrong_token = await call("GET", "/get_login_info", headers={"Authorization": "Bearer nope"})
        unknown = await call("GET", "/no_such_action", headers=AUTH)
        bad_body = await call(
            "POST",
            "/send_private_msg",
            data=b"{not json",
            headers={**AUTH, "Content-Type": "application/json"},
        )
        bad_type = await call(
            "POST", "/send_private_msg", data=b"<x/>", headers={**AUTH, "Content-Type": "text/xml"}
        )
        refused = await call("POST", "/send_private_msg", json={"message": "to nobody"}, headers=AUTH)
    assert as_json[0] == as_form[0] == as_query[0] == 200
    assert as_json[1]["status"] == "ok" and isinstance(as_json[1]["data"]["message_id"], int)
    assert [e["text"] for e in sim.account.sent_to("private", "20001")] == ["json", "query"]
    assert [e["text"] for e in sim.account.sent_to("group", "30001")] == ["form"]
    assert [s for s, _ in (missing_token, wrong_token, unknown, bad_body, bad_type)] == [
        401,
        403,
        404,
        400,
        406,
    ]
    assert refused[0] == 200 and (refused[1]["status"], refused[1]["retcode"]) == ("failed", 1400)


async def test_faults_apply_to_the_http_api() -> None:
    async with emulator() as (sim, http):
        await control(
            http, sim, "/_sim/onebot/faults", {"action": "send_private_msg", "retcode": 100, "times": 1}
        )
        answers = []
        for _ in range(2):
            async with http.post(
                sim.base_url + "/send_private_msg", json={"user_id": 20001, "message": "x"}, headers=AUTH
            ) as response:
                answers.append((await response.json())["retcode"])
    assert answers == [100, 0]
    assert [e["status"] for e in sim.account.sent_to("private", "20001")] == ["failed", "ok"]


@contextlib.asynccontextmanager
async def receiver(answer: Any = None) -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A bot's HTTP POST endpoint: records each POST's headers and body; answers `answer` (None: 204)."""
    got: list[tuple[dict[str, str], bytes]] = []

    async def post(request: Request) -> Response:
        got.append((dict(request.headers), await request.body()))
        return JSONResponse(answer) if answer is not None else Response(status_code=204)

    import uvicorn

    port = free_port()
    app = Starlette(routes=[Route("/", post, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT_S):
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/", got
    finally:
        server.should_exit = True
        await task


async def test_events_are_posted_signed_and_a_quick_reply_is_sent() -> None:
    async with emulator() as (sim, http), receiver({"reply": "quick &#91;ok&#93;"}) as (url, got):
        await control(http, sim, "/_sim/onebot/post", {"url": url, "secret": "s3cret"})
        injected = await control(
            http, sim, "/_sim/onebot/groups/30001/messages", {"user_id": 20002, "message": "hi"}
        )
    ((headers, body),) = got
    assert headers["x-self-id"] == "10001" and headers["content-type"] == "application/json"
    assert headers["x-signature"] == "sha1=" + hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()
    assert json.loads(body)["message_id"] == injected["message_id"]
    (reply,) = sim.account.sent_to("group", "30001")
    # A group reply @s its sender unless `at_sender` is false (event/message.md).
    assert reply["message"][0] == {"type": "at", "data": {"qq": "20002"}} and reply["text"] == " quick [ok]"


async def test_a_post_that_fails_is_told_and_counted() -> None:
    async with emulator() as (sim, http):
        await control(
            http, sim, "/_sim/onebot/post", {"url": f"http://127.0.0.1:{free_port()}/", "timeout_s": 2}
        )
        answer = await control(http, sim, "/_sim/onebot/private/20001/messages", {"message": "lost?"})
        async with http.get(sim.base_url + "/_sim/onebot/status") as response:
            status = await response.json()
    assert "POST to" in answer["post_error"]
    assert status["post_failures"] == 1 and status["last_post_error"] == answer["post_error"]


async def test_requests_are_pushed_and_answered_by_action() -> None:
    async with emulator() as (sim, http):
        async with http.ws_connect(f"ws://{sim.host}:{sim.port}/", headers=AUTH) as ws:
            await next_json(ws)  # lifecycle
            friend = await control(
                http,
                sim,
                "/_sim/onebot/requests",
                {"request_type": "friend", "user_id": 20042, "comment": "加我"},
            )
            invitation = {"request_type": "group", "sub_type": "invite", "user_id": 20043, "group_id": 30009}
            invite = await control(http, sim, "/_sim/onebot/requests", invitation)
            pushed = [await next_json(ws), await next_json(ws)]

            async def act(action: str, **params: Any) -> dict[str, Any]:
                await ws.send_json({"action": action, "params": params})
                return await next_json(ws)

            await act("set_friend_add_request", flag=friend["flag"], approve=True, remark="老朋友")
            mismatched = await act(
                "set_group_add_request", flag=invite["flag"], sub_type="add", approve=False
            )
            await act("set_group_add_request", flag=invite["flag"], type="invite", approve=False, reason="no")
            async with http.get(sim.base_url + "/_sim/onebot/requests") as response:
                listed = (await response.json())["requests"]
    assert [(p["request_type"], p.get("sub_type"), p["flag"]) for p in pushed] == [
        ("friend", None, friend["flag"]), ("group", "invite", invite["flag"])
    ]  # fmt: skip
    assert pushed[0]["comment"] == "加我" and pushed[1]["group_id"] == 30009
    assert mismatched["retcode"] == 1400  # sub_type must match the request's (api/public.md)
    assert [(r["approve"], r["remark"], r["reason"]) for r in listed] == [
        (True, "老朋友", ""),
        (False, "", "no"),
    ]


async def test_get_msg_tells_received_and_sent_messages_and_delete_msg_recalls() -> None:
    async with emulator() as (sim, http), http.ws_connect(f"ws://{sim.host}:{sim.port}/event", headers=AUTH):
        received = await control(
            http, sim, "/_sim/onebot/groups/30001/messages", {"user_id": 20002, "message": "原文"}
        )

        async def act(action: str, **params: Any) -> Any:
            async with http.post(f"{sim.base_url}/{action}", json=params, headers=AUTH) as response:
                return await response.json()

        sent = (await act("send_private_msg", user_id=20001, message="mine"))["data"]["message_id"]
        got_received = (await act("get_msg", message_id=received["message_id"]))["data"]
        got_sent = (await act("get_msg", message_id=sent))["data"]
        missing = await act("get_msg", message_id=1)
        await act("delete_msg", message_id=sent)
        member = (await act("get_group_member_info", group_id=30001, user_id=20002))["data"]
    assert (got_received["message_type"], got_received["sender"]["user_id"]) == ("group", 20002)
    assert got_received["message"][-1] == {"type": "text", "data": {"text": "原文"}}
    assert (got_sent["sender"]["user_id"], got_sent["message"]) == (
        10001,
        [{"type": "text", "data": {"text": "mine"}}],
    )
    assert missing["status"] == "failed"
    assert [e["recalled"] for e in sim.account.sent_to("private", "20001")] == [True]
    assert member["role"] == "member"


async def test_heartbeats_reach_a_connected_bot() -> None:
    async with emulator(heartbeat_interval_s=0.05) as (sim, http):
        async with http.ws_connect(f"ws://{sim.host}:{sim.port}/event", headers=AUTH) as ws:
            await next_json(ws)  # lifecycle
            beat = await next_json(ws)
    assert (beat["meta_event_type"], beat["interval"], beat["status"]["online"]) == ("heartbeat", 50, True)
