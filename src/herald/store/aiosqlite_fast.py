"""aiosqlite with one thread round trip per statement instead of four.

SQLAlchemy's aiosqlite adapter creates a cursor, executes, fetches all rows and closes the cursor,
each an `await` on aiosqlite's connection thread: a queue hand-off there and a self-pipe wake-up
of the event loop back, which then waits its turn in a busy loop. The shared group commit
(`Database.writes`) runs on one SQLite connection, so these round trips are serialized; measured
on bench/outbox.py they, not SQLite, bounded deliveries per second.

Here the cursor does all four in one call on the connection's thread (rows buffered, cursor closed
at once; description, rowcount and lastrowid stay readable on a closed sqlite3 cursor).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable
from typing import Any

import aiosqlite


def _run(
    conn: sqlite3.Connection, sql: str, parameters: Any, many: bool
) -> tuple[sqlite3.Cursor, list[Any] | None]:
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


class Cursor(aiosqlite.Cursor):
    """Executes, fetches and closes in one round trip; serves fetches from the buffered rows."""

    _rows: list[Any] | None = None
    _next = 0

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Cursor:
        params = [] if parameters is None else parameters
        self._cursor, self._rows = await self._execute(_run, self._conn._conn, sql, params, False)  # type: ignore[no-untyped-call]
        self._next = 0
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Cursor:
        self._cursor, self._rows = await self._execute(_run, self._conn._conn, sql, parameters, True)  # type: ignore[no-untyped-call]
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
    @aiosqlite.context.contextmanager
    async def cursor(self) -> aiosqlite.Cursor:
        """A cursor needs no round trip of its own: each statement makes a fresh sqlite3 cursor."""
        return Cursor(self, None)  # type: ignore[arg-type]


def connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> Connection:
    """For `connect_args={"async_creator_fn": connect}`: called with the arguments the SQLAlchemy
    dialect would pass to `aiosqlite.connect`."""
    conn = Connection(functools.partial(sqlite3.connect, database, **kwargs), iter_chunk_size)
    # As SQLAlchemy does for aiosqlite's own connections (before 0.22 the connection is the thread).
    thread: Any = getattr(conn, "_thread", conn)
    thread.daemon = True
    return conn
