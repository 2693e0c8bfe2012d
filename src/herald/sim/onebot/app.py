"""The OneBot emulator's one HTTP server: the control API (under `/_sim/onebot/`) that tests and
people use to play the account's contacts; the implementation's own servers on the same port, a
forward WebSocket (`/`, `/api`, `/event`) and an HTTP API (`/<action>`); and, started with it, the
reverse-WebSocket connector, the HTTP POST of events and the heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from herald.sim.onebot import wire
from herald.sim.onebot.account import Account, Fault, Message, OneBotSimSettings
from herald.sim.onebot.account import Request as ContactRequest
from herald.sim.onebot.actions import Actions
from herald.sim.onebot.connector import Connector, answer_frame
from herald.sim.onebot.hub import Hub
from herald.sim.onebot.poster import Poster

__all__ = ["OneBotSimSettings", "RunningOneBotSim", "create_app", "serve_onebot"]


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ValueError("send a JSON object")
    return body


def token_status(expected: str, connection: HTTPConnection) -> int | None:
    """communication/authorization.md and http.md: None when the token is right, 401 when none
    was given, 403 when another was (a header `Authorization: Bearer`, or `?access_token=`)."""
    if not expected:
        return None
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        given = connection.query_params.get("access_token", "")
    if not given:
        return 401
    return None if hmac.compare_digest(given.encode(), expected.encode()) else 403


def create_app(account: Account, actions: Actions, hub: Hub, connector: Connector) -> Starlette:
    settings = account.settings

    async def push(event: dict[str, Any], answer: dict[str, Any]) -> JSONResponse:
        try:
            post_error = await hub.push(event)
        except ConnectionError as exc:
            return _error(str(exc), 409)
        if post_error is not None:
            answer["post_error"] = post_error
        return JSONResponse(answer)

    async def inject(request: Request, chat: str) -> JSONResponse:
        try:
            body = await _body(request)
            parts = wire.segments(body.get("message", ""))
        except ValueError as exc:
            return _error(str(exc))
        chat_id = request.path_params["chat_id"]
        user = str(body.get("user_id", chat_id if chat == "private" else "")) or ""
        if not user:
            return _error("user_id is missing: who in the group says it")
        if chat == "group" and body.get("at_bot", True):
            parts = [{"type": "at", "data": {"qq": str(settings.self_id)}}, *parts]
        message_id = account.new_message_id()
        nickname, role = str(body.get("nickname", f"user{user}")), str(body.get("role", "member"))
        event = wire.message_event(account, chat, chat_id, user, parts, message_id, nickname, role)
        account.messages[message_id] = Message(chat, chat_id, event["sender"], parts, event["time"])  # type: ignore[arg-type]
        if chat == "private":
            account.friends.setdefault(user, nickname)
        else:
            account.groups.setdefault(chat_id, {})[user] = role
        return await push(event, {"message_id": message_id})

    async def private(request: Request) -> JSONResponse:
        return await inject(request, "private")

    async def group(request: Request) -> JSONResponse:
        return await inject(request, "group")

    async def notice(request: Request) -> JSONResponse:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _error(str(exc))
        if not isinstance(body.get("notice_type"), str):
            return _error("notice_type is missing")
        return await push(wire.notice_event(account, body), {"ok": True})

    async def contact_request(request: Request) -> JSONResponse:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _error(str(exc))
        kind, sub_type = body.get("request_type"), str(body.get("sub_type", ""))
        if kind not in ("friend", "group") or body.get("user_id") is None:
            return _error('give request_type ("friend" or "group") and user_id')
        if kind == "group" and (sub_type not in ("add", "invite") or body.get("group_id") is None):
            return _error('a group request needs sub_type ("add" or "invite") and group_id')
        flag = secrets.token_hex(8)
        account.requests[flag] = ContactRequest(
            flag, kind, sub_type if kind == "group" else "", str(body["user_id"]),
            str(body.get("group_id", "")), str(body.get("comment", "")),
        )  # fmt: skip
        return await push(wire.request_event(account, body, flag), {"flag": flag})

    async def requests(request: Request) -> JSONResponse:
        return JSONResponse({"requests": [r.entry() for r in account.requests.values()]})

    async def transcript(request: Request) -> JSONResponse:
        chat = request.query_params.get("type", "private")
        if chat not in ("private", "group"):
            return _error("type must be private or group")
        return JSONResponse({"entries": account.sent_to(chat, request.query_params.get("id", ""))})  # type: ignore[arg-type]

    async def action_log(request: Request) -> JSONResponse:
        return JSONResponse({"actions": account.actions})

    async def faults(request: Request) -> JSONResponse:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _error(str(exc))
        if body.get("drop"):
            await hub.drop()
            return JSONResponse({"ok": True})
        action = body.get("action")
        if not isinstance(action, str):
            return _error("give `action` (with `retcode` and `times`, or `delay_s`), or `drop: true`")
        account.faults[action] = Fault(
            retcode=int(body.get("retcode", 0)),
            times=int(body.get("times", 1)),
            delay_s=float(body.get("delay_s", 0)),
            after=int(body.get("after", 0)),
        )
        return JSONResponse({"ok": True})

    async def connect(request: Request) -> JSONResponse:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _error(str(exc))
        settings.reverse_ws_url = str(body.get("url", ""))
        connector.url_changed()
        return JSONResponse({"ok": True})

    async def post_to(request: Request) -> JSONResponse:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _error(str(exc))
        if "url" not in body:
            return _error('give "url" (null to stop posting), and "secret", "timeout_s" if wanted')
        settings.post_url = str(body["url"] or "")
        settings.secret = str(body.get("secret") or "")
        settings.post_timeout_s = float(body.get("timeout_s", settings.post_timeout_s))
        return JSONResponse({"ok": True})

    async def status(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "connected": connector.connected.is_set(),
                "connections": connector.connections,
                "sockets": hub.sockets,
                "post_url": settings.post_url,
                "posted": hub.poster.posted,
                "post_failures": hub.poster.failures,
                "last_post_error": hub.poster.last_error,
            }
        )

    async def reset(request: Request) -> JSONResponse:
        account.reset()
        return JSONResponse({"ok": True})

    # --- the implementation's own servers: forward WebSocket and HTTP API ------------------------

    async def forward(websocket: WebSocket) -> None:
        refused = token_status(settings.access_token, websocket)
        if refused is not None:
            await websocket.send_denial_response(Response(status_code=refused))
            return
        role = websocket.url.path.strip("/") or "universal"  # "", "api" or "event"
        await websocket.accept()
        if role != "api":
            await websocket.send_text(wire.dumps(wire.lifecycle(account)))
            hub.attach(websocket.send_text, websocket.close)
        acting: set[asyncio.Task[None]] = set()

        async def act(raw: str) -> None:
            answer = await answer_frame(actions, raw, f"forward-ws /{'' if role == 'universal' else role}")
            if answer is not None:
                with contextlib.suppress(Exception):
                    await websocket.send_text(answer)

        try:
            while True:
                raw = await websocket.receive_text()
                if role != "event":  # /event only pushes (communication/ws.md)
                    task = asyncio.create_task(act(raw))
                    acting.add(task)
                    task.add_done_callback(acting.discard)
        except WebSocketDisconnect:
            pass
        finally:
            hub.detach(websocket.send_text)

    async def http_api(request: Request) -> Response:
        refused = token_status(settings.access_token, request)
        if refused is not None:
            return Response(status_code=refused)
        params: dict[str, Any] = {k: v for k, v in request.query_params.items() if k != "access_token"}
        if request.method == "POST":
            raw = await request.body()
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "application/json":
                try:
                    body = wire.loads(raw)
                except ValueError:
                    return Response(status_code=400)
                if not isinstance(body, dict):
                    return Response(status_code=400)
                params.update(body)
            elif kind == "application/x-www-form-urlencoded":
                params.update(parse_qsl(raw.decode(errors="replace")))
            elif raw.strip():
                return Response(status_code=406)
        action = request.path_params["action"]
        if not actions.knows(action):
            return Response(status_code=404)
        return JSONResponse(await actions.run(action, params, "http"))

    return Starlette(
        routes=[
            Route("/_sim/onebot/private/{chat_id}/messages", private, methods=["POST"]),
            Route("/_sim/onebot/groups/{chat_id}/messages", group, methods=["POST"]),
            Route("/_sim/onebot/notices", notice, methods=["POST"]),
            Route("/_sim/onebot/requests", contact_request, methods=["POST"]),
            Route("/_sim/onebot/requests", requests, methods=["GET"]),
            Route("/_sim/onebot/transcript", transcript, methods=["GET"]),
            Route("/_sim/onebot/actions", action_log, methods=["GET"]),
            Route("/_sim/onebot/faults", faults, methods=["POST"]),
            Route("/_sim/onebot/connect", connect, methods=["POST"]),
            Route("/_sim/onebot/post", post_to, methods=["POST"]),
            Route("/_sim/onebot/status", status, methods=["GET"]),
            Route("/_sim/onebot/reset", reset, methods=["POST"]),
            WebSocketRoute("/", forward),
            WebSocketRoute("/api", forward),
            WebSocketRoute("/api/", forward),
            WebSocketRoute("/event", forward),
            WebSocketRoute("/event/", forward),
            Route("/{action}", http_api, methods=["GET", "POST"]),
            Route("/{action}/", http_api, methods=["GET", "POST"]),
        ]
    )


@dataclass
class RunningOneBotSim:
    account: Account
    connector: Connector
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def settings(self) -> OneBotSimSettings:
        return self.account.settings

    def connect_to(self, url: str) -> None:
        """Point the reverse WebSocket at the bot (it connects, and reconnects after drops)."""
        self.account.settings.reverse_ws_url = url
        self.connector.url_changed()

    async def wait_connected(self) -> None:
        await self.connector.connected.wait()


@contextlib.asynccontextmanager
async def serve_onebot(settings: OneBotSimSettings | None = None) -> AsyncIterator[RunningOneBotSim]:
    """Run the OneBot emulator in this event loop on a loopback socket (port 0 = any free port)."""
    settings = settings or OneBotSimSettings()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    settings.port = sock.getsockname()[1]
    account = Account(settings)
    connector: Connector
    actions = Actions(account, lambda: connector.connected.is_set() or hub.sockets > 0)
    poster = Poster(account, actions)
    hub = Hub(poster)
    connector = Connector(account, actions, hub)
    server = uvicorn.Server(
        uvicorn.Config(create_app(account, actions, hub, connector), log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    connector.start()  # once the control API listens: a connected bot may be told to use it
    beat = asyncio.create_task(_heartbeat(account, hub)) if settings.heartbeat_interval_s > 0 else None
    try:
        yield RunningOneBotSim(account, connector, settings.host, settings.port)
    finally:
        if beat is not None:
            beat.cancel()
        await connector.stop()
        await poster.close()
        server.should_exit = True
        await task
        sock.close()


async def _heartbeat(account: Account, hub: Hub) -> None:
    interval = account.settings.heartbeat_interval_s
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(ConnectionError):  # nobody to tell: the next beat tries again
            await hub.push(wire.heartbeat(account, True, interval))
