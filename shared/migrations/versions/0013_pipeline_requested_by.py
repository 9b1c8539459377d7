"""Who asked for each pipeline: the token's (or webhook's, schedule's) name

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline") as batch:
        batch.add_column(
            sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("pipeline") as batch:
        batch.drop_column("requested_by")
