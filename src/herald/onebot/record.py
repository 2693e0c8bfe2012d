"""What the OneBot platform has sent of each outbox item, kept in the database (`tables.py`).

A retry of an item goes on from the first message the implementation did not confirm: the ones it
confirmed are not sent again, and one asked for without an answer (the process died, or the
answer never came) stops the item as unknown rather than risk showing it twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from herald.onebot.tables import OneBotSend
from herald.store.db import Database


class SendRecord:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def parts(self, item_id: str) -> dict[int, OneBotSend]:
        async with self.db.session() as session:
            rows = await session.scalars(select(OneBotSend).where(OneBotSend.item_id == item_id))
            return {row.part: row for row in rows}

    async def requested(self, item_id: str, part: int, at: datetime) -> None:
        """Committed before the action is sent."""
        async with self.db.session() as session:
            session.add(OneBotSend(item_id=item_id, part=part, requested_at=at))
            await session.commit()

    async def answered(self, item_id: str, part: int, message_id: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(OneBotSend)
                .where(OneBotSend.item_id == item_id, OneBotSend.part == part)
                .values(message_id=message_id)
            )
            await session.commit()

    async def not_sent(self, item_id: str, part: int) -> None:
        """The implementation refused it, or it never left: a retry may send it."""
        async with self.db.session() as session:
            await session.execute(
                delete(OneBotSend).where(OneBotSend.item_id == item_id, OneBotSend.part == part)
            )
            await session.commit()
