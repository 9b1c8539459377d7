"""Migration 0017 (certificates): on SQLite and PostgreSQL, each domain an environment already
has is due an ACME order after the upgrade, and the schema goes down and up again."""

from __future__ import annotations

import json
import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel, select

from shipyard.shared import migrate
from shipyard.shared.db import get_engine
from shipyard.shared.models import Certificate, Environment

CREATED = "2026-01-01 00:00:00"


def _environment_with_domains(url: str, app: str, destroyed: bool, domains: list[str]) -> None:
    """An app with one environment, written as the schema of 0016 has them."""
    app_id, environment_id = uuid.uuid4(), uuid.uuid4()
    postgres = url.startswith("postgresql")
    ids = (str(app_id), str(environment_id)) if postgres else (app_id.hex, environment_id.hex)
    with get_engine(url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO app (id, name, repo, path, builder, created_at, destroyed_at) "
                "VALUES (:id, :name, '/r', '', 'local', :at, :destroyed)"
            ),
            {"id": ids[0], "name": app, "at": CREATED, "destroyed": CREATED if destroyed else None},
        )
        connection.execute(
            text(
                "INSERT INTO environment (id, app_id, name, runner, health_path, health_timeout, "
                "domains, drain_timeout, formation, extra_hosts, created_at) VALUES (:id, :app, "
                "'live', 'local', '/', 5, :domains, 30, '{}', '[]', :at)"
            ),
            {"id": ids[1], "app": ids[0], "domains": json.dumps(domains), "at": CREATED},
        )


def _upgrade_with_domains(url: str) -> None:
    command.downgrade(migrate.alembic_config(url), "0016")
    _environment_with_domains(url, "shop", False, ["shop.example.com", "www.example.com"])
    _environment_with_domains(url, "gone~1", True, ["old.example.com"])
    _environment_with_domains(url, "blog", False, [])
    migrate.upgrade(url)


def _check(url: str) -> None:
    with Session(get_engine(url)) as session:
        rows = session.exec(select(Certificate).order_by(Certificate.domain)).all()
        environments = session.exec(select(Environment)).all()
    environment = next(
        (e for e in environments if e.domains == ["shop.example.com", "www.example.com"]), None
    )
    assert [(r.domain, r.source, r.status, r.attempts) for r in rows] == [
        ("shop.example.com", "acme", "pending", 0),
        ("www.example.com", "acme", "pending", 0),
    ]
    assert all(r.next_attempt_at is not None for r in rows)
    assert environment is not None
    assert (environment.https_redirect, environment.hsts) == (True, False)
    with get_engine(url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []
    command.downgrade(migrate.alembic_config(url), "0016")
    assert "certificate" not in inspect(get_engine(url)).get_table_names()
    migrate.upgrade(url)
    assert {"certificate", "acme_account"} <= set(inspect(get_engine(url)).get_table_names())


def test_existing_domains_are_due_an_order_after_the_upgrade_on_sqlite(db_url: str) -> None:
    _upgrade_with_domains(db_url)

    _check(db_url)


@pytest.mark.usefixtures("postgres_server")
def test_existing_domains_are_due_an_order_after_the_upgrade_on_postgresql(
    postgres_url: str,
) -> None:
    migrate.upgrade(postgres_url)
    _upgrade_with_domains(postgres_url)

    _check(postgres_url)
