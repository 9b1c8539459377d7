"""Placement: an environment runs on one run host, set by its first run stage, and its run
stages are routed to that host's queue."""

from __future__ import annotations

from sqlmodel import Session

from shipyard.shared.events import ReleaseCreated
from shipyard.shared.models import App, Environment
from shipyard.shared.services import pipelines, placement, queueing
from shipyard.shared.stages import Stage
from tests.shared.factories import make_artifact, make_release


def test_the_first_run_places_the_environment_and_later_ones_find_it_there(
    session: Session, app: App, staging: Environment
) -> None:
    assert staging.run_host is None

    first = placement.place(session=session, environment=staging, host="alpha")
    session.commit()
    second = placement.place(session=session, environment=staging, host="beta")

    assert first == second == "alpha"  # the first writer wins
    session.refresh(staging)
    assert staging.run_host == "alpha"


def test_a_run_stage_event_names_the_host_its_environment_is_placed_on(
    session: Session, app: App, staging: Environment
) -> None:
    release = make_release(session, app, staging, make_artifact(session, app))
    assert release.pipeline_id is not None
    loaded = pipelines.get_pipeline(session=session, pipeline_id=release.pipeline_id)
    loaded.release_id = release.id  # as the release stage leaves it
    unplaced = queueing.stage_event(session, loaded, Stage.RUN)
    staging.run_host = "alpha"
    session.add(staging)
    session.commit()
    placed = queueing.stage_event(session, loaded, Stage.RUN)

    assert isinstance(unplaced, ReleaseCreated) and unplaced.run_host is None
    assert isinstance(placed, ReleaseCreated) and placed.run_host == "alpha"
    assert placement.run_host_of(session=session, pipeline_id=loaded.id) == "alpha"
