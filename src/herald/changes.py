"""A feed of which conversations just changed (a message came in, a turn ended, an item was
delivered or refused), for the console's live pages.

Publishing is a no-op while nobody listens, so the message path pays nothing for a console nobody
has open. A listener gets the changes in batches, at most one per `batch_s`: a busy bot changes
hundreds of times a second, and a page only needs to know, now and then, what to look at again.
A listener that falls behind never blocks the publisher: its queue drops the oldest notices once
full, and a batch says "look again", so the newest notice is enough.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

BACKLOG = 1024  # notices a listener may hold before older ones are dropped


class ChangeFeed:
    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[str | None]] = set()

    def changed(self, conversation: str) -> None:
        for queue in self._listeners:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(conversation)

    async def listen(self, batch_s: float = 0.5, heartbeat_s: float = 15.0) -> AsyncIterator[set[str]]:
        """The keys of the conversations changed since the last batch; an empty set after
        `heartbeat_s` without a change (so a stream can prove it is alive); ends when the feed
        is closed."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(BACKLOG)
        self._listeners.add(queue)
        try:
            while True:
                try:
                    async with asyncio.timeout(heartbeat_s):
                        first = await queue.get()
                except TimeoutError:
                    yield set()
                    continue
                if first is None:
                    return
                await asyncio.sleep(batch_s)  # let the batch fill
                batch = {first}
                while not queue.empty():
                    key = queue.get_nowait()
                    if key is None:
                        yield batch
                        return
                    batch.add(key)
                yield batch
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
