"""The operator's view of the outbox: list items by state, show one, put failed ones back in line,
cancel what has not been sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from herald.core.segments import Keyboard
from herald.delivery.codec import load_segments
from herald.delivery.outbox import DEAD, FAILED, FINAL_STATES, PENDING, UNKNOWN
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem

ATTENTION = (PENDING, FAILED, DEAD, UNKNOWN)
ALL_STATES = (PENDING, *FINAL_STATES)
RETRYABLE = (FAILED, DEAD, UNKNOWN)  # what an operator may put back in line


async def list_items(db: Database, states: Sequence[str] = ATTENTION, limit: int = 50) -> list[OutboxItem]:
    async with db.session() as session:
        rows = await session.scalars(
            select(OutboxItem)
            .where(OutboxItem.state.in_(states))
            .order_by(OutboxItem.seq.desc())
            .limit(limit)
        )
        return list(rows)


async def find_item(db: Database, item_id: str) -> OutboxItem | None:
    """By full id or an unambiguous prefix (as `list` prints them)."""
    async with db.session() as session:
        rows = list(
            await session.scalars(select(OutboxItem).where(OutboxItem.id.startswith(item_id)).limit(2))
        )
    return rows[0] if len(rows) == 1 else None


async def retry(db: Database, item_id: str, now: datetime, retry_for_s: float) -> bool:
    """Queue a failed, dead or unknown item again (a running Herald picks it up on its next poll),
    with a new `retry_for_s` to retry in. For an unknown item this is the operator's decision that
    a possible duplicate is better than a possible loss."""
    async with db.session() as session:
        result = await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item_id, OutboxItem.state.in_(RETRYABLE))
            .values(
                state=PENDING,
                attempts=0,
                next_attempt_at=now,
                retry_until=now + timedelta(seconds=retry_for_s),
                updated_at=now,
                finished_at=None,
                claimed_by=None,
                lease_until=None,
            )
        )
        await session.commit()
    return bool(getattr(result, "rowcount", 0))


CANCELLED_REASON = "cancelled by the operator before it was sent (not sent)"


async def cancel(db: Database, item_id: str, now: datetime) -> bool:
    """End a pending item `dead` without sending it. An item an instance holds right now (a live
    lease: its request may be on the wire) is left alone, so a cancel never races a send; once the
    attempt ends (sent, or waiting out a retry) it can be cancelled. The waiting receipt resolves
    on the outbox's next poll, and the user is not sent a failure notice: the operator chose this."""
    async with db.session() as session:
        result = await session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.id == item_id,
                OutboxItem.state == PENDING,
                or_(OutboxItem.claimed_by.is_(None), OutboxItem.lease_until < now),
            )
            .values(
                state=DEAD,
                code=None,
                reason=CANCELLED_REASON,
                error_kind=None,
                updated_at=now,
                finished_at=now,
                claimed_by=None,
                lease_until=None,
            )
        )
        await session.commit()
    return bool(getattr(result, "rowcount", 0))


async def counts_by_state(db: Database) -> dict[str, int]:
    """How many outbox items are in each state (every known state, 0 included)."""
    async with db.session() as session:
        rows = await session.execute(select(OutboxItem.state, func.count()).group_by(OutboxItem.state))
        found = {str(state): int(count) for state, count in rows}
    return {state: found.get(state, 0) for state in sorted({*ALL_STATES, *found})}


async def latest_keyboard(db: Database, conversation: str) -> Keyboard | None:
    """The buttons of the newest message sent (or to be sent) to `conversation` that had any:
    what `/choose N` and a click's label refer to."""
    async with db.session() as session:
        raw = await session.scalar(
            select(OutboxItem.segments)
            .where(OutboxItem.conversation == conversation, OutboxItem.segments.like('%"t":"keyboard"%'))
            .order_by(OutboxItem.seq.desc())
            .limit(1)
        )
    if raw is None:
        return None
    return next((s for s in load_segments(raw) if isinstance(s, Keyboard)), None)
