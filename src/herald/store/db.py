"""One database handle: the async engine, sessions, and programmatic Alembic migration.

SQLite (the default) runs in WAL mode with a busy timeout so the outbox writer and readers
(the CLI, a second process after a crash) do not trip over each other; PostgreSQL is used as is.
`writes` is the shared group commit of the hot write paths: one held connection on SQLite (one
writer at a time anyway), two on PostgreSQL (which commits concurrently). `lease_connection`
is the leases' own, in autocommit (store/leases.py says why), opened only when used: on
PostgreSQL. `reading()` lends a pooled connection for the hot one-statement reads, in autocommit
on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from herald.store import aiosqlite_fast
from herald.store.batch import GroupCommit
from herald.store.held import HeldConnections

DEFAULT_URL = "sqlite+aiosqlite:///./data/herald.db"
MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CONNECTIONS = 4
SQLITE_CACHE_KIB = 256
# The PostgreSQL advisory lock key held while migrating: b"herald:m" read as a 64-bit integer.
MIGRATION_LOCK = int.from_bytes(b"herald:m", "big")


class Database:
    def __init__(self, url: str = DEFAULT_URL, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_postgresql = self.url.get_backend_name() == "postgresql"
        kwargs: dict[str, Any] = {"echo": echo}
        sqlite_file = self.is_sqlite and _file_database(self.url.database, self.url.query)
        if self.is_sqlite:
            _ensure_sqlite_dir(self.url.database)
            kwargs["connect_args"] = {
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                # One thread round trip per statement (see aiosqlite_fast).
                "async_creator_fn": aiosqlite_fast.connect,
            }
            if sqlite_file:
                # A fixed set of connections (each is a thread of its own): the held writer and
                # three readers. Overflow connections opened for a burst of reads and closed after
                # it cost a thread start each, and left ~20 MB more resident after 10,000
                # conversations (bench/footprint.py). More readers do not answer faster
                # (bench/http_turns.py: the same messages/s with three as with six), and each
                # costs its thread, its page cache and its copy of the schema: six readers were
                # 2.6 MB more than three after 10,000 conversations.
                # (An in-memory database has one connection, which SQLAlchemy shares.)
                kwargs["pool_size"] = SQLITE_CONNECTIONS
                kwargs["max_overflow"] = 0
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
        # What `warm` opens: the readers (on SQLite, all but the writer `writes` holds).
        self.readers = SQLITE_CONNECTIONS - 1 if sqlite_file else 6
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # The shared writer's statements run on the event loop (see aiosqlite_fast); not on an
        # in-memory database, whose one connection the pool's sessions use too. PostgreSQL: two
        # writers, not four: fewer, larger batches and fewer commits to flush cost less CPU per
        # message, Herald's and PostgreSQL's (bench/multi.py, alternated: 7.6-8.8 vs 8.3-9.4 ms
        # over all processes), at the same messages/s; one writer could not keep up.
        self.writes = GroupCommit(
            self.engine, connections=1 if self.is_sqlite else 2, statements_on_loop=sqlite_file
        )
        autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # Leases (store/leases.py): one statement at a time, each its own transaction.
        self.lease_connection = HeldConnections(autocommit, 1)
        # On PostgreSQL a pooled connection in a transaction pays a BEGIN and a ROLLBACK round
        # trip around every read; in autocommit it pays neither (the driver only flags it). On
        # SQLite switching a connection's isolation level is itself a round trip to its thread
        # each way, and a read there begins no transaction worth avoiding.
        self._reader = autocommit if self.is_postgresql else self.engine

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection for reads that need no one snapshot across their statements: on
        PostgreSQL each statement runs in its own transaction (autocommit)."""
        async with self._reader.connect() as conn:
            yield conn

    async def migrate(self) -> None:
        """Bring the schema to Alembic head (idempotent).

        Instances starting at once on an empty database migrate one after the other (the first
        creates the schema, the others find it at head): on PostgreSQL the upgrade holds a
        transaction-scoped advisory lock; on SQLite it runs in one transaction that takes the
        database's write lock first (the driver would otherwise run each DDL statement alone).
        """
        if await self.at_head():
            return
        async with self.engine.begin() as conn:
            if self.is_postgresql:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            elif self.is_sqlite:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            await conn.run_sync(_upgrade_head)

    async def at_head(self) -> bool:
        """Whether the schema is at this code's newest migration, by one query: Alembic and its
        scripts are loaded only to change the schema (loading them to find nothing to do took
        0.06 s of every start). A database another version migrated, or none yet, goes to
        Alembic, which upgrades it or says why it cannot."""
        try:
            async with self.engine.connect() as conn:
                result = await conn.execute(text("SELECT version_num FROM alembic_version"))
                versions = result.scalars().all()
        except DBAPIError:
            return False  # no schema yet (or no database: Alembic reports that)
        return list(versions) == [head_revision()]

    async def warm(self) -> None:
        """Open the readers' pooled connections now, together: a turn's first reads then find
        them ready instead of each paying a connection's setup (on PostgreSQL several round trips)."""
        async with contextlib.AsyncExitStack() as stack:
            opened = await asyncio.gather(
                *(stack.enter_async_context(self.engine.connect()) for _ in range(self.readers))
            )
            await asyncio.gather(*(conn.execute(text("SELECT 1")) for conn in opened))

    async def dispose(self) -> None:
        await self.writes.close()
        await self.lease_connection.close()
        await self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


def _file_database(database: str | None, query: Mapping[str, Any]) -> bool:
    return bool(database) and database != ":memory:" and query.get("mode") != "memory"


def _ensure_sqlite_dir(database: str | None) -> None:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # WAL + NORMAL is durable against process crashes (only an OS crash can lose the last commits).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Each connection's page cache: SQLite's default (2 MB) on each of the pool's connections was
    # 11 of the 21 MB the first 1,000 conversations add (bench/footprint.py); 256 KiB rather than
    # 512 KiB is 1.1 MB less after 10,000. Pages not cached here are still in the OS's page
    # cache: bench/http_turns.py measured no difference in CPU at either size.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def head_revision() -> str:
    """The newest migration's revision: each script is named after its revision (a test holds
    this to Alembic's own answer)."""
    return max(path.name.partition("_")[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def _upgrade_head(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate_url(url: str) -> None:
    """Convenience for scripts: migrate the database at `url` and close it."""
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.dispose()


if __name__ == "__main__":  # pragma: no cover
    import sys

    asyncio.run(migrate_url(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL))
