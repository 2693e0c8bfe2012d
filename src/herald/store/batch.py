"""Group commit: units of work that arrive concurrently share one session and one commit.

Each caller still gets its own result only after the shared commit succeeded, so "durable before
it is used" holds for every unit; what is saved is the per-transaction overhead (session set-up,
BEGIN/COMMIT round trips), which dominates small writes on both SQLite and PostgreSQL.
Units may also defer plain inserts and updates-by-key (`defer_insert`, `defer_update`); those
run as one executemany per table and column set just before the commit.

A failing unit fails alone: when a batch's commit fails, its units are committed again in two
halves, recursively, so the units that can commit do (in few transactions) and only the unit
that cannot (a constraint it violates, a value the database refuses, its own exception) hands
its caller the error. A unit may therefore run more than once; it must write only through the
session it is given (and `defer_insert`/`defer_update`), never keep state between runs.

Batches run on held connections (no pool checkout per commit), at most one batch per connection.
`Database.writes` is the one instance every hot writer shares (reply ledger, outbox, turn store):
on SQLite that makes this process a single writer, so its writers queue here, in order, instead
of meeting on SQLite's file lock, where a loser sleeps in the busy handler (1, 2, 5, 10 … ms).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Executable, Insert, Table, Update, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from herald.store.held import HeldConnections

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Write:
    """One statement and its parameters, to be committed in another writer's transaction (the
    agent's turn end with its reply's outbox row). Data, not a callback: the writer that commits it
    runs a statement it is handed, never code of the layer that made it."""

    statement: Executable
    params: Mapping[str, Any]

    async def apply(self, session: AsyncSession) -> Any:
        """Run it in `session`'s transaction; its first scalar, when it returns rows."""
        # On the Core connection: an ORM-enabled UPDATE would evaluate it against the session.
        result = await (await session.connection()).execute(self.statement, self.params)
        return result.scalar() if result.returns_rows else None


_INSERTS = "herald.deferred_inserts"
_UPDATES = "herald.deferred_updates"


def defer_insert(session: AsyncSession, table: Table, row: dict[str, Any]) -> None:
    """Insert `row` into `table` with the batch's other inserts, before its commit."""
    session.info.setdefault(_INSERTS, {}).setdefault(table, []).append(row)


def defer_update(session: AsyncSession, table: Table, key: str, row: dict[str, Any]) -> None:
    """Update the row whose `key` column equals `row[key]` with the rest of `row`, before the commit."""
    columns = tuple(sorted(row))
    session.info.setdefault(_UPDATES, {}).setdefault((table, key, columns), []).append(row)


class GroupCommit:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        connections: int = 1,
        max_batch: int = 256,
        statements_on_loop: bool = False,
    ) -> None:
        self._held = HeldConnections(engine, connections, statements_on_loop=statements_on_loop)
        self._connections = connections
        self._max_batch = max_batch
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._flushing = 0  # flusher tasks running; each one drains the queue, then ends
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if self._flushing < self._connections:
            # Counted here and uncounted by the flusher itself when it finds the queue empty (no
            # await in between), so a unit queued as a flusher ends always has one to run it.
            self._flushing += 1
            task = asyncio.create_task(self._flush(), name="group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def close(self) -> None:
        """Let batches in flight commit (their callers are waiting), then close the connections."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._held.close()

    async def _flush(self) -> None:
        try:
            await self._drain()
        finally:
            self._flushing -= 1

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                await self._commit(batch)
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise

    async def _commit(
        self, batch: list[tuple[Work, asyncio.Future[Any]]], *, splitting: bool = False
    ) -> None:
        """Commit `batch` and resolve its futures; on failure, split it until the failing unit
        is alone, and hand only that unit's caller the exception."""
        try:
            results = await self._transaction([work for work, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                future = batch[0][1]
                if not future.done():
                    future.set_exception(exc)
                return
            if not splitting:
                log.warning(
                    "a group commit of %d units failed (%s: %s); committing them again in smaller "
                    "batches, so that only the failing unit fails",
                    len(batch),
                    type(exc).__name__,
                    # The first line names the cause; the SQL and parameters are the caller's to log.
                    str(exc).partition("\n")[0][:300],
                )
            half = len(batch) // 2
            await self._commit(batch[:half], splitting=True)
            await self._commit(batch[half:], splitting=True)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _transaction(self, works: list[Work]) -> list[Any]:
        results: list[Any] = []
        async with self._held.transaction() as conn:
            # The session begins (and commits) the transaction on the held connection.
            session = AsyncSession(bind=conn, expire_on_commit=False)
            try:
                for work in works:
                    results.append(await work(session))
                await _write_deferred(session)
                await session.commit()
            finally:
                await session.close()
        return results


async def _write_deferred(session: AsyncSession) -> None:
    inserts: dict[Table, list[dict[str, Any]]] = session.info.pop(_INSERTS, {})
    for table, rows in inserts.items():
        await session.execute(_insert(table), rows)
    updates: dict[tuple[Table, str, tuple[str, ...]], list[dict[str, Any]]] = session.info.pop(_UPDATES, {})
    for (table, key, columns), rows in updates.items():
        params = [{f"k_{key}" if name == key else f"v_{name}": row[name] for name in columns} for row in rows]
        await session.execute(_update(table, key, columns), params)


# Built once per shape: constructing a statement (and its cache key) costs more than binding it.
@functools.cache
def _insert(table: Table) -> Insert:
    return insert(table)


@functools.cache
def _update(table: Table, key: str, columns: tuple[str, ...]) -> Update:
    # Bind names must differ from column names in an executemany UPDATE.
    return (
        update(table)
        .where(table.c[key] == bindparam(f"k_{key}"))
        .values({name: bindparam(f"v_{name}") for name in columns if name != key})
    )
