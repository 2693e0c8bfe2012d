"""The reverse WebSocket: the OneBot implementation connects to Herald and both directions share
the one socket (the "universal" client role). Events go to `on_event` in arrival order; actions
are matched to their answers by `echo`.

Events are handed on from their own task, so a slow event handler never holds up the answers to
the actions a turn is waiting on."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from herald.config import OneBotConfig

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
# How many events may wait for the handler before reading from the socket pauses.
EVENT_BACKLOG = 1000


class NotConnected(Exception):
    """No implementation is connected: the action was not sent."""


class AnswerLost(Exception):
    """The action was sent but no answer came (timeout or the socket closed): it may have run."""


class ActionFailed(Exception):
    def __init__(self, action: str, retcode: int, message: str) -> None:
        super().__init__(f"{action}: retcode {retcode}{f' ({message})' if message else ''}")
        self.retcode = retcode
        self.message = message


class ReverseSocket:
    def __init__(self, config: OneBotConfig, on_event: EventHandler) -> None:
        self.config = config
        self.on_event = on_event
        self.self_id: str | None = None
        self.connections = 0
        self.refused = 0  # connections refused (wrong token, role), and the last one's reason
        self.last_refusal = ""
        self.connected = asyncio.Event()
        self._socket: WebSocket | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._echo = itertools.count(1)
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_BACKLOG)
        self._tasks: list[asyncio.Task[None]] = []
        self._server: uvicorn.Server | None = None
        self.port: int | None = None
        self.app = Starlette(routes=[WebSocketRoute(config.path, self._endpoint)])

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"[onebot] cannot listen on {self.config.host}:{self.config.port} ({exc.strerror}): "
                "another program holds the port; set [onebot] port to a free one"
            ) from exc
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self._tasks.append(asyncio.create_task(self._server.serve(sockets=[sock]), name="onebot-server"))
        self._tasks.append(asyncio.create_task(self._hand_on(), name="onebot-events"))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close()
        for task in self._tasks:
            if task.get_name() == "onebot-events":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{self.config.path}"

    def _authorized(self, websocket: WebSocket) -> str | None:
        """None when the connection may proceed, else why not."""
        expected = self.config.access_token
        if expected is None:
            return None
        header = websocket.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            given = websocket.query_params.get("access_token", "")
        if not given:
            return "no access token given (set the implementation's access_token to [onebot] access_token)"
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            return "wrong access token (the implementation's access_token differs from [onebot] access_token)"
        return None

    async def _endpoint(self, websocket: WebSocket) -> None:
        refused = self._authorized(websocket)
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
        self.self_id = websocket.headers.get("x-self-id") or self.self_id
        self.connections += 1
        self.connected.set()
        log.info("OneBot implementation connected (account %s)", self.self_id)
        try:
            while True:
                raw = await websocket.receive_text()
                await self._received(raw)
        except WebSocketDisconnect:
            pass
        finally:
            if self._socket is websocket:
                self._socket = None
                self.connected.clear()
                log.warning("OneBot implementation disconnected; waiting for it to connect again")
                for future in self._waiting.values():
                    if not future.done():
                        future.set_exception(AnswerLost("the connection closed before the answer came"))

    async def _received(self, raw: str) -> None:
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError:
            log.warning("OneBot sent something that is not JSON (ignored): %.200s", raw)
            return
        if not isinstance(payload, dict):
            log.warning("OneBot sent a JSON value that is not an object (ignored): %.200s", raw)
            return
        if "post_type" in payload:
            if payload.get("self_id") is not None:
                self.self_id = str(payload["self_id"])
            await self._events.put(payload)
            return
        echo = payload.get("echo")
        future = self._waiting.get(str(echo)) if echo is not None else None
        if future is None:
            log.warning("OneBot answered an action Herald is not waiting for (echo %r)", echo)
        elif not future.done():
            future.set_result(payload)

    async def _hand_on(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self.on_event(event)
            except Exception:
                log.exception("OneBot event not handled: %.200s", json.dumps(event, ensure_ascii=False))

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        """Run one action; its `data` when it succeeds. Raises NotConnected (not sent),
        AnswerLost (sent, no answer), ActionFailed (the implementation said no)."""
        websocket = self._socket
        if websocket is None:
            raise NotConnected("no OneBot implementation is connected")
        echo = str(next(self._echo))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[echo] = future
        try:
            try:
                await websocket.send_text(json.dumps({"action": action, "params": params, "echo": echo}))
            except Exception as exc:
                raise NotConnected(f"the connection closed: {exc}") from exc
            try:
                async with asyncio.timeout(self.config.action_timeout_s):
                    answer = await future
            except TimeoutError:
                raise AnswerLost(f"no answer within {self.config.action_timeout_s:g} s") from None
        finally:
            self._waiting.pop(echo, None)
        status, retcode = answer.get("status"), answer.get("retcode", 0)
        if status == "failed" or (isinstance(retcode, int) and retcode not in (0, 1)):
            message = str(answer.get("wording") or answer.get("message") or answer.get("msg") or "")
            raise ActionFailed(action, int(retcode) if isinstance(retcode, int) else -1, message)
        return answer.get("data")
