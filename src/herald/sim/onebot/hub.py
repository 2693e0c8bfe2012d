"""Where the account's events go: the HTTP POST target first (its quick operation done), then
every WebSocket that takes events (the reverse one, forward `/` and `/event` clients), as
communication/ws.md orders them."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from herald.sim.onebot.poster import Poster

log = logging.getLogger(__name__)

# Sends one text frame on a WebSocket; closes it.
Send = Callable[[str], Awaitable[None]]
Close = Callable[[], Awaitable[object]]


class Hub:
    def __init__(self, poster: Poster) -> None:
        self.poster = poster
        self._sockets: dict[Send, Close] = {}

    def attach(self, send: Send, close: Close) -> None:
        self._sockets[send] = close

    def detach(self, send: Send) -> None:
        self._sockets.pop(send, None)

    @property
    def sockets(self) -> int:
        return len(self._sockets)

    async def push(self, event: dict[str, Any]) -> str | None:
        """Hand `event` to every consumer. Raises ConnectionError when there is none; returns why
        the HTTP POST failed, if it did (the WebSockets still get the event)."""
        if not self._sockets and not self.poster.enabled:
            raise ConnectionError("no bot is connected and no post URL is set: nothing can be pushed")
        post_error = await self.poster.post(event) if self.poster.enabled else None
        text = json.dumps(event, ensure_ascii=False)
        for send in list(self._sockets):
            try:
                await send(text)
            except Exception as exc:  # a socket closing under us: its reader detaches it
                log.info("OneBot sim: an event did not reach a closing socket: %s", exc)
        return post_error

    async def drop(self) -> None:
        """Close every WebSocket now (the `drop` fault)."""
        for close in list(self._sockets.values()):
            with contextlib.suppress(Exception):
                await close()
