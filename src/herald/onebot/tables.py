"""The OneBot send record: one row per message of an outbox item, written before the action is
sent. OneBot has no dedup of its own, so this is what keeps a resend after a crash from showing a
message twice (on the store's `Base`, so Alembic sees it; only `herald.onebot` reads it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base
from herald.store.types import UTCDateTime


class OneBotSend(Base):
    """Part `part` of outbox item `item_id`: asked for at `requested_at`; `message_id` once the
    implementation answered. A row without `message_id` is a send whose answer never came: it may
    have gone out, so it is not sent again."""

    __tablename__ = "onebot_sends"

    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(String(64))
