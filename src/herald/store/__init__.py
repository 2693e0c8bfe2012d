"""Herald's storage: SQLAlchemy 2 (async) tables on one `Base`, migrated by Alembic."""

from herald.store.base import Base
from herald.store.db import Database

__all__ = ["Base", "Database"]
