"""The run host's supervision of its apps (serve.apps): what it does once an app is destroyed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from sqlmodel import Session, select

from shipyard.serve.apps import AppSupervisor
from shipyard.shared import migrate, processes
from shipyard.shared.db import get_engine, session_scope
from shipyard.shared.models import Deployment, Pipeline, PipelineStatus, utcnow
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.shared.services import apps, deployments, destroy, standby
from shipyard.shared.settings import Settings
from shipyard.workers.context import WorkerContext
from tests.shared.factories import make_artifact, make_pipeline, make_release


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkerContext]:
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.sqlalchemy_url)
    yield WorkerContext.create(settings, Celery("shipyard-tests"))
    get_engine(settings.sqlalchemy_url).dispose()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing for an app's (its own process group, as the local runner starts)."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True
    )
    yield child
    child.kill()
    child.wait()


def _live_app(context: WorkerContext, record: dict[str, object]) -> None:
    with session_scope(context.db_url) as session:
        app = apps.create_app(session=session, data=AppCreate(name="web", repo="/srv/web"))
        environment = apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name="staging")
        )
        release = make_release(session, app, environment, make_artifact(session, app))
        deployment = deployments.begin_deployment(
            session=session,
            pipeline_id=make_pipeline(session, app, environment).id,
            release=release,
            cause="deploy",
        )
        assert deployment is not None
        deployments.go_live(session=session, deployment=deployment, processes=[record])


def _destroy(context: WorkerContext) -> None:
    with Session(get_engine(context.db_url)) as session:
        app = apps.get_app(session=session, name="web")
        for pipeline in session.exec(select(Pipeline)):
            pipeline.status = PipelineStatus.SUCCEEDED
            session.add(pipeline)
        destroy.destroy_app(session=session, app=app, confirm="web")
        session.commit()


def test_a_destroyed_apps_processes_stop_and_its_storage_and_files_go(
    context: WorkerContext, sleeper: subprocess.Popen[bytes]
) -> None:
    settings = context.settings
    storage = settings.storage_dir / "web" / "staging"
    (storage / "uploads").mkdir(parents=True)
    (storage / "uploads" / "photo.jpg").write_text("the app's data")
    unpacked = settings.run_dir / "web" / "_artifacts" / "abc123"
    unpacked.mkdir(parents=True)
    record = {
        "type": "worker",
        "status": "running",
        "pid": sleeper.pid,
        "started": processes.start_time(sleeper.pid),
        "host": settings.host_name,
        "storage": str(storage),
    }
    _live_app(context, record)
    supervisor = AppSupervisor(context)
    supervisor.stop_stale()
    assert processes.is_alive(sleeper.pid, None)  # live: left alone

    _destroy(context)
    supervisor.stop_stale()
    supervisor.prune()

    sleeper.wait(timeout=30)  # stopped (a timeout here fails the test)
    assert not storage.exists()  # out of the way of a new app called web
    (aside,) = (settings.storage_dir / ".destroyed").iterdir()
    assert aside.name.startswith("web.staging-")
    assert (aside / "uploads" / "photo.jpg").read_text() == "the app's data"
    assert not unpacked.exists()


def test_storage_is_left_to_a_new_app_already_given_the_name(
    context: WorkerContext, sleeper: subprocess.Popen[bytes]
) -> None:
    settings = context.settings
    storage = settings.storage_dir / "web" / "staging"
    storage.mkdir(parents=True)
    record = {
        "type": "worker",
        "status": "running",
        "pid": sleeper.pid,
        "started": processes.start_time(sleeper.pid),
        "host": settings.host_name,
        "storage": str(storage),
    }
    _live_app(context, record)
    _destroy(context)
    with session_scope(context.db_url) as session:  # before this host looked: the name is taken
        apps.create_app(session=session, data=AppCreate(name="web", repo="/srv/new"))

    AppSupervisor(context).stop_stale()

    sleeper.wait(timeout=30)
    assert storage.is_dir()  # the new app's, from now on: not moved from under it


def test_a_release_standing_by_is_stopped_once_its_window_is_past_and_only_then(
    context: WorkerContext, sleeper: subprocess.Popen[bytes]
) -> None:
    record = {
        "type": "worker",
        "status": "running",
        "pid": sleeper.pid,
        "started": processes.start_time(sleeper.pid),
        "host": context.settings.host_name,
    }
    _live_app(context, record)
    with session_scope(context.db_url) as session:  # v2 replaces it; it stands by
        old = deployments.live_deployment(
            session=session, environment_id=session.exec(select(Deployment)).one().environment_id
        )
        assert old is not None
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name="staging")
        release = make_release(session, app, environment, make_artifact(session, app, "b"))
        new = deployments.begin_deployment(
            session=session,
            pipeline_id=make_pipeline(session, app, environment).id,
            release=release,
            cause="deploy",
        )
        assert new is not None
        deployments.go_live(session=session, deployment=new, processes=[])
        standby.stand_by(
            session=session, deployment_id=old.id, environment_id=old.environment_id, seconds=300
        )
        old_id = old.id
    supervisor = AppSupervisor(context)
    supervisor.end_standby()
    supervisor.stop_stale()
    assert processes.is_alive(sleeper.pid, None)  # in its window: left running

    with session_scope(context.db_url) as session:
        ending = session.get(Deployment, old_id)
        assert ending is not None
        ending.standby_until = utcnow() - timedelta(seconds=1)
        session.add(ending)
    supervisor.end_standby()
    # Handed to the stale ones' stop (which retries, and stops containers too).
    assert [record["pid"] for record in supervisor._stale.values()] == [sleeper.pid]
    supervisor.stop_stale()

    sleeper.wait(timeout=30)  # stopped (a timeout here fails the test)
    with session_scope(context.db_url) as session:
        ended = session.get(Deployment, old_id)
        assert ended is not None and ended.retired_at is not None
