from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from herald.store.db import Database


async def test_migrate_creates_tables_and_is_idempotent(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.migrate()
        await db.migrate()
        async with db.engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            version = (await conn.execute(text("select version_num from alembic_version"))).scalar_one()
        assert {"outbox_items", "reply_anchors", "reply_reservations", "target_permissions"} <= names
        assert version >= "0001"
    finally:
        await db.dispose()


async def test_sqlite_runs_in_wal_mode_and_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "herald.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.migrate()
        async with db.session() as session:
            mode = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
            timeout = (await session.execute(text("PRAGMA busy_timeout"))).scalar_one()
        assert mode == "wal"
        assert timeout > 0
        assert path.exists()
    finally:
        await db.dispose()


# One process that migrates `argv[1]` once its parent says go (so several start at the same moment).
_MIGRATE_ON_GO = """
import asyncio, sys
from herald.store.db import migrate_url
print("ready", flush=True)
sys.stdin.readline()
asyncio.run(migrate_url(sys.argv[1]))
"""


async def test_processes_migrating_one_fresh_database_at_once_all_succeed(db_url: str) -> None:
    # Several `herald run` starting at once on an empty database.
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MIGRATE_ON_GO,
            db_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    async with asyncio.timeout(120):
        for process in processes:
            assert process.stdout is not None
            assert await process.stdout.readline() == b"ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        outcomes = [await process.communicate() for process in processes]
    errors = [stderr.decode()[-2000:] for _, stderr in outcomes if stderr]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            versions = (await conn.execute(text("select version_num from alembic_version"))).scalars().all()
        assert len(versions) == 1
    finally:
        await db.dispose()
