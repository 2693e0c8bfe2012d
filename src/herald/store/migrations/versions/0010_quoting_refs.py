"""turns and outbox items keep their message's quoting handle, so a quoted message's text can be
found; turns keep their message's images, for models that see them; a conversation's summary of
the turns that left the model's window

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("agent_turns", "outbox_items"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("ref", sa.String(length=128), nullable=True))
        op.create_index(f"ix_{table}_conversation_ref", table, ["conversation", "ref"])
    with op.batch_alter_table("agent_turns") as batch:
        batch.add_column(sa.Column("images", sa.Text(), nullable=True))
    op.create_table(
        "conversation_summaries",
        sa.Column("conversation", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation", name=op.f("pk_conversation_summaries")),
    )


def downgrade() -> None:
    op.drop_table("conversation_summaries")
    with op.batch_alter_table("agent_turns") as batch:
        batch.drop_column("images")
    for table in ("agent_turns", "outbox_items"):
        op.drop_index(f"ix_{table}_conversation_ref", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("ref")
