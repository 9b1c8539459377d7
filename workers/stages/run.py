"""Run stage: start the release healthy, switch the environment to it, stop what it replaces."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial

import structlog
from sqlalchemy.exc import OperationalError

from shipyard.router.traffic import Traffic
from shipyard.shared.broker import publish
from shipyard.shared.db import session_scope
from shipyard.shared.events import ReleaseCreated
from shipyard.shared.exceptions import ShipyardError, StageFailed
from shipyard.shared.models import Deployment, DeploymentStatus, Environment, Pipeline
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.services import (
    deployments,
    placement,
    releases,
    routes,
    stage_runs,
    standby,
)
from shipyard.shared.services.formation import laid_out
from shipyard.shared.stages import PipelineKind
from shipyard.workers.context import WorkerContext
from shipyard.workers.routes import traffic_for
from shipyard.workers.runners import get_runner
from shipyard.workers.runners.rollout import RolloutStopped, RolloutYielded
from shipyard.workers.runners.switch import switch
from shipyard.workers.stages import rollouts
from shipyard.workers.stages.frame import StageResult, get_row
from shipyard.workers.stages.spec import release_spec
from shipyard.workers.stages.spread import call_off_earlier, switch_spread

log = structlog.get_logger(__name__)


def forwarded(context: WorkerContext, event: ReleaseCreated) -> bool:
    """Whether a run stage that reached this host belongs to another (its environment is
    placed there): then it is sent on to that host's queue, and this host does nothing."""
    host = context.settings.host_name
    if event.run_host == host:
        return False  # routed here by its placement
    with session_scope(context.db_url) as session:
        placed = placement.run_host_of(session=session, pipeline_id=event.pipeline_id)
    if placed is None or placed == host:
        return False
    publish(context.celery, event.model_copy(update={"run_host": placed}))
    log.info("run.forwarded", pipeline_id=str(event.pipeline_id), run_host=placed)
    return True


def run_work(context: WorkerContext, pipeline: Pipeline) -> StageResult:
    """Start the release healthy, then switch the environment to it."""
    if pipeline.release_id is None:
        raise StageFailed("the pipeline has no release to run")
    with session_scope(context.db_url) as session:
        release = releases.get_release(session=session, release_id=pipeline.release_id)
        environment = get_row(session, Environment, release.environment_id)
        host = context.settings.host_name
        placed = placement.place(session=session, environment=environment, host=host)
        if placed != host:  # placed elsewhere since this message was routed
            raise StageFailed(
                f"{environment.name} is placed on run host {placed!r}, not on {host!r}: "
                "deploy again to run it there"
            )
        rollouts.check_still_wanted(session, pipeline, environment.id)
        already = rollouts.live_already(session, pipeline, environment.id)
        if already is not None:
            # A rollback asked for during a canary, to the release still live: the canary
            # yielded, which gave that release all the requests back; nothing to start.
            log.info("run.rollback_to_live", deployment_id=str(already))
            return StageResult(result_id=str(already), deployment_id=already)
        deployment = deployments.begin_deployment(
            session=session,
            pipeline_id=pipeline.id,
            release=release,
            cause=deployments.deployment_cause(pipeline, release),
        )
        if deployment is None:
            raise StageFailed("another worker is running this stage")
        spec = release_spec(
            session, context, release, str(deployment.id), only_type=pipeline.process_type
        )
        hosts = placement.hosts_of(environment)
    result = StageResult(result_id=str(deployment.id), deployment_id=deployment.id)
    if deployment.status == DeploymentStatus.LIVE:
        rollouts.watch_cut_short(context, deployment)
        return result  # a redelivered message after the switch was recorded
    runner = get_runner(environment.runner, context)
    traffic = traffic_for(context, environment, spec.app)
    if rollouts.in_canary(deployment) and (deployment.processes or len(hosts) > 1):
        undo = (
            partial(call_off_earlier, context, runner, deployment.id, hosts[0], traffic)
            if len(hosts) > 1
            else partial(rollouts.stop_canary_here, context, runner, deployment, traffic)
        )
        rollouts.interrupted_canary(context, deployment, undo)
    if deployment.processes:  # left by an attempt whose worker died during the health check
        runner.stop(deployment.processes)
    recorder = DeploymentRecorder(
        context.db_url,
        deployment,
        routed=traffic is not None,
        only_type=pipeline.process_type,
        standby_seconds=environment.standby_seconds,
    )
    rollout = _rollout(context, pipeline, environment, deployment, traffic)
    try:
        warm = _warm(context, pipeline, deployment, hosts, spec.formation) if traffic else None
        if len(hosts) > 1:
            switch_spread(context, runner, spec, recorder, traffic, hosts, rollout, warm)
        else:
            before_live = rollout.before_live if rollout is not None else None
            switch(runner, spec, recorder, traffic, before_live, warm)
    except ShipyardError as exc:
        recorder.failed(exc.message)
        raise StageFailed(exc.message) from exc
    except (stage_runs.StageSuperseded, OperationalError):
        raise  # taken over, or the store is away (the stage retries): the deployment stays
    except Exception as exc:
        recorder.failed(f"internal error ({type(exc).__name__})")
        raise
    log.info("run.live", deployment_id=str(deployment.id))
    if rollout is not None:
        _watch(context, rollout, deployment, recorder.replaced)
    return result


def _rollout(
    context: WorkerContext,
    pipeline: Pipeline,
    environment: Environment,
    deployment: Deployment,
    traffic: Traffic | None,
) -> rollouts.RunRollout | None:
    """The pipeline's canary and watch, if its plan has either."""
    plan = rollouts.plan_of(pipeline)
    if plan is None:
        return None
    return rollouts.RunRollout(
        context=context,
        plan=plan,
        slot=environment.route_slot,
        environment_id=environment.id,
        deployment_id=deployment.id,
        hosts=placement.hosts_of(environment),
        traffic=traffic,
    )


def _warm(
    context: WorkerContext,
    pipeline: Pipeline,
    deployment: Deployment,
    hosts: list[str],
    formation: dict[str, int],
) -> list[ProcessRecord] | None:
    """For a rollback, the processes of its release standing by on the environment's run
    hosts (warm standby), taken over by this deployment; None: started anew, also when they
    are not what the formation would start now on those hosts (scaled or placed otherwise
    since: shared.services.formation.laid_out); the window's end stops them then."""
    if pipeline.kind != PipelineKind.ROLLBACK:
        return None
    host = context.settings.host_name
    with session_scope(context.db_url) as session:
        found = standby.standing_by(
            session=session,
            environment_id=deployment.environment_id,
            release_id=deployment.release_id,
        )
        here = hosts if len(hosts) > 1 else [host]  # on one host, a record may name none
        if found is None or not laid_out(list(found.processes), here, formation):
            return None
        processes = standby.take(session=session, standby=found)
        if processes is not None:
            deployments.set_processes(
                session=session, deployment_id=deployment.id, processes=processes
            )
    return processes


def _watch(
    context: WorkerContext,
    rollout: rollouts.RunRollout,
    deployment: Deployment,
    replaced: uuid.UUID | None,
) -> None:
    """The live deployment watched (if planned); on a breach or an abort, a rollback asked for
    and the stage failed saying why. The deployment stays live until the rollback replaces it.
    A rollback asked for meanwhile ends the watch, which then asks for none of its own."""
    try:
        rollout.watch()
    except RolloutYielded:
        rollout.analysis.record.reason = "the watch ended: a rollback was asked for"
        rollout.analysis.finish("done", 100)
    except RolloutStopped as exc:
        why = f"the watch saw the new release fail: {exc.message}"
        # The rollback asked for (committed) before the watch is recorded over: a worker that
        # dies in between leaves a rollback that runs, not a watch that seems to have passed.
        said = rollouts.roll_back(context, deployment, replaced, why)
        rollout.analysis.finish("rolled_back", 100)
        raise StageFailed(said) from exc


@dataclass
class DeploymentRecorder:
    """What the switch does to one deployment, each step committed in a transaction of its own,
    not with the stage's result: the processes and the traffic really are what it records from
    then on, whatever happens to this attempt (a takeover finds them recorded)."""

    db_url: str
    deployment: Deployment
    routed: bool  # a router on this host sends the traffic; else going live is the switch
    replaced: uuid.UUID | None = None  # the deployment that going live superseded
    only_type: str | None = None  # a restart of this process type alone: the others carry over
    standby_seconds: float = 0.0  # how long a replaced release stands by (warm rollback)
    replaced_release: uuid.UUID | None = None

    def started(self, processes: list[ProcessRecord]) -> None:
        """The new processes exist (before their health check)."""
        with session_scope(self.db_url) as session:
            deployments.set_processes(
                session=session, deployment_id=self.deployment.id, processes=processes
            )

    def go_live(self, processes: list[ProcessRecord]) -> list[ProcessRecord] | None:
        """The deployment is live; returns the processes of the one it replaced, if any (of a
        restart of one type, only that type's: the others run on, live in this one)."""
        with session_scope(self.db_url) as session:
            previous = deployments.go_live(
                session=session,
                deployment=self.deployment,
                processes=processes,
                # No router here: each release answers on its own address, so going live is
                # the switch, recorded with it.
                switched=not self.routed,
                only_type=self.only_type,
            )
            if previous is None:
                return None
            self.replaced = previous.id
            self.replaced_release = previous.release_id
            return list(previous.processes)

    def switched(self) -> None:
        """The router serves the deployment from now on."""
        with session_scope(self.db_url) as session:
            routes.record_switched(session=session, deployment_id=self.deployment.id)

    def retired(self) -> None:
        """The replaced deployment's processes are stopped."""
        assert self.replaced is not None, "only what went live replaced can be retired"
        with session_scope(self.db_url) as session:
            routes.record_retired(session=session, deployment_id=self.replaced)

    def keeps_standby(self) -> bool:
        """Whether the replaced deployment would stand by: the environment keeps one and it ran
        another release (a restart's or a scale's old processes have no rollback to wait for)."""
        return (
            self.replaced is not None
            and self.standby_seconds > 0
            and self.replaced_release != self.deployment.release_id
        )

    def stand_by(self) -> bool:
        """The replaced deployment stands by, if it would (keeps_standby)."""
        if self.replaced is None or not self.keeps_standby():
            return False
        with session_scope(self.db_url) as session:
            standby.stand_by(
                session=session,
                deployment_id=self.replaced,
                environment_id=self.deployment.environment_id,
                seconds=self.standby_seconds,
            )
        return True

    def failed(self, error: str) -> None:
        """The deployment never went live (or its switch broke off): why."""
        with session_scope(self.db_url) as session:
            current = get_row(session, Deployment, self.deployment.id)
            deployments.fail_deployment(session=session, deployment=current, error=error)
