"""interactive recall periods used per C2C user; targets that refuse recall

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("target_permissions") as batch:
        batch.add_column(sa.Column("recall_refused", sa.Text(), nullable=True))
    op.create_table(
        "recall_sends",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=True),
        sa.Column("part", sa.Integer(), nullable=True),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recall_sends")),
        sa.UniqueConstraint("target", "since", "period", name="uq_recall_sends_period"),
    )


def downgrade() -> None:
    op.drop_table("recall_sends")
    with op.batch_alter_table("target_permissions") as batch:
        batch.drop_column("recall_refused")
