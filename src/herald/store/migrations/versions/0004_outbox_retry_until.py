"""outbox: retries bounded by time, items that expire

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null on items stored before this revision: they are retried for `retry_for_s` from their creation.
    op.add_column("outbox_items", sa.Column("retry_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox_items", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox_items", "expires_at")
    op.drop_column("outbox_items", "retry_until")
