"""The one-round-trip aiosqlite cursor behaves like aiosqlite's own: buffered fetches in order,
rowcount and lastrowid after the (already closed) statement, errors raised from the statement."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from herald.store import aiosqlite_fast


async def test_fetches_rowcount_lastrowid_and_errors(tmp_path: Path) -> None:
    conn = aiosqlite_fast.connect(str(tmp_path / "t.db"))
    async with conn:
        async with conn.cursor() as cursor:
            await cursor.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            await cursor.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",), ("c",), ("d",)])
            assert cursor.rowcount == 4
            await cursor.execute("INSERT INTO t (v) VALUES (?)", ("e",))
            assert cursor.lastrowid == 5
            await cursor.execute("SELECT v FROM t ORDER BY id")
            assert [d[0] for d in cursor.description] == ["v"]
            assert await cursor.fetchone() == ("a",)
            # aiosqlite types rows as sqlite3.Row; without a row factory they are plain tuples.
            assert await cursor.fetchmany(2) == [("b",), ("c",)]  # type: ignore[comparison-overlap]
            assert await cursor.fetchall() == [("d",), ("e",)]  # type: ignore[comparison-overlap]
            assert await cursor.fetchone() is None
            with pytest.raises(Exception, match="no such table"):
                await cursor.execute("SELECT * FROM missing")
        await conn.commit()


async def test_on_the_loop_a_statement_that_finds_the_lock_taken_waits_on_the_thread(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    setup.commit()
    setup.execute("PRAGMA busy_timeout=7000")  # what `statements_on_loop(False)` must restore below
    conn = aiosqlite_fast.connect(path)
    async with conn:
        await conn.execute("PRAGMA busy_timeout=7000")
        await conn.statements_on_loop(True)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        other.execute("INSERT INTO t (v) VALUES ('other')")
        async with conn.cursor() as cursor:
            rows = iter([("a",), ("b",)])  # consumed once: the retry must see the same rows
            writing = asyncio.create_task(cursor.executemany("INSERT INTO t (v) VALUES (?)", rows))
            loop = asyncio.get_running_loop()
            started = loop.time()
            await asyncio.sleep(0.2)
            # Waiting for the lock, and not on the loop: that would have held it up for the 7 s.
            assert not writing.done()
            assert loop.time() - started < 5
            other.execute("COMMIT")
            async with asyncio.timeout(10):
                await writing
            assert cursor.rowcount == 2
        await conn.commit()
        async with conn.execute("SELECT v FROM t ORDER BY id") as read:
            assert [row[0] for row in await read.fetchall()] == ["other", "a", "b"]
        await conn.statements_on_loop(False)
        async with conn.execute("PRAGMA busy_timeout") as read:
            assert await read.fetchone() == (7000,)
        other.close()
    setup.close()
