"""Alembic environment: runs on the connection `Database.migrate()` hands over (SQLite or PostgreSQL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from herald.store.base import Base
from herald.store.tables import load_all

load_all()
target_metadata = Base.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        # `alembic` on the command line: a sync URL such as sqlite:///data/herald.db.
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///data/herald.db")
        with engine.connect() as conn:
            _migrate(conn)
            conn.commit()
        return
    _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
