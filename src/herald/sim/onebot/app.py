"""The OneBot emulator's own HTTP server: the control API (under `/_sim/onebot/`) that tests and
people use to play the account's contacts, and the reverse-WebSocket connector started with it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from herald.sim.onebot import wire
from herald.sim.onebot.account import Account, Fault, OneBotSimSettings
from herald.sim.onebot.connector import Connector

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


def create_app(account: Account, connector: Connector) -> Starlette:
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
            parts = [{"type": "at", "data": {"qq": str(account.settings.self_id)}}, *parts]
        message_id = account.new_message_id()
        event = wire.message_event(
            account, chat, chat_id, user, parts, message_id, str(body.get("nickname", f"user{user}")),
            str(body.get("role", "member")),
        )  # fmt: skip
        try:
            await connector.push(event)
        except ConnectionError as exc:
            return _error(str(exc), 409)
        return JSONResponse({"message_id": message_id})

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
        try:
            await connector.push(wire.notice_event(account, body))
        except ConnectionError as exc:
            return _error(str(exc), 409)
        return JSONResponse({"ok": True})

    async def transcript(request: Request) -> JSONResponse:
        chat = request.query_params.get("type", "private")
        if chat not in ("private", "group"):
            return _error("type must be private or group")
        return JSONResponse({"entries": account.sent_to(chat, request.query_params.get("id", ""))})  # type: ignore[arg-type]

    async def actions(request: Request) -> JSONResponse:
        return JSONResponse({"actions": account.actions})

    async def faults(request: Request) -> JSONResponse:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _error(str(exc))
        if body.get("drop"):
            await connector.drop()
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
        account.settings.reverse_ws_url = str(body.get("url", ""))
        connector.url_changed()
        return JSONResponse({"ok": True})

    async def status(request: Request) -> JSONResponse:
        return JSONResponse({"connected": connector.connected.is_set(), "connections": connector.connections})

    async def reset(request: Request) -> JSONResponse:
        account.reset()
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/_sim/onebot/private/{chat_id}/messages", private, methods=["POST"]),
            Route("/_sim/onebot/groups/{chat_id}/messages", group, methods=["POST"]),
            Route("/_sim/onebot/notices", notice, methods=["POST"]),
            Route("/_sim/onebot/transcript", transcript, methods=["GET"]),
            Route("/_sim/onebot/actions", actions, methods=["GET"]),
            Route("/_sim/onebot/faults", faults, methods=["POST"]),
            Route("/_sim/onebot/connect", connect, methods=["POST"]),
            Route("/_sim/onebot/status", status, methods=["GET"]),
            Route("/_sim/onebot/reset", reset, methods=["POST"]),
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
    connector = Connector(account)
    server = uvicorn.Server(
        uvicorn.Config(create_app(account, connector), log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    connector.start()  # once the control API listens: a connected bot may be told to use it
    try:
        yield RunningOneBotSim(account, connector, settings.host, settings.port)
    finally:
        await connector.stop()
        server.should_exit = True
        await task
        sock.close()
