"""The QQ reply ledger's tables: anchors, per-item reservations, target permissions, proactive log,
and the rich-media upload cache.

On the store's `Base` (so Alembic sees them, see `herald.store.tables.load_all`), owned by `qq/`:
nothing outside it reads them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base
from herald.store.types import BigId, UTCDateTime


class ReplyAnchor(Base):
    """An inbound user message id or a replyable event envelope id. Never a bot-sent id."""

    __tablename__ = "reply_anchors"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "message" | "event"
    scene: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(255))  # Target.key
    event_type: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    replies_used: Mapped[int] = mapped_column(Integer, default=0)
    next_seq: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16), default="live")  # live | spent | invalid
    dead_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_reply_anchors_target_state_received_at", "target", "state", "received_at"),)


class ReplyReservation(Base):
    """The route reserved for one platform message of one outbox item (an item may be several parts).

    Written before the request; a retry of the same item reuses it, so the platform's (msg_id,
    msg_seq) dedup turns a resend after a crash into `40054005` instead of a duplicate.
    `requested_at` is committed before the request is made and cleared when the platform answers
    with a refusal: set without a `sent_id`, the request may have arrived unanswered (crash,
    timeout), and a route without platform dedup must not be tried again (OUTCOME_UNKNOWN).
    """

    __tablename__ = "reply_reservations"

    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))  # passive | event | proactive
    anchor_id: Mapped[str | None] = mapped_column(String(255))
    msg_seq: Mapped[int | None] = mapped_column(Integer)
    reserved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_id: Mapped[str | None] = mapped_column(String(255))  # set once this part arrived
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TargetPermission(Base):
    """What the platform told us about a target: proactive allowed/refused, markdown refused."""

    __tablename__ = "target_permissions"

    target: Mapped[str] = mapped_column(String(255), primary_key=True)
    proactive: Mapped[bool | None] = mapped_column(Boolean)
    proactive_reason: Mapped[str | None] = mapped_column(Text)
    markdown_refused: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when the platform said this target cannot get interactive recall messages (40034123).
    recall_refused: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProactiveSend(Base):
    """One accepted proactive send: the basis for per-target rate and monthly-quota checks."""

    __tablename__ = "proactive_sends"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(255))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_proactive_sends_target_sent_at", "target", "sent_at"),)


class MediaUpload(Base):
    """A `file_info` from a scene's `/files` upload, reusable in that scene until it expires."""

    __tablename__ = "media_uploads"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)  # scene + content hash
    file_info: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None = long-lived


class RecallSend(Base):
    """One interactive recall ("is_wakeup") period used (or reserved) for a C2C user.

    The platform allows one recall per period, the periods counted in calendar days (Beijing
    time) from the user's last message (`since`). The row is written in the commit that reserves
    the route, so a resend after a crash cannot use a second period; unique per (target, since,
    period), so two instances cannot both take one.
    """

    __tablename__ = "recall_sends"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(255))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    period: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[str | None] = mapped_column(String(64))
    part: Mapped[int | None] = mapped_column(Integer)
    reserved_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("target", "since", "period", name="uq_recall_sends_period"),)


class LearnedCapability(Base):
    """Something the platform refuses a bot as a whole, learned from its answers (or suspected,
    while the evidence is short of enough)."""

    __tablename__ = "learned_capabilities"

    bot: Mapped[str] = mapped_column(String(64), primary_key=True)  # the app id
    capability: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # "refused" | "suspected"
    code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of what was seen
    learned_at: Mapped[datetime] = mapped_column(UTCDateTime)
