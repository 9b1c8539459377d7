"""Run stage: start the release healthy, switch the environment to it, stop what it replaces."""

from __future__ import annotations

import uuid

import structlog

from shipyard.router import haproxy
from shipyard.router.traffic import Route, Traffic
from shipyard.shared import routing
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import ShipyardError, StageFailed
from shipyard.shared.models import Deployment, DeploymentStatus, Environment, Pipeline
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.services import deployments, releases, routes
from shipyard.workers.context import WorkerContext
from shipyard.workers.runners import get_runner
from shipyard.workers.runners.switch import switch
from shipyard.workers.stages.frame import StageResult, get_row
from shipyard.workers.stages.spec import release_spec

log = structlog.get_logger(__name__)


def run_work(context: WorkerContext, pipeline: Pipeline) -> StageResult:
    """Start the release healthy, then switch the environment to it."""
    if pipeline.release_id is None:
        raise StageFailed("the pipeline has no release to run")
    with session_scope(context.db_url) as session:
        release = releases.get_release(session=session, release_id=pipeline.release_id)
        deployment = deployments.begin_deployment(
            session=session,
            pipeline_id=pipeline.id,
            release=release,
            cause=deployments.deployment_cause(pipeline, release),
        )
        if deployment is None:
            raise StageFailed("another worker is running this stage")
        environment = get_row(session, Environment, release.environment_id)
        spec = release_spec(session, context, release, str(deployment.id))
    result = StageResult(result_id=str(deployment.id), deployment_id=deployment.id)
    if deployment.status == DeploymentStatus.LIVE:
        return result  # a redelivered message after the switch was recorded
    runner = get_runner(environment.runner, context)
    if deployment.processes:  # left by an attempt whose worker died during the health check
        runner.stop(deployment.processes)

    def started(processes: list[ProcessRecord]) -> None:
        with session_scope(context.db_url) as session:
            deployments.set_processes(
                session=session, deployment_id=deployment.id, processes=processes
            )

    replaced: list[uuid.UUID] = []
    traffic = traffic_for(context, environment, spec.app)

    def go_live(processes: list[ProcessRecord]) -> list[ProcessRecord] | None:
        with session_scope(context.db_url) as session:
            previous = deployments.go_live(
                session=session,
                deployment=deployment,
                processes=processes,
                # No router here: each release answers on its own address, so going live is
                # the switch, recorded with it.
                switched=traffic is None,
            )
            if previous is None:
                return None
            replaced.append(previous.id)
            return list(previous.processes)

    def switched() -> None:
        # Committed at once, not with the stage's result: the router really serves the new
        # release from now on, whatever happens to this attempt (its takeover finds it live).
        with session_scope(context.db_url) as session:
            routes.record_switched(session=session, deployment_id=deployment.id)

    try:
        switch(runner, spec, go_live, started, traffic, switched if traffic else None)
    except ShipyardError as exc:
        with session_scope(context.db_url) as session:
            current = get_row(session, Deployment, deployment.id)
            deployments.fail_deployment(session=session, deployment=current, error=exc.message)
        raise StageFailed(exc.message) from exc
    if replaced:  # its processes are stopped: recorded at once too (see switched)
        with session_scope(context.db_url) as session:
            routes.record_retired(session=session, deployment_id=replaced[0])
    log.info("run.live", deployment_id=str(deployment.id))
    return result


def traffic_for(context: WorkerContext, environment: Environment, app: str) -> Traffic | None:
    """The environment's traffic on this host's router; None when no router runs here."""
    if environment.route_slot is None or not context.router.available():
        return None
    route = Route(
        backend=haproxy.backend_name(environment.route_slot),
        hosts=routing.hosts(app, environment.name, list(environment.domains)),
        drain_timeout=environment.drain_timeout,
        app=app,
        environment=environment.name,
    )
    return Traffic(context.router, context.settings.router_map, route)
