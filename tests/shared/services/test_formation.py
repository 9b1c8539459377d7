"""Formation: process counts per environment; a scale runs the live release again."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from shipyard.shared.exceptions import Conflict, InvalidInput
from shipyard.shared.models import App, Environment, Pipeline, PipelineStatus
from shipyard.shared.process_record import ProcessRecord, ProcessStatus
from shipyard.shared.services import deployments, formation
from shipyard.shared.services.formation import share_indexes
from shipyard.shared.stages import PipelineKind
from tests.shared.factories import make_artifact, make_pipeline, make_release


def _live(session: Session, app: App, environment: Environment) -> None:
    release = make_release(session, app, environment, make_artifact(session, app))
    pipeline = make_pipeline(session, app, environment)
    deployment = deployments.begin_deployment(
        session=session, pipeline_id=pipeline.id, release=release, cause="deploy"
    )
    assert deployment is not None
    deployments.go_live(session=session, deployment=deployment, processes=[])
    for ended in session.exec(select(Pipeline).where(Pipeline.environment_id == environment.id)):
        ended.status = PipelineStatus.SUCCEEDED  # every pipeline that made it live is done
        session.add(ended)
    session.commit()


def test_a_type_not_set_runs_once() -> None:
    assert formation.process_count({"web": 3}, "web") == 3
    assert formation.process_count({"web": 3}, "worker") == 1


def test_with_nothing_live_the_formation_waits_for_the_next_deploy(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = formation.scale(
        session=session, app=app, environment=staging, changes={"web": 2}, trigger="api"
    )

    assert pipeline is None
    assert staging.formation == {"web": 2}


def test_a_scale_runs_the_live_release_again_with_the_new_counts(
    session: Session, app: App, staging: Environment
) -> None:
    _live(session, app, staging)
    live = deployments.live_deployment(session=session, environment_id=staging.id)
    assert live is not None

    pipeline = formation.scale(
        session=session, app=app, environment=staging, changes={"worker": 2}, trigger="api"
    )

    assert pipeline is not None and pipeline.kind == PipelineKind.SCALE
    assert pipeline.release_id == live.release_id
    assert staging.formation == {"worker": 2}


def test_web_cannot_be_scaled_to_zero(session: Session, app: App, staging: Environment) -> None:
    with pytest.raises(InvalidInput, match="web cannot be scaled to 0"):
        formation.scale(
            session=session, app=app, environment=staging, changes={"web": 0}, trigger="api"
        )


def test_a_scale_waits_for_a_pipeline_under_way(
    session: Session, app: App, staging: Environment
) -> None:
    _live(session, app, staging)
    make_pipeline(session, app, staging)  # a deploy, queued

    with pytest.raises(Conflict, match="under way"):
        formation.scale(
            session=session, app=app, environment=staging, changes={"web": 2}, trigger="api"
        )


def test_a_spread_formation_is_dealt_out_over_the_hosts_in_turn() -> None:
    formation = {"web": 3, "worker": 1}

    assert share_indexes(formation, "web", 0, 2) == [1, 3]
    assert share_indexes(formation, "web", 1, 2) == [2]
    assert share_indexes(formation, "worker", 1, 2) == []
    assert share_indexes(formation, "clock", 0, 2) == [1]  # a type not set runs once
    assert share_indexes(formation, "web") == [1, 2, 3]
    dealt = sorted(
        i for position in range(4) for i in share_indexes({"web": 7}, "web", position, 4)
    )
    assert dealt == list(range(1, 8))


def _process(kind: str, index: int, host: str | None = None) -> ProcessRecord:
    record: ProcessRecord = {"type": kind, "index": index, "status": ProcessStatus.RUNNING}
    if host is not None:
        record["host"] = host
    return record


def test_standby_processes_are_laid_out_only_as_the_formation_would_start_them_now() -> None:
    both = ["alpha", "beta"]
    spread = [
        _process("web", 1, "alpha"),
        _process("web", 2, "beta"),
        _process("clock", 1, "alpha"),
    ]

    assert formation.laid_out(spread, both, {"web": 2})
    # Scaled since, placed otherwise, dealt otherwise, or a type asked for that they lack.
    assert not formation.laid_out(spread, both, {"web": 3})
    assert not formation.laid_out(spread, ["alpha"], {"web": 2})
    assert not formation.laid_out(spread, ["beta", "alpha"], {"web": 2})
    assert not formation.laid_out(spread, both, {"web": 2, "worker": 1})
    # One host: a record without a host is on it; one index twice is not a formation.
    assert formation.laid_out([_process("web", 1), _process("web", 2)], ["here"], {"web": 2})
    assert not formation.laid_out([_process("web", 1), _process("web", 1)], ["here"], {"web": 2})
