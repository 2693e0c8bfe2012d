"""outbox items say how they went in the platform's words: `route` (was `mode`) and `details`, the
platform's labelled values (was `msg_seq`, a QQ word)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ITEMS = sa.table(
    "outbox_items",
    sa.column("seq", sa.BigInteger()),
    sa.column("msg_seq", sa.Integer()),
    sa.column("details", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("outbox_items") as batch:
        batch.alter_column("mode", new_column_name="route", existing_type=sa.String(length=16))
        batch.add_column(sa.Column("details", sa.Text(), nullable=True))
    connection = op.get_bind()
    # Every row so far is QQ's; its msg_seq becomes the one detail it had. Per distinct msg_seq
    # (a handful of small numbers), not per row.
    seqs = connection.execute(
        sa.select(ITEMS.c.msg_seq).where(ITEMS.c.msg_seq.is_not(None)).distinct()
    ).scalars()
    for msg_seq in list(seqs):
        connection.execute(
            ITEMS.update()
            .where(ITEMS.c.msg_seq == msg_seq)
            .values(details=json.dumps([["msg_seq", str(msg_seq)]]))
        )
    with op.batch_alter_table("outbox_items") as batch:
        batch.drop_column("msg_seq")


def downgrade() -> None:
    with op.batch_alter_table("outbox_items") as batch:
        batch.add_column(sa.Column("msg_seq", sa.Integer(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(ITEMS.c.seq, ITEMS.c.details).where(ITEMS.c.details.is_not(None))
    ).all()
    for seq, details in rows:
        msg_seq = dict(json.loads(details)).get("msg_seq")
        if msg_seq is not None:
            connection.execute(ITEMS.update().where(ITEMS.c.seq == seq).values(msg_seq=int(msg_seq)))
    with op.batch_alter_table("outbox_items") as batch:
        batch.drop_column("details")
        batch.alter_column("route", new_column_name="mode", existing_type=sa.String(length=16))
