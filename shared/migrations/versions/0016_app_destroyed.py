"""Apps can be destroyed (`apps destroy`): when, recorded on the app

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shipyard.shared.models import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("app") as batch:
        batch.add_column(sa.Column("destroyed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # Without the column, a destroyed app would be an app again (listed, routed, deployable).
    destroyed = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM app WHERE destroyed_at IS NOT NULL"))
        .scalar()
    )
    if destroyed:
        raise RuntimeError(
            f"{destroyed} destroyed app(s) are in the store: before this migration, nothing "
            "could tell them from live ones; downgrade a copy without them, or stay at 0016"
        )
    with op.batch_alter_table("app") as batch:
        batch.drop_column("destroyed_at")
