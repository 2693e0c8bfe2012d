"""Tool calls waiting for a person's approval: one row per call, stored before anyone is asked,
so a restarted Herald asks nobody twice and still knows what was decided while it was down."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base
from herald.store.types import BigId, UTCDateTime


class ToolApproval(Base):
    """`key` is the tool call's key (`turn:<turn id>:<step>:<call id>`), unique: a resumed turn
    finds its call's approval again. `id` is short, for people to type (`/approve <id>`)."""

    __tablename__ = "tool_approvals"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    turn_id: Mapped[int] = mapped_column(BigId)
    conversation: Mapped[str] = mapped_column(String(255))  # Target.key
    tool: Mapped[str] = mapped_column(String(200))
    arguments: Mapped[str] = mapped_column(Text)  # as shown to the approver
    requester: Mapped[str | None] = mapped_column(String(255))  # the turn's author
    approver: Mapped[str] = mapped_column(String(16))  # user | admin
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | denied | timed_out
    decided_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_tool_approvals_status_deadline", "status", "deadline"),)
