"""A restart of one process type only (`ps:restart web`): the type, on its pipeline

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline") as batch:
        batch.add_column(
            sa.Column("process_type", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("pipeline") as batch:
        batch.drop_column("process_type")
