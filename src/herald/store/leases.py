"""Leases shared by several Herald instances on one PostgreSQL database.

A lease is a row (`leases`): a name, the instance holding it and when it expires. Taking one
succeeds when it is free, expired, or already ours (a renewal); a holder that dies simply stops
renewing, and the lease is anyone's once it expires. Expiry is set and compared on the database's
clock (`clock_timestamp()`), so hosts with different clocks agree.

SQLite is one host and one process: nothing there needs a lease, and this module is not used.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text

from herald.store.db import Database

_TAKE = text(
    """
    INSERT INTO leases (name, holder, expires_at)
    VALUES (:name, :holder, clock_timestamp() + make_interval(secs => :ttl))
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE leases.holder = excluded.holder OR leases.expires_at < clock_timestamp()
    RETURNING name
    """
)
_RENEW = text(
    """
    UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => :ttl)
    WHERE holder = :holder AND name = ANY(:names)
    RETURNING name
    """
)
_RELEASE = text("DELETE FROM leases WHERE name = :name AND holder = :holder")
_RELEASE_ALL = text("DELETE FROM leases WHERE holder = :holder AND name LIKE :prefix")
_HOLDER = text("SELECT holder FROM leases WHERE name = :name AND expires_at >= clock_timestamp()")
_LIVE = text("SELECT count(*) FROM leases WHERE name LIKE :prefix AND expires_at >= clock_timestamp()")


class Leases:
    """The leases this instance (`holder`) takes, renews and gives back.

    Each statement that writes is a transaction of its own (autocommit), run one at a time on the
    held `Database.lease_connection`; never a unit of the hot writers' group commit. A batch there
    that took one lease and gave back another held both rows' locks until its commit, and two
    batches (this instance's, or two instances') that met on lease rows in the other order
    deadlocked: PostgreSQL fails one after its `deadlock_timeout` (1 s), stalling every unit of
    the batch. A statement alone locks one row (`take`, `release`) or rows of one holder only
    (`renew`, `release_all`), and an instance runs its statements one at a time, so no two waits
    can close a circle. Reads (`live`, `holder_of`) lock nothing and take a `Database.reading()`
    connection.
    """

    def __init__(self, db: Database, holder: str) -> None:
        if not db.is_postgresql:
            raise ValueError("leases are for several instances on one PostgreSQL database")
        self.db = db
        self.holder = holder

    async def take(self, name: str, ttl_s: float) -> bool:
        """Take (or renew) `name` for `ttl_s` seconds; False while another live instance holds it."""
        async with self.db.lease_connection.transaction() as conn:
            result = await conn.execute(_TAKE, {"name": name, "holder": self.holder, "ttl": ttl_s})
            return result.first() is not None

    async def renew(self, names: Iterable[str], ttl_s: float) -> set[str]:
        """Extend the leases among `names` that this instance still holds; returns those."""
        wanted = list(names)
        if not wanted:
            return set()
        async with self.db.lease_connection.transaction() as conn:
            result = await conn.execute(_RENEW, {"names": wanted, "holder": self.holder, "ttl": ttl_s})
            return {row[0] for row in result}

    async def release(self, name: str) -> None:
        async with self.db.lease_connection.transaction() as conn:
            await conn.execute(_RELEASE, {"name": name, "holder": self.holder})

    async def release_all(self, prefix: str = "") -> None:
        """Give back every lease this instance holds whose name starts with `prefix` (a previous
        run of this instance, which is gone now, held them)."""
        async with self.db.lease_connection.transaction() as conn:
            await conn.execute(_RELEASE_ALL, {"holder": self.holder, "prefix": _like(prefix)})

    async def live(self, prefix: str) -> int:
        """How many live leases, any instance's, have a name starting with `prefix`."""
        async with self.db.reading() as conn:
            return int((await conn.execute(_LIVE, {"prefix": _like(prefix)})).scalar() or 0)

    async def holder_of(self, name: str) -> str | None:
        """The live holder of `name`, if any."""
        async with self.db.reading() as conn:
            value = (await conn.execute(_HOLDER, {"name": name})).scalar()
        return None if value is None else str(value)


def _like(prefix: str) -> str:
    """A LIKE pattern for names starting with `prefix`, taken literally."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
