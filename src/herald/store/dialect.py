"""`INSERT … ON CONFLICT` for the database in use: SQLAlchemy has it per dialect only.

The dialect's module is imported when asked for, so a SQLite start never loads PostgreSQL's
(20 ms of every start, and its memory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert

    Upsert = PostgresInsert | SQLiteInsert


def insert_for(postgresql: bool) -> Callable[[Any], Upsert]:
    """The dialect's `insert`, whose statements have `on_conflict_do_nothing` / `_do_update`."""
    if postgresql:
        from sqlalchemy.dialects import postgresql as dialect

        return dialect.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert
