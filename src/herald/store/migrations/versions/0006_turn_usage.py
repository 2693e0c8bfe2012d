"""turns record the model tokens they used and the model that answered last

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agent_turns") as batch:
        batch.add_column(sa.Column("input_tokens", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("output_tokens", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("model_name", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agent_turns") as batch:
        batch.drop_column("model_name")
        batch.drop_column("output_tokens")
        batch.drop_column("input_tokens")
