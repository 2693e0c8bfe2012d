"""The one-round-trip aiosqlite cursor behaves like aiosqlite's own: buffered fetches in order,
rowcount and lastrowid after the (already closed) statement, errors raised from the statement."""

from __future__ import annotations

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
