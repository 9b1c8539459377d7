"""Run hosts seen by the beat: up or down since when; a lost one's environments move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from shipyard.shared.exceptions import Conflict, InvalidInput, NotFound
from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentStatus,
    Environment,
    OneOff,
    OneOffStatus,
    Pipeline,
    RunHost,
)
from shipyard.shared.services import hosts
from shipyard.shared.stages import PipelineKind
from tests.shared.factories import make_artifact, make_release

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _watch(
    session: Session, up: set[str], seconds: float, lost_after: float = 30
) -> list[Pipeline]:
    """The beat's look at `seconds` after T0, with run hosts `up`."""
    return hosts.watch(
        session=session, up=up, now=T0 + timedelta(seconds=seconds), lost_after=lost_after
    )


def _live_on(session: Session, app: App, environment: Environment, host: str) -> Deployment:
    environment.run_host = host
    session.add(environment)
    release = make_release(session, app, environment, make_artifact(session, app, host))
    deployment = Deployment(
        environment_id=environment.id,
        release_id=release.id,
        status=DeploymentStatus.LIVE,
        processes=[{"type": "web", "host": host, "pid": 1}],
    )
    session.add(deployment)
    session.commit()
    return deployment


def test_a_host_down_past_the_bound_is_lost_and_its_environments_run_elsewhere(
    session: Session, app: App, staging: Environment, production: Environment
) -> None:
    _live_on(session, app, staging, "alpha")
    live = _live_on(session, app, production, "beta")

    early = _watch(session, {"alpha", "beta"}, 0, 30)
    down = _watch(session, {"alpha"}, 1, 30)
    still = _watch(session, {"alpha"}, 30, 30)
    lost = _watch(session, {"alpha"}, 32, 30)
    session.commit()

    assert early == down == still == []  # within the bound, the environment waits for its host
    (failover,) = lost
    assert failover.kind == PipelineKind.FAILOVER and failover.trigger == "failover"
    assert failover.environment_id == production.id and failover.release_id == live.release_id
    session.refresh(production)
    session.refresh(staging)
    assert (production.run_host, staging.run_host) == ("alpha", "alpha")
    beta = session.get(RunHost, "beta")
    assert beta is not None and beta.down_since == T0 + timedelta(seconds=1)
    # Looked at again: nothing is placed on beta any more, nothing moves twice.
    again = _watch(session, {"alpha"}, 60, 30)
    assert again == []
    assert len(session.exec(select(Pipeline).where(Pipeline.kind == "failover")).all()) == 1


def test_a_host_back_within_the_bound_keeps_its_environments(
    session: Session, app: App, production: Environment
) -> None:
    _live_on(session, app, production, "beta")

    _watch(session, {"alpha"}, 0, 30)
    _watch(session, {"alpha", "beta"}, 20, 30)
    moved = _watch(session, {"alpha", "beta"}, 60, 30)

    assert moved == []
    session.refresh(production)
    assert production.run_host == "beta"
    beta = session.get(RunHost, "beta")
    assert beta is not None and beta.down_since is None
    assert beta.last_seen_at == T0 + timedelta(seconds=60)


def test_with_no_host_up_nothing_moves(session: Session, app: App, production: Environment) -> None:
    _live_on(session, app, production, "beta")

    _watch(session, set(), 0, 1)
    moved = _watch(session, set(), 60, 1)

    assert moved == []
    session.refresh(production)
    assert production.run_host == "beta"


def test_a_drained_host_is_left_at_the_next_look_and_never_chosen(
    session: Session, app: App, staging: Environment, production: Environment
) -> None:
    _live_on(session, app, staging, "alpha")
    _live_on(session, app, production, "beta")
    hosts.drain(session=session, probe=lambda: {"run.alpha": ["a"], "run.beta": ["b"]}, name="beta")
    session.commit()

    (moved,) = _watch(session, {"alpha", "beta"}, 0)  # beta is up: drained, not lost
    session.commit()

    assert moved.environment_id == production.id and moved.trigger == "drain"
    session.refresh(production)
    assert production.run_host == "alpha"
    beta = session.get(RunHost, "beta")
    assert beta is not None and beta.draining


def test_draining_a_host_nobody_knows_is_refused(session: Session) -> None:
    with pytest.raises(NotFound, match="no run host named 'nowhere'"):
        hosts.drain(session=session, probe=dict, name="nowhere")


def _up(*names: str) -> hosts.WorkersProbe:
    return lambda: {f"run.{name}": [f"run@{name}"] for name in names}


def test_a_spread_is_the_up_hosts_with_the_fewest_processes_and_never_a_drained_one(
    session: Session, app: App, staging: Environment
) -> None:
    _live_on(session, app, staging, "alpha")
    session.add(RunHost(name="delta", draining=True))
    session.commit()
    probe = _up("alpha", "beta", "gamma", "delta")

    assert hosts.choose(session=session, probe=probe, spread=2) == ["beta", "gamma"]
    assert hosts.choose(session=session, probe=probe, spread="all") == ["beta", "gamma", "alpha"]
    assert hosts.choose(session=session, probe=probe, hosts=["gamma", "alpha"]) == [
        "gamma",
        "alpha",
    ]
    assert hosts.choose(session=session, probe=probe) is None
    with pytest.raises(InvalidInput, match="cannot spread over 4 run hosts: 3 up"):
        hosts.choose(session=session, probe=probe, spread=4)
    with pytest.raises(InvalidInput, match="'delta' is being drained"):
        hosts.choose(session=session, probe=probe, hosts=["alpha", "delta"])
    with pytest.raises(InvalidInput, match="'omega' is not up"):
        hosts.choose(session=session, probe=probe, run_host="omega")


def test_a_lost_host_of_a_spread_is_replaced_by_a_free_one_or_dropped(
    session: Session, app: App, staging: Environment, production: Environment
) -> None:
    _live_on(session, app, staging, "alpha")
    staging.extra_hosts = ["beta"]
    _live_on(session, app, production, "beta")
    production.extra_hosts = ["alpha", "gamma"]
    session.add_all([staging, production])
    session.commit()
    _watch(session, {"alpha", "beta", "gamma"}, 0)
    _watch(session, {"alpha", "gamma"}, 1)

    made = _watch(session, {"alpha", "gamma"}, 32)
    session.commit()

    session.refresh(staging)
    session.refresh(production)
    # staging had gamma free: it takes beta's place; production has no free host left.
    assert [staging.run_host, *staging.extra_hosts] == ["alpha", "gamma"]
    assert [production.run_host, *production.extra_hosts] == ["alpha", "gamma"]
    assert sorted(p.environment_id for p in made) == sorted([staging.id, production.id])
    assert {p.kind for p in made} == {PipelineKind.FAILOVER}


def test_a_placement_change_runs_the_live_release_on_the_new_hosts(
    session: Session, app: App, staging: Environment
) -> None:
    live = _live_on(session, app, staging, "alpha")
    for made in session.exec(select(Pipeline)):
        made.status = "succeeded"
        session.add(made)

    pipeline = hosts.replace_placement(
        session=session, app=app, environment=staging, placed=["beta", "alpha"], trigger="api"
    )
    session.commit()

    assert (staging.run_host, staging.extra_hosts) == ("beta", ["alpha"])
    assert pipeline is not None and pipeline.kind == PipelineKind.PLACEMENT
    assert pipeline.release_id == live.release_id
    with pytest.raises(Conflict, match="under way"):
        hosts.replace_placement(
            session=session, app=app, environment=staging, placed=["alpha"], trigger="api"
        )


def test_an_environment_whose_deploys_are_canaries_by_default_may_be_spread(
    session: Session, app: App, staging: Environment
) -> None:
    staging.rollout = {"canary": [10, 100]}
    session.add(staging)
    session.commit()

    moved = hosts.replace_placement(
        session=session, app=app, environment=staging, placed=["alpha", "beta"], trigger="api"
    )

    assert moved is None  # nothing live to move
    assert (staging.run_host, staging.extra_hosts) == ("alpha", ["beta"])
    assert staging.rollout == {"canary": [10, 100]}


def test_a_lost_hosts_one_offs_are_recorded_failed(
    session: Session, app: App, staging: Environment
) -> None:
    _live_on(session, app, staging, "beta")
    release_id = session.exec(select(Deployment.release_id)).one()
    runs = [
        OneOff(
            environment_id=staging.id,
            release_id=release_id,
            command="flask --app blog seed-db",
            host=host,
            requested_by="admin",
            timeout=60,
            status=status,
        )
        for host, status in (
            ("beta", OneOffStatus.RUNNING),
            ("beta", OneOffStatus.SUCCEEDED),
            ("alpha", OneOffStatus.RUNNING),
        )
    ]
    session.add_all(runs)
    session.commit()
    _watch(session, {"alpha", "beta"}, 0)
    _watch(session, {"alpha"}, 1)
    session.commit()
    for run in runs:
        session.refresh(run)
    assert [r.status for r in runs] == ["running", "succeeded", "running"]  # not lost yet

    _watch(session, {"alpha"}, 32)
    session.commit()

    for run in runs:
        session.refresh(run)
    assert [r.status for r in runs] == ["failed", "succeeded", "running"]
    assert runs[0].error is not None and "run host was lost" in runs[0].error
