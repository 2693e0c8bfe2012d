"""The reverse WebSocket as the implementation runs it: connect out to the bot, push events,
answer actions, and connect again after a drop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import aiohttp

from herald.sim.onebot import wire
from herald.sim.onebot.account import Account, ChatType, Sent

log = logging.getLogger(__name__)

SEND_ACTIONS: dict[str, ChatType] = {"send_private_msg": "private", "send_group_msg": "group"}


class Connector:
    def __init__(self, account: Account) -> None:
        self.account = account
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

    async def drop(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def push(self, event: dict[str, Any]) -> None:
        if self._ws is None:
            raise ConnectionError("the bot is not connected: nothing can be pushed")
        await self._ws.send_str(json.dumps(event, ensure_ascii=False))

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
                        self._ws = ws
                        self.connections += 1
                        self.connected.set()
                        await self.push(wire.lifecycle(self.account))
                        async for frame in ws:
                            if frame.type == aiohttp.WSMsgType.TEXT:
                                # Answered concurrently, as implementations do: a slow action
                                # (a fault's delay) holds up no other.
                                task = asyncio.create_task(self._act(frame.data))
                                self._acting.add(task)
                                task.add_done_callback(self._acting.discard)
                except (aiohttp.ClientError, OSError) as exc:
                    log.info("OneBot sim: cannot connect to %s: %s", settings.reverse_ws_url, exc)
                finally:
                    self._ws = None
                    self.connected.clear()
                await asyncio.sleep(settings.reconnect_interval_s)

    async def _act(self, raw: str) -> None:
        try:
            request = json.loads(raw)
            action, params, echo = request["action"], request.get("params") or {}, request.get("echo")
        except (ValueError, KeyError, TypeError):
            log.warning("OneBot sim: not an action: %.200s", raw)
            return
        answer = await self._answer(str(action), params, echo)
        self.account.actions.append({"action": action, "params": params, "retcode": answer["retcode"]})
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(json.dumps(answer, ensure_ascii=False))

    async def _answer(self, action: str, params: dict[str, Any], echo: Any) -> dict[str, Any]:
        account = self.account
        fault = account.take_fault(action)
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if action == "send_msg":
            action = (
                "send_group_msg"
                if params.get("message_type") == "group" or "group_id" in params
                else "send_private_msg"
            )
        if action in SEND_ACTIONS:
            chat = SEND_ACTIONS[action]
            key = "group_id" if chat == "group" else "user_id"
            if key not in params:
                return wire.answer(echo, retcode=1400, message=f"{key} is missing")
            try:
                parts = wire.segments(params.get("message", ""))
            except ValueError as exc:
                return wire.answer(echo, retcode=1400, message=str(exc))
            retcode = fault.retcode if fault is not None else 0
            message_id = account.new_message_id() if retcode == 0 else None
            sent = Sent(
                action, chat, str(params[key]), parts, "ok" if retcode == 0 else "failed", retcode, message_id
            )
            account.transcript.append(sent)
            if retcode:
                return wire.answer(
                    echo, retcode=retcode, message="send failed (fault set by the control API)"
                )
            return wire.answer(echo, {"message_id": message_id})
        if fault is not None and fault.retcode:
            return wire.answer(echo, retcode=fault.retcode, message="fault set by the control API")
        if action == "get_login_info":
            return wire.answer(echo, {"user_id": account.settings.self_id, "nickname": "herald-sim"})
        if action == "get_status":
            return wire.answer(echo, {"online": self.connected.is_set(), "good": True})
        if action == "get_version_info":
            return wire.answer(
                echo, {"app_name": "herald-sim", "app_version": "0.1", "protocol_version": "v11"}
            )
        if action == "delete_msg":
            return wire.answer(echo, None)
        return wire.answer(echo, retcode=1404, message=f"action {action!r} is not supported")
