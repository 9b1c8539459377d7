"""Stage runs: queued → running → succeeded/failed, a duplicate does nothing, and only the
attempt that holds a stage records its result."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlmodel import Session

from shipyard.shared import constants
from shipyard.shared.events import ArtifactBuilt, Event, ReleaseCreated
from shipyard.shared.models import App, Environment, Pipeline, PipelineStatus, StageStatus
from shipyard.shared.services import stage_runs
from shipyard.shared.services.stage_runs import Claim, ClaimOutcome
from tests.shared.factories import make_artifact, make_pipeline

# Seconds without a heartbeat after which a running stage's worker counts as gone.
STALE_AFTER = 60.0


def _statuses(session: Session, pipeline: Pipeline) -> dict[str, str]:
    runs = stage_runs.stages_of(session=session, pipeline_id=pipeline.id)
    return {run.name: run.status for run in runs}


def _claim(
    session: Session,
    pipeline: Pipeline,
    stage: str,
    hostname: str = "worker-1",
    stale_after: float = STALE_AFTER,
) -> Claim:
    claim = stage_runs.claim_stage(
        session=session,
        pipeline_id=pipeline.id,
        stage=stage,
        hostname=hostname,
        stale_after=stale_after,
    )
    session.commit()
    return claim


# What each stage hands to the next (the ids only need to look right here).
MADE: dict[str, dict[str, Any]] = {
    "build": {"artifact_id": "sha256:" + "b" * 64},
    "release": {"release_id": uuid.UUID(int=7)},
    "run": {"deployment_id": uuid.UUID(int=8)},
}


def _finish(session: Session, pipeline: Pipeline, *stages: str) -> list[Event]:
    events: list[Event] = []
    for stage in stages:
        assert _claim(session, pipeline, stage).outcome == ClaimOutcome.CLAIMED
        events += stage_runs.complete_stage(
            session=session,
            pipeline=pipeline,
            stage=stage,
            result_id=f"{stage}-result",
            **MADE[stage],
        )
        session.commit()
    return events


def test_claiming_a_queued_stage_marks_it_and_the_pipeline_running(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)

    claim = _claim(session, pipeline, "build")

    assert claim.outcome == ClaimOutcome.CLAIMED and claim.run is not None
    run = claim.run
    assert (run.status, run.attempt, run.hostname) == (StageStatus.RUNNING, 1, "worker-1")
    assert run.started_at is not None and run.heartbeat_at is not None
    session.refresh(pipeline)
    assert pipeline.status == PipelineStatus.RUNNING


def test_a_duplicate_message_while_the_worker_is_alive_is_busy(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)
    _claim(session, pipeline, "build", "worker-1")

    again = _claim(session, pipeline, "build", "worker-2")

    assert again.outcome == ClaimOutcome.BUSY
    (build, *_) = stage_runs.stages_of(session=session, pipeline_id=pipeline.id)
    assert (build.attempt, build.hostname) == (1, "worker-1")


def test_a_stage_whose_worker_stopped_heartbeating_is_claimed_again(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)
    _claim(session, pipeline, "build", "worker-1")

    again = _claim(session, pipeline, "build", "worker-2", stale_after=0)

    assert again.outcome == ClaimOutcome.CLAIMED and again.run is not None
    assert (again.run.attempt, again.run.hostname) == (2, "worker-2")


def test_a_heartbeat_keeps_the_stage_with_its_worker(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)
    first = _claim(session, pipeline, "build")
    assert first.run is not None and first.run.heartbeat_at is not None
    claimed_at = first.run.heartbeat_at

    stage_runs.heartbeat(session=session, pipeline_id=pipeline.id, stage="build", attempt=1)
    session.commit()

    (build, *_) = stage_runs.stages_of(session=session, pipeline_id=pipeline.id)
    session.refresh(build)
    assert build.heartbeat_at is not None and build.heartbeat_at > claimed_at


def test_a_second_claim_after_success_does_nothing(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)
    _finish(session, pipeline, "build")

    again = _claim(session, pipeline, "build", "worker-2", stale_after=0)

    assert again.outcome == ClaimOutcome.DONE and again.run is None
    (build, *_) = stage_runs.stages_of(session=session, pipeline_id=pipeline.id)
    assert (build.status, build.attempt, build.hostname) == (StageStatus.SUCCEEDED, 1, "worker-1")


def test_a_stage_that_is_not_queued_yet_cannot_be_claimed(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)

    assert _claim(session, pipeline, "release").outcome != ClaimOutcome.CLAIMED
    assert _statuses(session, pipeline)["release"] == StageStatus.PENDING


def test_completing_a_stage_queues_the_next_and_the_last_finishes_the_pipeline(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)

    built = _finish(session, pipeline, "build")
    assert _statuses(session, pipeline)["release"] == StageStatus.QUEUED
    assert pipeline.status == PipelineStatus.RUNNING
    released = _finish(session, pipeline, "release")
    assert _statuses(session, pipeline)["run"] == StageStatus.QUEUED
    finished = _finish(session, pipeline, "run")

    # Each completion returns the next stage's event, built from what the stage made.
    assert built == [ArtifactBuilt(pipeline_id=pipeline.id, artifact_id="sha256:" + "b" * 64)]
    assert released == [ReleaseCreated(pipeline_id=pipeline.id, release_id=uuid.UUID(int=7))]
    assert finished == []  # nothing waits behind it
    assert pipeline.deployment_id == uuid.UUID(int=8)

    assert set(_statuses(session, pipeline).values()) == {StageStatus.SUCCEEDED}
    assert pipeline.status == PipelineStatus.SUCCEEDED
    assert pipeline.finished_at is not None


def test_fail_stage_skips_later_stages_and_fails_the_pipeline(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)
    _claim(session, pipeline, "build")

    stage_runs.fail_stage(session=session, pipeline=pipeline, stage="build", error="npm exited 1")
    session.commit()

    assert _statuses(session, pipeline) == {
        "build": StageStatus.FAILED,
        "release": StageStatus.SKIPPED,
        "run": StageStatus.SKIPPED,
    }
    session.refresh(pipeline)
    assert pipeline.status == PipelineStatus.FAILED
    assert pipeline.error == "build stage failed: npm exited 1"
    assert pipeline.finished_at is not None
    assert _claim(session, pipeline, "release").outcome == ClaimOutcome.DONE


def test_a_failed_middle_stage_keeps_the_earlier_success(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)
    _finish(session, pipeline, "build")
    _claim(session, pipeline, "release")

    stage_runs.fail_stage(session=session, pipeline=pipeline, stage="release", error="no config")
    session.commit()

    assert _statuses(session, pipeline) == {
        "build": StageStatus.SUCCEEDED,
        "release": StageStatus.FAILED,
        "run": StageStatus.SKIPPED,
    }


def test_a_younger_pipeline_waits_at_release_until_the_older_one_ends(
    session: Session, app: App, staging: Environment
) -> None:
    older = make_pipeline(session, app, staging)
    younger = make_pipeline(session, app, staging)
    _finish(session, older, "build")
    _finish(session, younger, "build")
    younger.artifact_id = make_artifact(session, app).id
    session.add(younger)
    session.commit()

    assert _claim(session, younger, "release").outcome == ClaimOutcome.WAITING
    assert _statuses(session, younger)["release"] == StageStatus.WAITING

    woken = stage_runs.fail_stage(session=session, pipeline=older, stage="release", error="x")
    session.commit()

    assert woken == [ArtifactBuilt(pipeline_id=younger.id, artifact_id=younger.artifact_id)]
    assert _statuses(session, younger)["release"] == StageStatus.QUEUED
    assert _claim(session, younger, "release").outcome == ClaimOutcome.CLAIMED


def test_a_taken_over_attempt_can_no_longer_record_its_result(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)
    _claim(session, pipeline, "build", "worker-1")
    taken = _claim(session, pipeline, "build", "worker-2", stale_after=0)
    assert taken.run is not None and taken.run.attempt == 2

    with pytest.raises(stage_runs.StageSuperseded):
        stage_runs.heartbeat(session=session, pipeline_id=pipeline.id, stage="build", attempt=1)
    with pytest.raises(stage_runs.StageSuperseded):
        stage_runs.complete_stage(
            session=session, pipeline=pipeline, stage="build", result_id="x", attempt=1
        )
    session.rollback()
    with pytest.raises(stage_runs.StageSuperseded):
        stage_runs.fail_stage(
            session=session, pipeline=pipeline, stage="build", error="late", attempt=1
        )
    session.rollback()
    stage_runs.complete_stage(
        session=session,
        pipeline=pipeline,
        stage="build",
        result_id="sha256:ok",
        attempt=2,
        artifact_id="sha256:" + "c" * 64,
    )
    session.commit()
    assert _statuses(session, pipeline) == {
        "build": "succeeded",
        "release": "queued",
        "run": "pending",
    }


def test_a_stage_whose_workers_keep_dying_is_failed_instead_of_retried_forever(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)
    for attempt in range(1, constants.MAX_STAGE_ATTEMPTS + 1):
        claim = _claim(session, pipeline, "build", f"worker-{attempt}", stale_after=0)
        assert claim.outcome == ClaimOutcome.CLAIMED

    last = _claim(session, pipeline, "build", "worker-last", stale_after=0)

    assert last.outcome == ClaimOutcome.GAVE_UP
    session.refresh(pipeline)
    assert pipeline.status == PipelineStatus.FAILED
    assert pipeline.error is not None and "worker died 5 times" in pipeline.error
