"""A feed of which conversations just changed (a message came in, a turn ended, an item was
delivered or refused), for the console's live pages.

Publishing is a no-op while nobody listens, so the message path pays nothing for a console nobody
has open. A listener that falls behind loses the oldest notices, never blocks the publisher: a
notice only says "look again", and the newest one is enough.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

BACKLOG = 64  # notices a slow listener may fall behind by before older ones are dropped


class ChangeFeed:
    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[str | None]] = set()

    def changed(self, conversation: str) -> None:
        for queue in self._listeners:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(conversation)

    async def listen(self, heartbeat_s: float = 15.0) -> AsyncIterator[str | None]:
        """Conversation keys as they change; None every `heartbeat_s` without a change (so a
        stream can prove it is alive); ends when the feed is closed."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(BACKLOG)
        self._listeners.add(queue)
        try:
            while True:
                try:
                    async with asyncio.timeout(heartbeat_s):
                        key = await queue.get()
                except TimeoutError:
                    yield None
                    continue
                if key is None:
                    return
                yield key
        finally:
            self._listeners.discard(queue)

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def close(self) -> None:
        """End every listener's stream (the console is stopping)."""
        for queue in self._listeners:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
