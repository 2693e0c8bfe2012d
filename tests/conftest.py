"""Shared fixtures. Sections are owned by different parts of the project; edit additively."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# --- storage (owned by store/delivery) ------------------------------------------------------
# Every storage-touching test runs on SQLite and on PostgreSQL. Each PostgreSQL test gets its
# own fresh database, because several people run tests against the same server at once.

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL_TEMPLATE = "postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def _pg_admin(sql: str) -> None:
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _fresh_pg_database() -> str:
    name = f"herald_t_{secrets.token_hex(6)}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    return name


def _drop_pg_database(name: str) -> None:
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of the parametrized backend (fresh per test)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'herald.db'}"
        return
    try:
        name = _fresh_pg_database()
    except OSError as exc:  # the server is down: say so rather than silently skipping half the suite
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}); start it or deselect -k sqlite")
    try:
        yield PG_URL_TEMPLATE.format(name=name)
    finally:
        _drop_pg_database(name)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[object]:
    """A migrated `herald.store.Database` on the parametrized backend."""
    from herald.store.db import Database

    database = Database(db_url)
    await database.migrate()
    try:
        yield database
    finally:
        await database.dispose()


# --- end storage ----------------------------------------------------------------------------
