"""The forward WebSocket: Herald connects to the implementation's WebSocket server (its
universal endpoint, `[onebot] url`), and connects again after a drop, backing off up to
`RECONNECT_MAX_S`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

from herald.config import OneBotConfig
from herald.core.platform import Endpoint
from herald.onebot.connection import (
    ActionFailed,
    AnswerLost,
    EventFeed,
    EventHandler,
    NotConnected,
    Waiting,
    take_frame,
)

log = logging.getLogger(__name__)

RECONNECT_FIRST_S = 1.0
RECONNECT_MAX_S = 30.0
TOKEN_REFUSED = (401, 403)


def auth_headers(config: OneBotConfig) -> dict[str, str]:
    token = config.access_token
    return {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}


class ForwardSocket:
    transport = "forward-websocket"

    def __init__(self, config: OneBotConfig, on_event: EventHandler) -> None:
        assert config.url is not None  # the config requires it for this transport
        self.config = config
        self._url = config.url
        self.feed = EventFeed(on_event)
        self.connections = 0
        self.refused = 0  # handshakes the implementation refused, and the last one's reason
        self.last_refusal = ""
        self.last_error = ""
        self.connected = asyncio.Event()
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._waiting = Waiting()
        self._task: asyncio.Task[None] | None = None
        self._ask_login: asyncio.Task[None] | None = None

    @property
    def self_id(self) -> str | None:
        return self.feed.self_id

    @property
    def url(self) -> str:
        return self._url

    @property
    def where(self) -> str:
        return self._url

    def endpoints(self) -> tuple[Endpoint, ...]:
        return ()  # Herald connects out: nothing to serve

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self.feed.start()
        self._task = asyncio.create_task(self._run(), name="onebot-forward")
        log.info("connecting to the OneBot implementation at %s", self.url)

    async def stop(self) -> None:
        for task in (self._task, self._ask_login):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._socket is not None:
            await self._socket.close()
        if self._session is not None:
            await self._session.close()
        await self.feed.stop()

    async def _run(self) -> None:
        assert self._session is not None
        pause = RECONNECT_FIRST_S
        while True:
            try:
                async with self._session.ws_connect(self.url, headers=auth_headers(self.config)) as socket:
                    pause = RECONNECT_FIRST_S
                    await self._serve(socket)
                self.last_error = "the implementation closed the connection"
            except aiohttp.WSServerHandshakeError as exc:
                self.last_error = f"handshake refused (HTTP {exc.status})"
                if exc.status in TOKEN_REFUSED:
                    self.refused += 1
                    self.last_refusal = (
                        f"the implementation refused Herald's access token (HTTP {exc.status}): "
                        "set [onebot] access_token to the implementation's access_token"
                    )
                    self.last_error = self.last_refusal
            except (aiohttp.ClientError, OSError) as exc:
                self.last_error = f"cannot connect: {exc}"
            log.warning("OneBot at %s: %s; connecting again in %g s", self.url, self.last_error, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX_S)

    async def _serve(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self.connections += 1
        self.last_error = ""
        self.connected.set()
        if self.feed.self_id is None:
            self._ask_login = asyncio.create_task(self._login(), name="onebot-login")
        log.info("connected to the OneBot implementation at %s", self.url)
        try:
            async for frame in socket:
                if frame.type is aiohttp.WSMsgType.TEXT:
                    await take_frame(frame.data, self.feed, self._waiting)
        finally:
            self._socket = None
            self.connected.clear()
            self._waiting.lose_all("the connection closed before the answer came")

    async def _login(self) -> None:
        # The account's id tells which group messages @ it; a forward socket has no header with
        # it, and an account that sends no event for a while would otherwise stay unknown.
        try:
            data = await self.call("get_login_info", {})
        except (NotConnected, AnswerLost, ActionFailed) as exc:
            log.warning(
                "OneBot get_login_info: %s (the account's id stays unknown until an event says it)", exc
            )
            return
        if isinstance(data, dict) and data.get("user_id") is not None:
            self.feed.self_id = str(data["user_id"])

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        socket = self._socket
        if socket is None or socket.closed:
            raise NotConnected(f"not connected to the OneBot implementation at {self.url}")
        return await self._waiting.call(socket.send_str, action, params, self.config.action_timeout_s)
