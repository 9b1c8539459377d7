"""Rows that tests of services and routes create through the services themselves."""

from __future__ import annotations

import hashlib
import uuid

from sqlmodel import Session

from shipyard.shared.models import App, Artifact, Environment, Pipeline, Release
from shipyard.shared.services import pipelines, releases
from shipyard.shared.stages import PipelineKind


def make_pipeline(
    session: Session, app: App, environment: Environment, kind: PipelineKind = PipelineKind.DEPLOY
) -> Pipeline:
    """A committed deploy pipeline with its stage runs."""
    pipeline = pipelines.create_pipeline(
        session=session, app=app, environment=environment, kind=kind, trigger="api", ref="HEAD"
    )
    session.commit()
    return pipeline


def make_artifact(session: Session, app: App, label: str = "one") -> Artifact:
    """A committed artifact row, one per label (the file itself does not matter here)."""
    digest = "sha256:" + hashlib.sha256(label.encode()).hexdigest()
    existing = session.get(Artifact, digest)
    if existing is not None:
        return existing
    artifact = Artifact(
        id=digest,
        app_id=app.id,
        commit_sha=hashlib.sha1(label.encode()).hexdigest(),
        builder="local",
        size=10,
        location=f"/artifacts/{uuid.uuid4()}",
    )
    session.add(artifact)
    session.commit()
    return artifact


def make_release(
    session: Session, app: App, environment: Environment, artifact: Artifact
) -> Release:
    """A committed release of `artifact` in `environment`, made by its own deploy pipeline."""
    pipeline = make_pipeline(session, app, environment)
    release = releases.create_release(
        session=session, pipeline=pipeline, artifact_id=artifact.id, cause="deploy"
    )
    session.commit()
    return release
