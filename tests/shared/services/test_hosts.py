"""Run hosts seen by the beat: up or down since when; a lost one's environments move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from shipyard.shared.exceptions import NotFound
from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentStatus,
    Environment,
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
