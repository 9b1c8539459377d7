"""The stages, declared once: each stage's event, task and queue, and the order of every kind of
pipeline. The API, the services and the workers all read this table; adding a stage is a row here
and the stage's own work in `workers/stages/`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from shipyard.shared import constants
from shipyard.shared.events import ArtifactBuilt, PipelineQueued, ReleaseCreated, StageEvent


class Stage(StrEnum):
    BUILD = "build"  # commit → artifact
    RELEASE = "release"  # artifact + config → release vN (and the release phase)
    RUN = "run"  # release → healthy processes, switched live


class PipelineKind(StrEnum):
    DEPLOY = "deploy"  # build → release → run
    CONFIG = "config"  # release → run with the live artifact and new config
    PROMOTION = "promotion"  # release → run with another environment's live artifact
    ROLLBACK = "rollback"  # run an earlier release again, exactly as it was
    SCALE = "scale"  # run the live release again with the environment's new formation
    FAILOVER = "failover"  # run the live release again on another run host (its own was lost)
    PLACEMENT = "placement"  # run the live release again on the run hosts it is placed on now
    RESTART = "restart"  # run the live release again as it runs (`ps:restart`)


@dataclass(frozen=True)
class StageRoute:
    """How a stage is started: the event that names it, the task that consumes it, its queue."""

    event_type: str
    task: str
    queue: str


STAGE_ROUTES: Final[dict[Stage, StageRoute]] = {
    Stage.BUILD: StageRoute("pipeline.queued", constants.BUILD_TASK, constants.BUILD_QUEUE),
    Stage.RELEASE: StageRoute("artifact.built", constants.RELEASE_TASK, constants.RELEASE_QUEUE),
    Stage.RUN: StageRoute("release.created", constants.RUN_TASK, constants.RUN_QUEUE),
}

STAGES_BY_KIND: Final[dict[PipelineKind, tuple[Stage, ...]]] = {
    PipelineKind.DEPLOY: (Stage.BUILD, Stage.RELEASE, Stage.RUN),
    PipelineKind.CONFIG: (Stage.RELEASE, Stage.RUN),
    PipelineKind.PROMOTION: (Stage.RELEASE, Stage.RUN),
    PipelineKind.ROLLBACK: (Stage.RUN,),
    PipelineKind.SCALE: (Stage.RUN,),
    PipelineKind.FAILOVER: (Stage.RUN,),
    PipelineKind.PLACEMENT: (Stage.RUN,),
    PipelineKind.RESTART: (Stage.RUN,),
}


def first_stage(kind: str) -> Stage:
    return STAGES_BY_KIND[PipelineKind(kind)][0]


def next_stage(kind: str, stage: Stage) -> Stage | None:
    """The stage after `stage` in a pipeline of `kind`; None after the last."""
    order = STAGES_BY_KIND[PipelineKind(kind)]
    position = order.index(Stage(stage))
    return order[position + 1] if position + 1 < len(order) else None


def gate_stage(kind: str) -> Stage:
    """The first stage of a pipeline of `kind` that changes its environment (deploys queue
    there: see shared.services.queueing)."""
    return next(stage for stage in STAGES_BY_KIND[PipelineKind(kind)] if stage != Stage.BUILD)


def stage_event(
    stage: Stage,
    pipeline_id: uuid.UUID,
    *,
    artifact_id: str | None = None,
    release_id: uuid.UUID | None = None,
    run_host: str | None = None,
) -> StageEvent:
    """The event that starts `stage`: IDs only, taken from the pipeline's row."""
    match Stage(stage):
        case Stage.BUILD:
            return PipelineQueued(pipeline_id=pipeline_id)
        case Stage.RELEASE:
            assert artifact_id is not None, "a release stage needs the artifact"
            return ArtifactBuilt(pipeline_id=pipeline_id, artifact_id=artifact_id)
        case Stage.RUN:
            assert release_id is not None, "a run stage needs the release"
            return ReleaseCreated(pipeline_id=pipeline_id, release_id=release_id, run_host=run_host)


def host_queue(queue: str, host: str) -> str:
    """The queue of `queue`'s work that only run host `host` may do (`run.<host>`): its run
    pool consumes it beside the shared one."""
    return f"{queue}.{host}"
