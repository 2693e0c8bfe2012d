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
from sqlalchemy.ext.asyncio import AsyncSession

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


class Leases:
    """The leases this instance (`holder`) takes, renews and gives back."""

    def __init__(self, db: Database, holder: str) -> None:
        if not db.is_postgresql:
            raise ValueError("leases are for several instances on one PostgreSQL database")
        self.db = db
        self.holder = holder

    async def take(self, name: str, ttl_s: float) -> bool:
        """Take (or renew) `name` for `ttl_s` seconds; False while another live instance holds it."""

        async def work(session: AsyncSession) -> bool:
            result = await session.execute(_TAKE, {"name": name, "holder": self.holder, "ttl": ttl_s})
            return result.first() is not None

        taken: bool = await self.db.writes.run(work)
        return taken

    async def renew(self, names: Iterable[str], ttl_s: float) -> set[str]:
        """Extend the leases among `names` that this instance still holds; returns those."""
        wanted = list(names)
        if not wanted:
            return set()

        async def work(session: AsyncSession) -> set[str]:
            result = await session.execute(_RENEW, {"names": wanted, "holder": self.holder, "ttl": ttl_s})
            return {row[0] for row in result}

        renewed: set[str] = await self.db.writes.run(work)
        return renewed

    async def release(self, name: str) -> None:
        async def work(session: AsyncSession) -> None:
            await session.execute(_RELEASE, {"name": name, "holder": self.holder})

        await self.db.writes.run(work)

    async def release_all(self, prefix: str = "") -> None:
        """Give back every lease this instance holds whose name starts with `prefix` (a previous
        run of this instance, which is gone now, held them)."""

        async def work(session: AsyncSession) -> None:
            like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            await session.execute(_RELEASE_ALL, {"holder": self.holder, "prefix": like})

        await self.db.writes.run(work)

    async def holder_of(self, name: str) -> str | None:
        """The live holder of `name`, if any."""
        async with self.db.engine.connect() as conn:
            value = (await conn.execute(_HOLDER, {"name": name})).scalar()
        return None if value is None else str(value)
