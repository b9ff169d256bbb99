"""Accounts: billing state on users, processed billing webhooks.

Revision ID: 0002_accounts
Revises: 0001_foundation
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_accounts"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("accounts",)
depends_on: str | Sequence[str] | None = None

# Aware UTC timestamps: timestamptz on PostgreSQL, sortable ISO text on SQLite.
_UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("billing_customer_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("billing_subscription_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("billing_event_at", _UTC_DATETIME, nullable=True))
    op.create_index("ix_users_billing_customer_id", "users", ["billing_customer_id"])
    op.create_index("ix_users_billing_subscription_id", "users", ["billing_subscription_id"])
    op.create_table(
        "billing_webhook_events",
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("received_at", _UTC_DATETIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("billing_webhook_events")
    op.drop_index("ix_users_billing_subscription_id", table_name="users")
    op.drop_index("ix_users_billing_customer_id", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("billing_event_at")
        batch.drop_column("billing_subscription_id")
        batch.drop_column("billing_customer_id")
