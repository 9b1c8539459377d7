"""HTTPS: certificates for environments' domains, the ACME account, redirect and HSTS settings

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 07:00:00
"""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import shipyard.shared.models

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environment") as batch:
        batch.add_column(
            sa.Column(
                "https_redirect", sa.Boolean(), server_default=sa.text("true"), nullable=False
            )
        )
        batch.add_column(
            sa.Column("hsts", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    certificate = op.create_table(
        "certificate",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("environment_id", sa.Uuid(), nullable=False),
        sa.Column("domain", sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=True),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("issuer", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("not_before", shipyard.shared.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("not_after", shipyard.shared.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at", shipyard.shared.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "ordering_since", shipyard.shared.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", shipyard.shared.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shipyard.shared.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["environment_id"], ["environment.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("domain"),
    )
    op.create_index(
        op.f("ix_certificate_environment_id"), "certificate", ["environment_id"], unique=False
    )
    op.create_table(
        "acme_account",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("directory_url", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("uri", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True),
        sa.Column("created_at", shipyard.shared.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("directory_url"),
    )
    _order_existing_domains(certificate)


def _order_existing_domains(certificate: sa.Table) -> None:
    """Each domain an environment (of an app not destroyed) already has is due an order now,
    as one added from now on is."""
    rows = op.get_bind().execute(
        sa.text(
            "SELECT environment.id, environment.domains FROM environment "
            "JOIN app ON app.id = environment.app_id WHERE app.destroyed_at IS NULL"
        )
    )
    now = datetime.now(UTC)
    seen: set[str] = set()
    pending = []
    for environment_id, domains in rows:
        # JSON comes back parsed from PostgreSQL, as text from SQLite.
        for domain in json.loads(domains) if isinstance(domains, str) else domains or []:
            if domain in seen:
                continue
            seen.add(domain)
            pending.append(
                {
                    "id": uuid.uuid4(),
                    "environment_id": uuid.UUID(str(environment_id)),
                    "domain": domain,
                    "source": "acme",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if pending:
        op.bulk_insert(certificate, pending)


def downgrade() -> None:
    op.drop_table("acme_account")
    op.drop_index(op.f("ix_certificate_environment_id"), table_name="certificate")
    op.drop_table("certificate")
    with op.batch_alter_table("environment") as batch:
        batch.drop_column("hsts")
        batch.drop_column("https_redirect")
