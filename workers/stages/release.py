"""Release stage: artifact + the environment's current config → vN, then the release phase."""

from __future__ import annotations

import time

import structlog

from shipyard.shared import build_stream
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.manifest import release_command
from shipyard.shared.metrics import instruments
from shipyard.shared.models import Artifact, Environment, Pipeline, Release
from shipyard.shared.services import releases
from shipyard.workers.context import WorkerContext
from shipyard.workers.live_output import LiveOutput
from shipyard.workers.locks import release_phase_lock
from shipyard.workers.runners import get_runner
from shipyard.workers.runners.base import OneOffResult
from shipyard.workers.stages.frame import StageResult, get_row
from shipyard.workers.stages.spec import release_spec

log = structlog.get_logger(__name__)


def release_work(context: WorkerContext, pipeline: Pipeline) -> StageResult:
    """Create the release (once per pipeline), then run its release command if it has one."""
    if pipeline.artifact_id is None:
        raise StageFailed("the pipeline has no artifact to release")
    with session_scope(context.db_url) as session:
        release = releases.create_release(
            session=session,
            pipeline=pipeline,
            artifact_id=pipeline.artifact_id,
            cause=releases.release_cause(pipeline),
            source_release_id=pipeline.source_release_id,
        )
        artifact = get_row(session, Artifact, release.artifact_id)
    structlog.contextvars.bind_contextvars(release_id=str(release.id))
    log.info("release.created", version=release.version)
    command = release_command(artifact.procfile)
    output = _release_phase(context, pipeline, release, command) if command else None
    return StageResult(
        result_id=str(release.id),
        release_id=release.id,
        output=output,
    )


def _release_phase(
    context: WorkerContext, pipeline: Pipeline, release: Release, command: str
) -> str:
    """Run the release command inside the release; a failure fails the release, not the live one."""
    timeout = context.settings.release_timeout
    with session_scope(context.db_url) as session:
        environment = get_row(session, Environment, release.environment_id)
        spec = release_spec(session, context, release, deployment_id=f"release-{pipeline.id}")
    runner = get_runner(environment.runner, context)
    # Followed as it runs (`shipyard deploy` prints it under the release stage's line), on the
    # pipeline's live log after the build's.
    output = LiveOutput(
        context.redis, build_stream.stream_key(context.settings.broker_namespace, pipeline.id)
    )
    with release_phase_lock(context, environment.id, pipeline.id, timeout):
        log.info("release.phase_started", command=command)
        output.announce(f"Running release command: {command}")
        started = time.monotonic()
        ended = runner.stream_once(spec, command, timeout, output, lambda: False)
        log.info("release.phase_finished", exit_code=ended.exit_code)
    result = OneOffResult(exit_code=ended.exit_code, output=output.tail)
    outcome = {0: "succeeded", None: "timeout"}.get(result.exit_code, "failed")
    instruments.RELEASE_PHASE_DURATION.labels(
        app=spec.app, environment=spec.environment, result=outcome
    ).observe(time.monotonic() - started)
    if result.exit_code == 0:
        return result.output
    with session_scope(context.db_url) as session:
        releases.fail_release(session=session, release=get_row(session, Release, release.id))
    reason = (
        f"the release command timed out after {timeout:g}s and was killed"
        if result.exit_code is None
        else f"the release command exited with status {result.exit_code}"
    )
    raise StageFailed(f"{reason}; v{release.version} will not run", output=result.output)
