"""The durable outbox: one row per message Herald means to send, written before any network call."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base
from herald.store.types import BigId, UTCDateTime


class OutboxItem(Base):
    __tablename__ = "outbox_items"

    # `seq` orders items: per-conversation FIFO is "lowest seq first".
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    conversation: Mapped[str] = mapped_column(String(255))  # Target.key
    origin: Mapped[str] = mapped_column(String(120))
    trigger_id: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    segments: Mapped[str] = mapped_column(Text)  # JSON, see herald.delivery.codec
    # pending -> delivered | failed (the platform said no) | dead (gave up retrying)
    # | unknown (the request may have arrived and a resend could duplicate it: not resent);
    # streaming -> delivered (its final frame arrived) | pending (not streamed: sent plainly)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Retry-later errors are retried until then (set at enqueue and by an operator's retry); null
    # on rows older than this column: `created_at` + `retry_for_s`.
    retry_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # After this the message no longer makes sense (a job's next slot): it is not sent, even once.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Which instance works on the item and until when (an expired lease may be taken over); on a
    # finished item, which instance finished it.
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The outcome (or the last error while still pending).
    code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(16))
    # How a delivered item went, in the platform's words (`Sent.route`, `Sent.details`).
    route: Mapped[str | None] = mapped_column(String(16))
    platform_ids: Mapped[str | None] = mapped_column(Text)  # JSON list
    anchor_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[str | None] = mapped_column(Text)  # JSON list of [label, value]
    ref: Mapped[str | None] = mapped_column(String(128))  # the delivered message's quoting handle
    # A streamed reply (state "streaming" while it is open): the platform's handle of the stream
    # after its last accepted frame; `segments` then hold the text that frame showed.
    stream: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_outbox_items_conversation_state_seq", "conversation", "state", "seq"),
        Index("ix_outbox_items_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_outbox_items_conversation_ref", "conversation", "ref"),
    )
