"""The gateway's resume point: where the platform should continue after a restart."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base
from herald.store.types import UTCDateTime


class GatewaySession(Base):
    """One gateway session per bot and shard: its id and the last `s` whose event is stored.

    `seq` only moves once the event it numbers is durably recorded, so a Resume from it makes
    the platform replay exactly what was received but not stored (and, harmlessly, what was
    stored after the last write of this row: inbound dedup drops those).
    """

    __tablename__ = "gateway_sessions"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shard: Mapped[str] = mapped_column(String(32), primary_key=True)  # "<shard_id>/<num_shards>"
    session_id: Mapped[str] = mapped_column(String(255))
    seq: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
