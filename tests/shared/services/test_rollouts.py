"""Rollouts in the store: the plan a pipeline gets, the rollout under way, its commands and
record; on SQLite and on PostgreSQL (the state is read out of a JSON column by SQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session, select

from shipyard.shared import constants
from shipyard.shared.db import get_engine
from shipyard.shared.exceptions import Conflict, InvalidInput
from shipyard.shared.migrate import upgrade
from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    Release,
)
from shipyard.shared.schemas import RolloutPlan, RolloutRecord, RolloutRequest
from shipyard.shared.schemas.rollouts import ReleaseFigures, RolloutStep
from shipyard.shared.services import deployments, rollbacks, rollouts
from shipyard.shared.stages import PipelineKind
from tests.shared.factories import make_artifact, make_release

WEB = {"type": "web", "status": "running", "url": "http://127.0.0.1:5000", "pid": 1}
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """A session on a migrated SQLite file, then on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = request.getfixturevalue("db_url")
    else:
        url = request.getfixturevalue("postgres_url")
        upgrade(url)
    with Session(get_engine(url), expire_on_commit=False) as session:
        yield session


def _environment(rollout: dict[str, Any] | None = None, hosts: list[str] | None = None) -> Any:
    """An environment row as resolve_plan reads it (no database needed)."""
    placed = hosts or []
    return Environment(
        app_id=App(name="web", repo="/srv/web").id,
        name="production",
        rollout=rollout,
        run_host=placed[0] if placed else None,
        extra_hosts=placed[1:],
    )


def _record(state: str, share: int = 10, **plan: Any) -> RolloutRecord:
    return RolloutRecord(
        plan=RolloutPlan(canary=[10, 50], **plan),
        state=state,  # type: ignore[arg-type]
        share=share,
        steps=[
            RolloutStep(
                phase="canary",
                share=10,
                started_at=START,
                canary=ReleaseFigures(requests=523, errors=0, error_rate=0.0, p95_ms=25.0),
                stable=ReleaseFigures(requests=4701, errors=0, error_rate=0.0, p95_ms=25.0),
            )
        ],
    )


def _deploy(session: Session, app: App, environment: Environment, label: str) -> Deployment:
    """A live deployment of a new release of `label`."""
    deployment = _starting(session, app, environment, label)
    deployments.go_live(session=session, deployment=deployment, processes=[WEB])
    session.commit()
    return deployment


def _starting(session: Session, app: App, environment: Environment, label: str) -> Deployment:
    release = make_release(session, app, environment, make_artifact(session, app, label))
    assert release.pipeline_id is not None
    deployment = deployments.begin_deployment(
        session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
    )
    assert deployment is not None
    session.commit()
    return deployment


def _canary(session: Session, app: App, environment: Environment) -> Deployment:
    """v1 live, v2 starting with its canary at 10 %."""
    _deploy(session, app, environment, "one")
    canary = _starting(session, app, environment, "two")
    rollouts.record(session=session, deployment_id=canary.id, record=_record("canary"))
    session.commit()
    return canary


# --- resolve_plan ---------------------------------------------------------------------------


def test_a_plan_that_could_outlast_the_run_stages_task_is_refused() -> None:
    environment = _environment(None)
    environment.health_timeout, environment.drain_timeout = 300.0, 300.0
    request = RolloutRequest(canary=[10, 50], step_seconds=450, watch_seconds=300)  # 1,200 s

    with pytest.raises(InvalidInput, match="longer than a run stage may"):
        rollouts.resolve_plan(environment=environment, kind=PipelineKind.DEPLOY, request=request)
    environment.health_timeout, environment.drain_timeout = 30.0, 30.0
    assert rollouts.resolve_plan(environment=environment, kind=PipelineKind.DEPLOY, request=request)


def test_resolve_plan_lays_the_request_over_the_environments_default() -> None:
    environment = _environment({"canary": [10, 50], "step_seconds": 30, "watch_seconds": 60})

    default = rollouts.resolve_plan(environment=environment, kind=PipelineKind.DEPLOY, request=None)
    asked = rollouts.resolve_plan(
        environment=environment,
        kind=PipelineKind.PROMOTION,
        request=RolloutRequest(canary=[25], step_seconds=90),
    )

    assert default is not None and asked is not None
    assert (default["canary"], default["step_seconds"], default["watch_seconds"]) == (
        [10, 50, 100],
        30,
        60,
    )
    assert (asked["canary"], asked["step_seconds"], asked["watch_seconds"]) == ([25, 100], 90, 60)
    assert asked["max_error_rate"] == constants.CANARY_MAX_ERROR_RATE


def test_an_empty_canary_goes_live_at_once_whatever_the_default() -> None:
    environment = _environment({"canary": [10, 50]})
    watched = _environment({"canary": [10, 50], "watch_seconds": 120})

    at_once = rollouts.resolve_plan(
        environment=environment, kind=PipelineKind.DEPLOY, request=RolloutRequest(canary=[])
    )
    still_watched = rollouts.resolve_plan(
        environment=watched, kind=PipelineKind.DEPLOY, request=RolloutRequest(canary=[])
    )

    assert at_once is None
    assert still_watched is not None
    assert (still_watched["canary"], still_watched["watch_seconds"]) == ([], 120)


def test_no_default_and_no_request_is_no_plan() -> None:
    assert (
        rollouts.resolve_plan(environment=_environment(), kind=PipelineKind.CONFIG, request=None)
        is None
    )


@pytest.mark.parametrize(
    "kind",
    [
        PipelineKind.ROLLBACK,
        PipelineKind.RESTART,
        PipelineKind.SCALE,
        PipelineKind.FAILOVER,
        PipelineKind.PLACEMENT,
    ],
)
def test_pipelines_that_bring_no_new_release_go_live_at_once(kind: PipelineKind) -> None:
    environment = _environment({"canary": [10, 50], "watch_seconds": 60})

    assert (
        rollouts.resolve_plan(
            environment=environment, kind=kind, request=RolloutRequest(canary=[20])
        )
        is None
    )


def test_shares_that_do_not_rise_are_refused_with_the_validators_words() -> None:
    with pytest.raises(InvalidInput, match=r"rollout: canary: canary shares must rise"):
        rollouts.resolve_plan(
            environment=_environment(),
            kind=PipelineKind.DEPLOY,
            request=RolloutRequest(canary=[50, 10]),
        )


def test_a_plan_longer_than_a_rollout_may_take_is_refused() -> None:
    with pytest.raises(InvalidInput, match="more than the 1200s a rollout may take"):
        rollouts.resolve_plan(
            environment=_environment(),
            kind=PipelineKind.DEPLOY,
            request=RolloutRequest(canary=[10, 20, 30], step_seconds=600),
        )


def test_canary_steps_are_planned_on_an_environment_spread_over_several_hosts() -> None:
    spread = _environment({"watch_seconds": 60}, hosts=["alpha", "beta"])

    canary = rollouts.resolve_plan(
        environment=spread, kind=PipelineKind.DEPLOY, request=RolloutRequest(canary=[10])
    )
    assert canary is not None and canary["canary"] == [10, 100] and canary["watch_seconds"] == 60


# --- active, give_command, take_command, record ---------------------------------------------


def test_active_is_a_starting_deployment_in_its_canary_or_a_live_one_watched(
    session: Session, app: App, staging: Environment
) -> None:
    assert rollouts.active(session=session, environment_id=staging.id) is None
    canary = _canary(session, app, staging)

    assert rollouts.active(session=session, environment_id=staging.id) == canary

    deployments.go_live(session=session, deployment=canary, processes=[WEB])
    rollouts.record(session=session, deployment_id=canary.id, record=_record("watching", 100))
    session.commit()
    assert rollouts.active(session=session, environment_id=staging.id) == canary

    rollouts.record(session=session, deployment_id=canary.id, record=_record("done", 100))
    session.commit()
    assert rollouts.active(session=session, environment_id=staging.id) is None


def test_a_live_deployment_whose_record_says_canary_is_not_active(
    session: Session, app: App, staging: Environment
) -> None:
    live = _deploy(session, app, staging, "one")
    rollouts.record(session=session, deployment_id=live.id, record=_record("canary"))
    session.commit()

    assert rollouts.active(session=session, environment_id=staging.id) is None


def test_record_writes_the_rollout_as_json_and_updates_the_loaded_row(
    session: Session, app: App, staging: Environment
) -> None:
    canary = _canary(session, app, staging)

    stored = session.exec(select(Deployment.rollout).where(Deployment.id == canary.id)).one()

    assert stored is not None and stored["state"] == "canary"
    assert stored["steps"][0]["started_at"] == "2026-12-01T12:00:00Z"
    assert canary.rollout == stored
    assert rollouts.record_of(stored) == _record("canary")


def test_give_command_sets_it_on_the_active_rollout_and_take_command_clears_it(
    session: Session, app: App, staging: Environment
) -> None:
    canary = _canary(session, app, staging)

    view = rollouts.give_command(session=session, environment=staging, command="promote")
    session.commit()

    assert (view.deployment_id, view.release_version, view.command) == (canary.id, 2, "promote")
    assert (view.state, view.share, len(view.steps)) == ("canary", 10, 1)
    assert rollouts.take_command(session=session, deployment_id=canary.id) == "promote"
    session.commit()
    assert rollouts.take_command(session=session, deployment_id=canary.id) is None
    stored = session.exec(
        select(Deployment.rollout_command).where(Deployment.id == canary.id)
    ).one()
    assert stored is None


def test_a_later_command_replaces_one_not_taken(
    session: Session, app: App, staging: Environment
) -> None:
    canary = _canary(session, app, staging)

    rollouts.give_command(session=session, environment=staging, command="promote")
    rollouts.give_command(session=session, environment=staging, command="abort")
    session.commit()

    assert rollouts.take_command(session=session, deployment_id=canary.id) == "abort"


def test_give_command_is_a_conflict_when_nothing_runs(
    session: Session, app: App, staging: Environment
) -> None:
    live = _deploy(session, app, staging, "one")
    rollouts.record(session=session, deployment_id=live.id, record=_record("done", 100))
    session.commit()

    with pytest.raises(Conflict, match="no canary or watch runs in staging"):
        rollouts.give_command(session=session, environment=staging, command="abort")


def test_take_command_hands_each_command_to_one_taker(
    session: Session, app: App, staging: Environment
) -> None:
    canary = _canary(session, app, staging)
    rollouts.give_command(session=session, environment=staging, command="abort")
    session.commit()
    engine = session.get_bind()
    barrier = threading.Barrier(4)
    taken: list[str | None] = []

    def take() -> None:
        with Session(engine) as own:
            barrier.wait(timeout=30)
            taken.append(rollouts.take_command(session=own, deployment_id=canary.id))
            own.commit()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(map(str, taken)) == ["None", "None", "None", "abort"]


def test_current_shows_the_rollout_with_its_release_and_command(
    session: Session, app: App, staging: Environment
) -> None:
    assert rollouts.current(session=session, environment=staging) is None
    canary = _canary(session, app, staging)
    rollouts.give_command(session=session, environment=staging, command="abort")
    session.commit()

    view = rollouts.get_current(session=session, environment=staging)

    assert (view.deployment_id, view.release_version, view.command) == (canary.id, 2, "abort")


def test_running_lists_every_rollout_under_way_for_the_metrics(
    session: Session, app: App, staging: Environment, production: Environment
) -> None:
    _canary(session, app, staging)
    _deploy(session, app, production, "three")

    assert rollouts.running(session=session) == [("web", "staging", _record("canary"))]


def test_a_record_that_does_not_parse_is_shown_as_none(
    session: Session, app: App, staging: Environment
) -> None:
    canary = _canary(session, app, staging)
    broken = {**_record("canary").model_dump(mode="json"), "state": "sideways"}
    session.exec(select(Deployment).where(Deployment.id == canary.id)).one().rollout = broken
    session.commit()

    assert rollouts.record_of(broken) is None
    assert rollouts.record_of({"plan": {"canary": [1] * 11}, "state": "canary"}) is None
    view = deployments.deployment_public(session=session, deployment=canary)
    assert view.rollout is None


# --- a rollback takes precedence ------------------------------------------------------------


def test_a_rollback_during_a_canary_makes_it_yield_and_runs_the_live_release_again(
    session: Session, app: App, staging: Environment
) -> None:
    canary = _canary(session, app, staging)

    pipeline = rollbacks.create_rollback_pipeline(
        session=session, app=app, environment=staging, to_version=None, trigger="cli"
    )
    session.commit()

    assert rollouts.take_command(session=session, deployment_id=canary.id) == "yield"
    release = session.get(Release, pipeline.release_id)
    assert release is not None and release.version == 1  # what the canary would have replaced
    assert pipeline.rollout is None


def test_a_rollback_during_a_watch_makes_it_yield_and_targets_the_previous_release(
    session: Session, app: App, staging: Environment
) -> None:
    canary = _canary(session, app, staging)
    deployments.go_live(session=session, deployment=canary, processes=[WEB])
    rollouts.record(session=session, deployment_id=canary.id, record=_record("watching", 100))
    session.commit()

    pipeline = rollbacks.create_rollback_pipeline(
        session=session, app=app, environment=staging, to_version=None, trigger="cli"
    )
    session.commit()

    assert rollouts.take_command(session=session, deployment_id=canary.id) == "yield"
    release = session.get(Release, pipeline.release_id)
    assert release is not None and release.version == 1


def test_a_rollback_with_no_rollout_under_way_gives_no_command(
    session: Session, app: App, staging: Environment
) -> None:
    _deploy(session, app, staging, "one")
    live = _deploy(session, app, staging, "two")

    rollbacks.create_rollback_pipeline(
        session=session, app=app, environment=staging, to_version=None, trigger="cli"
    )
    session.commit()

    assert rollouts.take_command(session=session, deployment_id=live.id) is None
    statuses = session.exec(select(Deployment.status)).all()
    assert DeploymentStatus.LIVE in statuses


def test_a_promotion_takes_the_target_environments_default_plan(
    session: Session, app: App, staging: Environment, production: Environment
) -> None:
    _deploy(session, app, staging, "one")
    rollouts.set_default(environment=production, plan=RolloutPlan(canary=[20], step_seconds=5))
    session.add(production)
    session.commit()

    pipeline = rollbacks.create_promotion_pipeline(
        session=session, app=app, source=staging, target=production, trigger="schedule"
    )
    asked = rollbacks.create_promotion_pipeline(
        session=session,
        app=app,
        source=staging,
        target=production,
        trigger="cli",
        rollout=RolloutRequest(canary=[]),
    )
    session.commit()

    stored = session.exec(select(Pipeline.rollout).where(Pipeline.id == pipeline.id)).one()
    assert stored is not None and stored["canary"] == [20, 100] and stored["step_seconds"] == 5
    assert asked.rollout is None
