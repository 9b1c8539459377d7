"""The app's folder in the commit is part of the build cache key (`apps update --path`)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 05:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CURRENT = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    for table in ("build", "artifact"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "path",
                    sqlmodel.sql.sqltypes.AutoString(length=1024),
                    nullable=False,
                    server_default="",
                )
            )
        # What was built so far was built from the app's folder of then: its folder now.
        op.execute(
            f"UPDATE {table} SET path = (SELECT path FROM app WHERE app.id = {table}.app_id) "
            "WHERE app_id IN (SELECT id FROM app WHERE path <> '')"
        )
    op.drop_index("uq_artifact_current_build", table_name="artifact")
    op.create_index(
        "uq_artifact_current_build",
        "artifact",
        ["app_id", "commit_sha", "builder", "path"],
        unique=True,
        sqlite_where=_CURRENT,
        postgresql_where=_CURRENT,
    )


def downgrade() -> None:
    op.drop_index("uq_artifact_current_build", table_name="artifact")
    op.create_index(
        "uq_artifact_current_build",
        "artifact",
        ["app_id", "commit_sha", "builder"],
        unique=True,
        sqlite_where=_CURRENT,
        postgresql_where=_CURRENT,
    )
    for table in ("build", "artifact"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("path")
