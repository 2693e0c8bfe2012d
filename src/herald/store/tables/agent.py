"""The agent's tables: durable turns (inbound messages, job firings, commands) and scheduled jobs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base
from herald.store.types import BigId, UTCDateTime


class AgentTurn(Base):
    """One unit of work for a conversation, stored before it starts and marked done when it ends.

    `source_id` is unique: the platform's message id for an inbound message (so a redelivered
    message is dropped, durably), or `job:<job id>:<slot>` for a job firing. `messages` holds the
    turn's own pydantic-ai message list (JSON), rewritten after every model response and every
    round of tool results, so a restarted Herald resumes the turn where it stopped.
    """

    __tablename__ = "agent_turns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation: Mapped[str] = mapped_column(String(255))  # Target.key
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # message | command | job
    author_id: Mapped[str | None] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    trigger_id: Mapped[str | None] = mapped_column(String(255))  # inbound message id to reply to
    job_id: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | failed
    messages: Mapped[str | None] = mapped_column(Text)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    in_history: Mapped[bool] = mapped_column(Boolean, default=True)  # false after /reset
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The model tokens of the turn's requests so far, and the model that answered the last one.
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    model_name: Mapped[str | None] = mapped_column(String(200))
    # The inbound message's quoting handle: a later message quoting it names this.
    ref: Mapped[str | None] = mapped_column(String(128))
    # The message's attachments (JSON: url, content_type, size, filename, width, height, transcript):
    # images are shown to a model that sees images; all are offered to plugin tools.
    images: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_agent_turns_status_id", "status", "id"),
        Index("ix_agent_turns_conversation_id", "conversation", "id"),
        Index("ix_agent_turns_conversation_ref", "conversation", "ref"),
    )


class AgentJob(Base):
    """A scheduled job: a cron expression, a one-shot time, or a fixed interval.

    `action` is `agent` (wake the agent in the conversation with `note`) or `send` (send `text`
    as is, for `/every`). `next_run_at` is the next slot (UTC); a missed slot after downtime fires
    once and the next slot is computed from the time of firing, so missed slots coalesce.
    """

    __tablename__ = "agent_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation: Mapped[str] = mapped_column(String(255))
    creator_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # cron | once | interval
    cron: Mapped[str | None] = mapped_column(String(120))
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    interval_s: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # agent | send
    note: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    created_key: Mapped[str | None] = mapped_column(String(255), unique=True)  # idempotent creation
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(64))  # cancelled | deleted | finished
    # A paused job keeps its schedule but does not fire; `pause_reason` says who paused it and why.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pause_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_agent_jobs_active_next_run_at", "active", "next_run_at"),
        Index("ix_agent_jobs_conversation", "conversation"),
    )


class ConversationSummary(Base):
    """What the model wrote of a conversation's turns that left its window (history budget):
    shown to it on every request instead of those turns. `turns` counts the turns it covers."""

    __tablename__ = "conversation_summaries"

    conversation: Mapped[str] = mapped_column(String(255), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    turns: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
