"""The reverse WebSocket as the implementation runs it: connect out to the bot, push events,
answer actions, and connect again after a drop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aiohttp

from herald.sim.onebot import wire
from herald.sim.onebot.account import Account
from herald.sim.onebot.actions import Actions
from herald.sim.onebot.hub import Hub

log = logging.getLogger(__name__)


async def answer_frame(actions: Actions, raw: str, via: str) -> str | None:
    """The answer frame to one action frame of a WebSocket (None: not an action, logged)."""
    try:
        request = json.loads(raw)
        action, params, echo = request["action"], request.get("params") or {}, request.get("echo")
    except (ValueError, KeyError, TypeError):
        log.warning("OneBot sim: not an action: %.200s", raw)
        return None
    answer = await actions.run(str(action), params, via)
    if echo is not None:
        answer["echo"] = echo
    return json.dumps(answer, ensure_ascii=False)


class Connector:
    def __init__(self, account: Account, actions: Actions, hub: Hub) -> None:
        self.account = account
        self.actions = actions
        self.hub = hub
        self.connected = asyncio.Event()
        self.connections = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._acting: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="onebot-sim-connector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def url_changed(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        settings = self.account.settings
        async with aiohttp.ClientSession() as http:
            while True:
                if not settings.reverse_ws_url:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                headers = {
                    "X-Self-ID": str(settings.self_id),
                    "X-Client-Role": "Universal",
                    "User-Agent": "OneBot/11 herald-sim",
                }
                if settings.access_token:
                    headers["Authorization"] = f"Bearer {settings.access_token}"
                try:
                    async with http.ws_connect(
                        settings.reverse_ws_url, headers=headers, heartbeat=None
                    ) as ws:
                        await self._serve(ws)
                except (aiohttp.ClientError, OSError) as exc:
                    log.info("OneBot sim: cannot connect to %s: %s", settings.reverse_ws_url, exc)
                await asyncio.sleep(settings.reconnect_interval_s)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self.connections += 1
        self.connected.set()
        await ws.send_str(json.dumps(wire.lifecycle(self.account), ensure_ascii=False))
        self.hub.attach(ws.send_str, ws.close)
        try:
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    # Answered concurrently, as implementations do: a slow action (a fault's
                    # delay) holds up no other.
                    task = asyncio.create_task(self._act(ws, frame.data))
                    self._acting.add(task)
                    task.add_done_callback(self._acting.discard)
        finally:
            self.hub.detach(ws.send_str)
            self._ws = None
            self.connected.clear()

    async def _act(self, ws: aiohttp.ClientWebSocketResponse, raw: str) -> None:
        answer = await answer_frame(self.actions, raw, "reverse-ws")
        if answer is not None and not ws.closed:
            await ws.send_str(answer)
