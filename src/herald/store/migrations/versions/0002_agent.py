"""agent turns and scheduled jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "agent_turns",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("conversation", sa.String(length=255), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("author_id", sa.String(length=255), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("trigger_id", sa.String(length=255), nullable=True),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("messages", sa.Text(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("in_history", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_turns")),
        sa.UniqueConstraint("source_id", name=op.f("uq_agent_turns_source_id")),
    )
    op.create_index("ix_agent_turns_status_id", "agent_turns", ["status", "id"])
    op.create_index("ix_agent_turns_conversation_id", "agent_turns", ["conversation", "id"])
    op.create_table(
        "agent_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("conversation", sa.String(length=255), nullable=False),
        sa.Column("creator_id", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("cron", sa.String(length=120), nullable=True),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("interval_s", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("created_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_jobs")),
        sa.UniqueConstraint("created_key", name=op.f("uq_agent_jobs_created_key")),
    )
    op.create_index("ix_agent_jobs_active_next_run_at", "agent_jobs", ["active", "next_run_at"])
    op.create_index("ix_agent_jobs_conversation", "agent_jobs", ["conversation"])


def downgrade() -> None:
    op.drop_index("ix_agent_jobs_conversation", table_name="agent_jobs")
    op.drop_index("ix_agent_jobs_active_next_run_at", table_name="agent_jobs")
    op.drop_table("agent_jobs")
    op.drop_index("ix_agent_turns_conversation_id", table_name="agent_turns")
    op.drop_index("ix_agent_turns_status_id", table_name="agent_turns")
    op.drop_table("agent_turns")
