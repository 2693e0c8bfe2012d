"""The reverse WebSocket: the OneBot implementation connects to Herald and both directions share
the one socket (the "universal" client role)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from herald.config import OneBotConfig
from herald.core.platform import Endpoint
from herald.onebot.connection import (
    EventFeed,
    EventHandler,
    NotConnected,
    Waiting,
    take_frame,
    token_refusal,
)

log = logging.getLogger(__name__)


class ReverseSocket:
    transport = "reverse-websocket"

    def __init__(self, config: OneBotConfig, on_event: EventHandler) -> None:
        self.config = config
        self.feed = EventFeed(on_event)
        self.connections = 0
        self.refused = 0  # connections refused (wrong token, role), and the last one's reason
        self.last_refusal = ""
        self.last_error = ""  # nothing to tell: the implementation connects, or does not
        self.connected = asyncio.Event()
        self._socket: WebSocket | None = None
        self._waiting = Waiting()
        self.app = Starlette(routes=[WebSocketRoute(config.listen_path, self._endpoint)])
        self.port: int | None = None  # once the app serves the endpoint

    @property
    def self_id(self) -> str | None:
        return self.feed.self_id

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port or self.config.port}{self.config.listen_path}"

    @property
    def where(self) -> str:
        return self.url

    def endpoints(self) -> tuple[Endpoint, ...]:
        return (Endpoint(self.app, self.config.host, self.config.port, "[onebot] port", bound=self._bound),)

    def _bound(self, port: int) -> None:
        self.port = port
        log.info("waiting for a OneBot implementation to connect to %s", self.url)

    async def start(self) -> None:
        self.feed.start()

    async def stop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close()
        await self.feed.stop()

    async def _endpoint(self, websocket: WebSocket) -> None:
        token = self.config.access_token
        refused = token_refusal(
            token.get_secret_value() if token is not None else None,
            websocket.headers.get("authorization", ""),
            websocket.query_params.get("access_token", ""),
        )
        role = websocket.headers.get("x-client-role", "Universal")
        if refused is None and role.lower() != "universal":
            refused = (
                f"client role {role!r}: Herald takes one universal connection (set the role to Universal)"
            )
        if refused is not None:
            log.warning("OneBot connection from %s refused: %s", websocket.client, refused)
            self.refused += 1
            self.last_refusal = refused
            await websocket.close(code=1008)
            return
        await websocket.accept()
        if self._socket is not None:
            log.warning("a second OneBot connection arrived; the newer one replaces the older")
            with contextlib.suppress(Exception):
                await self._socket.close()
        self._socket = websocket
        self.feed.self_id = websocket.headers.get("x-self-id") or self.feed.self_id
        self.connections += 1
        self.connected.set()
        log.info("OneBot implementation connected (account %s)", self.self_id)
        try:
            while True:
                await take_frame(await websocket.receive_text(), self.feed, self._waiting)
        except WebSocketDisconnect:
            pass
        finally:
            if self._socket is websocket:
                self._socket = None
                self.connected.clear()
                log.warning("OneBot implementation disconnected; waiting for it to connect again")
                self._waiting.lose_all("the connection closed before the answer came")

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        websocket = self._socket
        if websocket is None:
            raise NotConnected("no OneBot implementation is connected")
        return await self._waiting.call(websocket.send_text, action, params, self.config.action_timeout_s)
