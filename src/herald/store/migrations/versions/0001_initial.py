"""outbox, reply ledger, permissions, proactive log, media cache

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media_uploads",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("file_info", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_media_uploads")),
    )
    op.create_table(
        "outbox_items",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("conversation", sa.String(length=255), nullable=False),
        sa.Column("origin", sa.String(length=120), nullable=False),
        sa.Column("trigger_id", sa.String(length=255), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("segments", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=120), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(length=16), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("platform_ids", sa.Text(), nullable=True),
        sa.Column("anchor_id", sa.String(length=255), nullable=True),
        sa.Column("msg_seq", sa.Integer(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox_items")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_items_id")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_items_idempotency_key")),
    )
    with op.batch_alter_table("outbox_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_items_conversation_state_seq", ["conversation", "state", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_outbox_items_state_next_attempt_at", ["state", "next_attempt_at"], unique=False
        )

    op.create_table(
        "proactive_sends",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proactive_sends")),
    )
    with op.batch_alter_table("proactive_sends", schema=None) as batch_op:
        batch_op.create_index("ix_proactive_sends_target_sent_at", ["target", "sent_at"], unique=False)

    op.create_table(
        "reply_anchors",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scene", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replies_used", sa.Integer(), nullable=False),
        sa.Column("next_seq", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("dead_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply_anchors")),
    )
    with op.batch_alter_table("reply_anchors", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reply_anchors_target_state_received_at", ["target", "state", "received_at"], unique=False
        )

    op.create_table(
        "reply_reservations",
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("anchor_id", sa.String(length=255), nullable=True),
        sa.Column("msg_seq", sa.Integer(), nullable=True),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("item_id", "part", name=op.f("pk_reply_reservations")),
    )
    op.create_table(
        "target_permissions",
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("proactive", sa.Boolean(), nullable=True),
        sa.Column("proactive_reason", sa.Text(), nullable=True),
        sa.Column("markdown_refused", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", name=op.f("pk_target_permissions")),
    )


def downgrade() -> None:
    op.drop_table("target_permissions")
    op.drop_table("reply_reservations")
    with op.batch_alter_table("reply_anchors", schema=None) as batch_op:
        batch_op.drop_index("ix_reply_anchors_target_state_received_at")

    op.drop_table("reply_anchors")
    with op.batch_alter_table("proactive_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_proactive_sends_target_sent_at")

    op.drop_table("proactive_sends")
    with op.batch_alter_table("outbox_items", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_items_state_next_attempt_at")
        batch_op.drop_index("ix_outbox_items_conversation_state_seq")

    op.drop_table("outbox_items")
    op.drop_table("media_uploads")
