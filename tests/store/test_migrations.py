"""Migrations upgrade a database written by an earlier Herald, keeping what it holds (both backends)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from herald.store.db import MIGRATIONS, Database, head_revision

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _to(revision: str, *, down: bool = False) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    return run


async def test_0015_keeps_how_each_outbox_item_went_as_route_and_details(db_url: str) -> None:
    db = Database(db_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_to("0014"))
            # What Herald wrote before 0015: QQ's `mode` and `msg_seq` on the row.
            for seq, (mode, msg_seq) in enumerate([("passive", 3), ("proactive", None), (None, None)], 1):
                await conn.execute(
                    text(
                        "INSERT INTO outbox_items (seq, id, conversation, origin, segments, state, "
                        "attempts, next_attempt_at, created_at, updated_at, mode, msg_seq) VALUES "
                        "(:seq, :id, 'c2c:u1', 'agent:tool', '[]', 'delivered', 1, :now, :now, :now, "
                        ":mode, :msg_seq)"
                    ),
                    {"seq": seq, "id": f"item-{seq}", "now": NOW, "mode": mode, "msg_seq": msg_seq},
                )
        await db.migrate()
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(text("SELECT id, route, details FROM outbox_items ORDER BY seq"))
            ).all()
        assert [tuple(row) for row in rows] == [
            ("item-1", "passive", '[["msg_seq", "3"]]'),
            ("item-2", "proactive", None),
            ("item-3", None, None),
        ]

        async with db.engine.begin() as conn:
            await conn.run_sync(_to("0014", down=True))
            back = (await conn.execute(text("SELECT id, mode, msg_seq FROM outbox_items ORDER BY seq"))).all()
        assert [tuple(row) for row in back] == [
            ("item-1", "passive", 3),
            ("item-2", "proactive", None),
            ("item-3", None, None),
        ]
    finally:
        await db.dispose()


def test_the_newest_script_name_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


async def test_a_database_at_head_starts_without_alembic_and_one_behind_is_upgraded(db_url: str) -> None:
    db = Database(db_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_to("0015"))
        assert not await db.at_head()
        await db.migrate()  # the one step left
        assert await db.at_head()
        async with db.engine.connect() as conn:
            assert (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar() == head_revision()
    finally:
        await db.dispose()
    # A restart on the migrated database: its check is one query, and Alembic is never imported.
    check = (
        "import asyncio, sys\n"
        "from herald.store.db import Database\n"
        "async def main():\n"
        f"    db = Database({db_url!r})\n"
        "    await db.migrate()\n"
        "    await db.dispose()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    restart = await asyncio.create_subprocess_exec(
        sys.executable, "-c", check, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await restart.communicate()
    assert restart.returncode == 0, err.decode()
    assert out.decode().strip() == "False"
