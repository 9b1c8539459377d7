"""Alembic migrations: a fresh database gets exactly the schema the models describe."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import shipyard.shared.models  # noqa: F401  (registers every table on SQLModel.metadata)
from shipyard.shared import migrate
from shipyard.shared.db import get_engine

# Every table the models declare, plus Alembic's own.
EXPECTED_TABLES = set(SQLModel.metadata.tables) | {"alembic_version"}
# The core of the domain, so that an empty metadata could not make the test pass.
CORE_TABLES = {
    "app",
    "artifact",
    "build",
    "config_version",
    "deployment",
    "environment",
    "pipeline",
    "release",
    "stage_run",
}


def _head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()


def test_upgrade_creates_every_table_in_a_new_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'shipyard.db'}"

    migrate.upgrade(url)

    try:
        tables = set(inspect(get_engine(url)).get_table_names())
        assert tables == EXPECTED_TABLES
        assert CORE_TABLES <= tables
        with get_engine(url).connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == _head_revision(url)
    finally:
        get_engine(url).dispose()


def test_the_migrated_schema_matches_the_models(db_url: str) -> None:
    with get_engine(db_url).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)

    assert differences == []


def test_the_one_live_deployment_index_is_partial_and_unique(db_url: str) -> None:
    indexes = {
        index["name"]: index for index in inspect(get_engine(db_url)).get_indexes("deployment")
    }

    one_live = indexes["uq_deployment_one_live"]
    assert one_live["unique"]
    assert one_live["column_names"] == ["environment_id"]
    with get_engine(db_url).connect() as connection:
        sql = connection.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'uq_deployment_one_live'")
        ).scalar()
    assert "WHERE status = 'live'" in str(sql)


def test_upgrading_an_up_to_date_database_changes_nothing(db_url: str) -> None:
    with get_engine(db_url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO app (id, name, repo, path, builder, created_at) "
                "VALUES ('0123456789abcdef0123456789abcdef', 'kept', '/r', '', 'local', "
                "'2026-01-01 00:00:00')"
            )
        )

    migrate.upgrade(db_url)

    with get_engine(db_url).connect() as connection:
        assert connection.execute(text("SELECT name FROM app")).scalars().all() == ["kept"]


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(db_url: str) -> None:
    with get_engine(db_url).connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_every_migration_can_be_undone_and_redone(db_url: str) -> None:
    command.downgrade(migrate.alembic_config(db_url), "base")

    assert set(inspect(get_engine(db_url)).get_table_names()) == {"alembic_version"}

    migrate.upgrade(db_url)
    assert set(inspect(get_engine(db_url)).get_table_names()) == EXPECTED_TABLES


def test_migrations_go_down_and_up_again_with_rows_that_refer_to_each_other(
    db_url: str,
) -> None:
    from sqlmodel import Session

    from shipyard.shared.schemas import AppCreate, EnvironmentCreate
    from shipyard.shared.services import apps
    from tests.shared.factories import make_pipeline

    with Session(get_engine(db_url)) as session:
        app = apps.create_app(session=session, data=AppCreate(name="web", repo="/srv/web"))
        environment = apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name="staging")
        )
        make_pipeline(session, app, environment)
        session.commit()

    # Down past the batch rebuilds of `app` (0016) and `pipeline` (0015, 0013), and up again.
    command.downgrade(migrate.alembic_config(db_url), "0012")
    migrate.upgrade(db_url)

    with get_engine(db_url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM pipeline")).scalar() == 1
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1  # on again


def test_a_destroyed_app_keeps_the_store_from_going_below_0016(db_url: str) -> None:
    with get_engine(db_url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO app (id, name, repo, path, builder, created_at, destroyed_at) "
                "VALUES ('a1', 'web~1', '/srv', '', 'local', '2026-01-01', '2026-01-02')"
            )
        )

    try:
        command.downgrade(migrate.alembic_config(db_url), "0015")
    except RuntimeError as exc:
        assert "1 destroyed app(s) are in the store" in str(exc)
    else:
        raise AssertionError("the downgrade went through with a destroyed app in the store")
    assert (
        _head_revision(db_url)
        == ScriptDirectory.from_config(migrate.alembic_config(db_url)).get_current_head()
    )


def test_an_environment_that_runs_somewhere_is_placed_there_by_the_upgrade(db_url: str) -> None:
    command.downgrade(migrate.alembic_config(db_url), "0009")  # before placements existed
    get_engine(db_url).dispose()
    created = "'2026-01-01 00:00:00'"
    with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as raw, raw:
        # Only what the upgrade reads; the rows they refer to do not matter to it.
        raw.execute(
            "INSERT INTO environment (id, app_id, name, runner, health_path, health_timeout, "
            f"created_at) VALUES ('e1', 'a1', 'staging', 'local', '/', 5, {created}), "
            f"('e2', 'a1', 'production', 'local', '/', 5, {created})"
        )
        raw.execute(
            "INSERT INTO deployment (id, environment_id, release_id, cause, status, processes, "
            f"created_at) VALUES ('d1', 'e1', 'r1', 'deploy', 'live', ?, {created}), "
            f"('d2', 'e2', 'r2', 'deploy', 'superseded', ?, {created})",
            (json.dumps([{"type": "web", "host": "alpha"}]), json.dumps([{"host": "beta"}])),
        )

    migrate.upgrade(db_url)

    with get_engine(db_url).connect() as connection:
        placed = dict(connection.execute(text("SELECT name, run_host FROM environment")).all())
    assert placed == {"staging": "alpha", "production": None}  # nothing of production is live
