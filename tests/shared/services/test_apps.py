"""Environments get a router slot each, also when they are created at the same time."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from shipyard.shared.db import StatementCounter, get_engine
from shipyard.shared.exceptions import Conflict, InvalidInput, NotFound
from shipyard.shared.migrate import upgrade
from shipyard.shared.models import App, Environment
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.shared.services import apps


def test_each_environment_gets_the_lowest_free_slot(
    session: Session, staging: Environment, production: Environment
) -> None:
    assert (staging.route_slot, production.route_slot) == (0, 1)


def test_when_every_slot_is_taken_creating_an_environment_says_what_to_raise(
    session: Session, app: App, staging: Environment
) -> None:
    with pytest.raises(Conflict, match="SHIPYARD_ROUTER_SLOTS"):
        apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name="qa"), slots=1
        )


def test_a_second_environment_of_the_same_name_is_still_a_conflict(
    session: Session, app: App, staging: Environment
) -> None:
    with pytest.raises(Conflict, match="already exists"):
        apps.create_environment(session=session, app=app, data=EnvironmentCreate(name="staging"))


def test_environments_created_at_once_on_postgresql_get_distinct_slots(postgres_url: str) -> None:
    upgrade(postgres_url)
    engine = get_engine(postgres_url)
    with Session(engine) as session:
        app = apps.create_app(session=session, data=AppCreate(name="web", repo="/srv/web"))
        session.commit()
        app_id = app.id
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def create(name: str) -> None:
        try:
            with Session(engine) as session:
                owner = session.get(App, app_id)
                assert owner is not None
                barrier.wait(timeout=30)
                apps.create_environment(
                    session=session, app=owner, data=EnvironmentCreate(name=name)
                )
                session.commit()
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(f"env-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    with Session(engine) as session:
        slots = sorted(e.route_slot for e in session.exec(select(Environment)).all())
    assert slots == list(range(6))
    engine.dispose()


def test_a_domain_belongs_to_one_environment(session: Session, app: App) -> None:
    apps.create_environment(
        session=session, app=app, data=EnvironmentCreate(name="prod", domains=["www.example.com"])
    )

    with pytest.raises(Conflict, match="www.example.com already belongs"):
        apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name="qa", domains=["www.example.com"])
        )


def test_a_localhost_name_is_not_a_domain_to_claim(session: Session, app: App) -> None:
    with pytest.raises(InvalidInput, match=".localhost"):
        apps.create_environment(
            session=session,
            app=app,
            data=EnvironmentCreate(name="qa", domains=["staging.web.localhost"]),
        )


def test_an_environment_of_the_noop_runner_takes_no_router_slot(session: Session, app: App) -> None:
    bench = apps.create_environment(
        session=session, app=app, data=EnvironmentCreate(name="bench", runner="noop")
    )

    assert bench.route_slot is None


def test_an_app_and_its_environment_are_found_in_one_statement(
    session: Session, app: App, staging: Environment
) -> None:
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    ids = (app.id, staging.id)
    session.expunge_all()  # not from the session's identity map: from the store

    with StatementCounter(engine) as counter:
        found = apps.app_and_environment(session=session, app="web", name="staging")

    assert len(counter.statements) == 1
    assert (found[0].id, found[1].id) == ids
    assert apps.environment_by_names(session=session, app="web", name="staging").id == ids[1]


def test_a_missing_app_or_environment_is_named_in_its_not_found(
    session: Session, app: App, staging: Environment
) -> None:
    with pytest.raises(NotFound, match="app 'nobody' not found"):
        apps.app_and_environment(session=session, app="nobody", name="staging")
    with pytest.raises(NotFound, match="environment 'qa' of app 'web' not found"):
        apps.app_and_environment(session=session, app="web", name="qa")
