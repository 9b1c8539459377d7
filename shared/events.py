"""The events that pass between stages: IDs only, never payloads, config or secrets."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shipyard.shared import constants


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pipeline_id: uuid.UUID


class PipelineQueued(_Event):
    """A deploy pipeline's rows are committed: build its commit."""

    type: Literal["pipeline.queued"] = "pipeline.queued"


class ArtifactBuilt(_Event):
    """The build stage stored (or found) the artifact: make a release of it."""

    type: Literal["artifact.built"] = "artifact.built"
    artifact_id: str


class ReleaseCreated(_Event):
    """The release exists: run it, on the run host its environment is placed on (None: on
    any, which places it there)."""

    type: Literal["release.created"] = "release.created"
    release_id: uuid.UUID
    run_host: str | None = None


StageEvent = PipelineQueued | ArtifactBuilt | ReleaseCreated


class ArtifactsExpired(BaseModel):
    """Garbage collection marked these artifacts deleted: remove their files or images."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["artifacts.expired"] = "artifacts.expired"
    artifact_ids: list[str]


class NotificationQueued(BaseModel):
    """A notification row is committed: POST it to its subscriber."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["notification.queued"] = "notification.queued"
    notification_id: uuid.UUID


class CertificatesDue(BaseModel):
    """A domain was added or a renewal forced: order the certificates due now, without waiting
    for the beat's next look (the task takes every due one, each under its own claim)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["certificates.due"] = "certificates.due"


Event = StageEvent | ArtifactsExpired | NotificationQueued | CertificatesDue

# Which task, on which queue, consumes each event that is not a stage's (those are in
# shared.stages.STAGE_ROUTES).
OTHER_ROUTES: dict[str, tuple[str, str]] = {
    # Build workers are the ones that can reach every artifact store and image they wrote.
    "artifacts.expired": (constants.REMOVE_ARTIFACTS_TASK, constants.BUILD_QUEUE),
    # Receivers are slow or down at times: they get a pool of their own, never a stage's.
    "notification.queued": (constants.NOTIFY_TASK, constants.NOTIFY_QUEUE),
    # An order waits on a remote CA for up to minutes: the notify pool's, like deliveries.
    "certificates.due": (constants.CERTIFICATES_TASK, constants.NOTIFY_QUEUE),
}
