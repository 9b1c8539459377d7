"""Persistent storage per environment: an optional host directory in place of the default

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environment") as batch_op:
        batch_op.add_column(sa.Column("storage_dir", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("environment") as batch_op:
        batch_op.drop_column("storage_dir")
