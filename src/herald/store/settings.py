"""Values operators set at run time (in the console), stored in `console_settings` and kept in
memory, because the agent reads them on every turn. Every change, and every reset to the
configuration's value, writes one `settings_audit` row in the same transaction: who, when, which
key, the value before and after.

The store knows keys and text only: what a key means, and which values are valid, is up to the
part that reads it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from herald.core.clock import Clock
from herald.store.db import Database
from herald.store.dialect import insert_for
from herald.store.tables.console import ConsoleSetting, SettingsAudit


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    key: str
    old_value: str | None  # None: the configuration's value was in effect
    new_value: str | None  # None: reset to the configuration's value


class SettingsStore:
    """The operator's values for `keys`; a key without one falls back to the configuration."""

    def __init__(self, db: Database, clock: Clock, keys: Collection[str]) -> None:
        self.db = db
        self.clock = clock
        self.keys = frozenset(keys)
        self._values: dict[str, str] = {}
        self._changing = asyncio.Lock()

    async def load(self) -> None:
        """Read the stored values (at start)."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(ConsoleSetting.key, ConsoleSetting.value).where(ConsoleSetting.key.in_(self.keys))
            )
            self._values = {key: value for key, value in rows.all()}

    def get(self, key: str) -> str | None:
        """The operator's value, or None when the configuration's applies."""
        return self._values.get(key)

    async def change(self, key: str, value: str | None, actor: str) -> bool:
        """Store `value` for `key` (None: delete it, back to the configuration's value) and audit it.
        False, and nothing written, when the value is already the one in effect."""
        if key not in self.keys:
            raise KeyError(f"{key!r} is not a setting operators can change")
        async with self._changing:
            async with self.db.session() as session:
                # From the database, not memory: another instance may have changed it since.
                old = await session.scalar(select(ConsoleSetting.value).where(ConsoleSetting.key == key))
                if old == value:
                    self._remember(key, value)
                    return False
                now = self.clock.now()
                if value is None:
                    await session.execute(delete(ConsoleSetting).where(ConsoleSetting.key == key))
                else:
                    insert = insert_for(self.db.is_postgresql)
                    await session.execute(
                        insert(ConsoleSetting)
                        .values(key=key, value=value, updated_at=now)
                        .on_conflict_do_update(
                            index_elements=["key"], set_={"value": value, "updated_at": now}
                        )
                    )
                session.add(SettingsAudit(at=now, actor=actor[:200], key=key, old_value=old, new_value=value))
                await session.commit()
            self._remember(key, value)
            return True

    def _remember(self, key: str, value: str | None) -> None:
        if value is None:
            self._values.pop(key, None)
        else:
            self._values[key] = value


async def recent_changes(db: Database, limit: int = 50) -> list[AuditEntry]:
    """The newest audited changes first."""
    async with db.session() as session:
        rows = await session.scalars(
            select(SettingsAudit).order_by(SettingsAudit.at.desc(), SettingsAudit.id.desc()).limit(limit)
        )
        return [AuditEntry(row.at, row.actor, row.key, row.old_value, row.new_value) for row in rows]
