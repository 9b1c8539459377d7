"""Indexes for lookups on every pipeline's path that read an app's or environment's history

The build cache's lookup read all of an app's builds, and the live deployment's lookup all of an
environment's deployments whenever a prepared statement's generic plan could not use the partial
index; both grew with history (found by the benchmark harness).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 18:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # It starts with app_id: the app's own index is no longer needed.
    op.create_index("ix_build_cache", "build", ["app_id", "commit_sha", "builder", "created_at"])
    op.drop_index("ix_build_app_id", table_name="build")
    op.create_index("ix_deployment_environment_status", "deployment", ["environment_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_deployment_environment_status", table_name="deployment")
    op.create_index("ix_build_app_id", "build", ["app_id"])
    op.drop_index("ix_build_cache", table_name="build")
