"""One current artifact per (app, commit, builder): a garbage-collected one may be rebuilt

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 17:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ["app_id", "commit_sha", "builder"]
_CURRENT = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's unique constraint was created unnamed: name it through a convention to drop it.
        with op.batch_alter_table(
            "artifact", naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"}
        ) as batch_op:
            batch_op.drop_constraint("uq_artifact_app_id", type_="unique")
    else:
        op.drop_constraint("artifact_app_id_commit_sha_builder_key", "artifact", type_="unique")
    op.create_index(
        "uq_artifact_current_build",
        "artifact",
        _COLUMNS,
        unique=True,
        sqlite_where=_CURRENT,
        postgresql_where=_CURRENT,
    )


def downgrade() -> None:
    op.drop_index(
        "uq_artifact_current_build",
        table_name="artifact",
        sqlite_where=_CURRENT,
        postgresql_where=_CURRENT,
    )
    with op.batch_alter_table("artifact", schema=None) as batch_op:
        batch_op.create_unique_constraint("artifact_app_id_commit_sha_builder_key", _COLUMNS)
