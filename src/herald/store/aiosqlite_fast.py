"""aiosqlite with one thread round trip per statement instead of four, or none.

SQLAlchemy's aiosqlite adapter creates a cursor, executes, fetches all rows and closes the cursor,
each an `await` on aiosqlite's connection thread: a queue hand-off there and a self-pipe wake-up
of the event loop back, which then waits its turn in a busy loop. The shared group commit
(`Database.writes`) runs on one SQLite connection, so these round trips are serialized; measured
on bench/outbox.py they, not SQLite, bounded deliveries per second.

Here the cursor does all four in one call on the connection's thread (rows buffered, cursor closed
at once; description, rowcount and lastrowid stay readable on a closed sqlite3 cursor).

A connection can also run its statements on the event loop (`statements_on_loop`): the group
commit's, whose statements are the hot path's small writes and keyed reads. On a WAL database such
a statement takes microseconds, and the round trip to the thread cost about ten times that in CPU
(bench/http_turns.py: 4.3 → 3.4 ms per message). What may take long stays on the thread:
- a statement that finds another writer holding the lock: it fails at once on the loop (busy
  timeout 0) and runs again on the thread, which waits for the lock with the connection's own busy
  timeout. (Waiting on the loop would stop the very task that holds the lock when it is a session
  of this process.) A statement that failed busy changed nothing, so running it again is safe;
- the commit, which may checkpoint the WAL into the database file and sync it;
- the connections of the pool, whose reads may be long.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")
# A statement's closed cursor and its rows (None when it returns none).
_Ran = tuple[sqlite3.Cursor, list[Any] | None]


def _run(conn: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Ran:
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else None
    finally:
        cursor.close()
    return cursor, rows


def _switch_busy_timeout(conn: sqlite3.Connection, busy_timeout_ms: int) -> int:
    """Set the busy timeout; the one it replaces."""
    (previous,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return int(previous)


def _waiting(conn: sqlite3.Connection, sql: str, parameters: Any, many: bool, busy_timeout_ms: int) -> _Ran:
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    try:
        return _run(conn, sql, parameters, many)
    finally:
        conn.execute("PRAGMA busy_timeout=0")


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


class Cursor(aiosqlite.Cursor):
    """Executes, fetches and closes in one round trip; serves fetches from the buffered rows."""

    _conn: Connection
    _rows: list[Any] | None = None
    _next = 0

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Cursor:
        params = [] if parameters is None else parameters
        self._cursor, self._rows = await self._conn.statement(sql, params, False)
        self._next = 0
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Cursor:
        # A list: a statement that found the lock busy runs again with the same rows.
        self._cursor, self._rows = await self._conn.statement(sql, list(parameters), True)
        self._next = 0
        return self

    def _take(self, size: int | None) -> list[Any]:
        rows = self._rows or []
        end = len(rows) if size is None else min(len(rows), self._next + size)
        taken = rows[self._next : end]
        self._next = end
        return taken

    async def fetchone(self) -> Any:
        taken = self._take(1)
        return taken[0] if taken else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._take(self.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._take(None)

    async def close(self) -> None:
        """The sqlite3 cursor was closed in the round trip that used it."""
        self._rows = None

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass


class Connection(aiosqlite.Connection):
    # The busy timeout to wait with on the thread, while statements run on the loop (else None).
    _on_loop_busy_timeout_ms: int | None = None

    async def statements_on_loop(self, on: bool) -> None:
        """Run this connection's statements on the event loop (`on`), or on its thread again."""
        if on == (self._on_loop_busy_timeout_ms is not None):
            return
        if on:
            self._on_loop_busy_timeout_ms = await self._on_thread(_switch_busy_timeout, self._conn, 0)
        else:
            await self._on_thread(_switch_busy_timeout, self._conn, self._on_loop_busy_timeout_ms)
            self._on_loop_busy_timeout_ms = None

    async def statement(self, sql: str, parameters: Any, many: bool) -> _Ran:
        busy_timeout_ms = self._on_loop_busy_timeout_ms
        if busy_timeout_ms is not None:
            try:
                return _run(self._conn, sql, parameters, many)
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
            return await self._on_thread(_waiting, self._conn, sql, parameters, many, busy_timeout_ms)
        return await self._on_thread(_run, self._conn, sql, parameters, many)

    async def _on_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._execute(fn, *args)  # type: ignore[no-untyped-call,no-any-return]

    @aiosqlite.context.contextmanager
    async def cursor(self) -> aiosqlite.Cursor:
        """A cursor needs no round trip of its own: each statement makes a fresh sqlite3 cursor."""
        return Cursor(self, None)  # type: ignore[arg-type]


def connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> Connection:
    """For `connect_args={"async_creator_fn": connect}`: called with the arguments the SQLAlchemy
    dialect would pass to `aiosqlite.connect`."""
    # Used from the event loop as well as from its thread (statements_on_loop), one call at a time.
    kwargs.setdefault("check_same_thread", False)
    conn = Connection(functools.partial(sqlite3.connect, database, **kwargs), iter_chunk_size)
    # As SQLAlchemy does for aiosqlite's own connections (before 0.22 the connection is the thread).
    thread: Any = getattr(conn, "_thread", conn)
    thread.daemon = True
    return conn


async def statements_on_loop(conn: AsyncConnection, on: bool) -> None:
    """`Connection.statements_on_loop` for the SQLAlchemy connection `conn` (made by `connect`)."""
    driver = (await conn.get_raw_connection()).driver_connection
    if not isinstance(driver, Connection):
        raise TypeError(
            f"statements run on the loop on connections made by aiosqlite_fast.connect, not {driver!r}"
        )
    await driver.statements_on_loop(on)
