from __future__ import annotations

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
