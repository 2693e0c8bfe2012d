"""Group commit: units of work that arrive concurrently share one session and one commit.

Each caller still gets its own result only after the shared commit succeeded, so "durable before
it is used" holds for every unit; what is saved is the per-transaction overhead (session set-up,
BEGIN/COMMIT round trips), which dominates small writes on both SQLite and PostgreSQL.
If any unit fails, the whole batch is rolled back and every caller in it gets the exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from herald.store.db import Database

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[Any]]


class GroupCommit:
    def __init__(self, db: Database, *, max_batch: int = 256) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="group-commit")
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            results: list[Any] = []
            try:
                async with self._db.session() as session:
                    for work, _ in batch:
                        results.append(await work(session))
                    await session.commit()
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
