"""The run stage's rollout: a canary before the switch, a watch after it, and what follows either
(workers.runners.rollout takes the steps; this module ties them to the store, the router and the
broker)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from pydantic import ValidationError
from sqlmodel import Session, select

from shipyard.router.runtime import RouterError
from shipyard.router.traffic import Traffic
from shipyard.shared import analysis, router_stats
from shipyard.shared.broker import publish
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import ShipyardError, StageFailed
from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    Release,
)
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.router_stats import ServerCounters
from shipyard.shared.schemas.rollouts import (
    ReleaseFigures,
    RolloutCommand,
    RolloutPlan,
    RolloutRecord,
)
from shipyard.shared.services import deployments, pipelines, rollbacks, rollouts
from shipyard.shared.stages import PipelineKind
from shipyard.workers.context import WorkerContext
from shipyard.workers.runners.base import Runner
from shipyard.workers.runners.rollout import (
    Analysis,
    Weights,
    canary_steps,
    server_names,
    watch,
)
from shipyard.workers.stages.frame import get_row

log = structlog.get_logger(__name__)


def plan_of(pipeline: Pipeline) -> RolloutPlan | None:
    """The pipeline's rollout plan; None: switch at once, unwatched."""
    if not pipeline.rollout:
        return None
    try:
        plan = RolloutPlan.model_validate(pipeline.rollout)
    except ValidationError:
        log.warning("rollout.plan_unreadable", pipeline_id=str(pipeline.id))
        return None
    return plan if plan.gradual else None


@dataclass
class DeploymentRollout:
    """A deployment's rollout record in the store, and the commands people give it."""

    db_url: str
    deployment_id: uuid.UUID

    def save(self, record: RolloutRecord) -> None:
        with session_scope(self.db_url) as session:
            rollouts.record(session=session, deployment_id=self.deployment_id, record=record)

    def command(self) -> RolloutCommand | None:
        with session_scope(self.db_url) as session:
            return rollouts.take_command(session=session, deployment_id=self.deployment_id)


@dataclass
class RunRollout:
    """One run stage's rollout: the canary (given as the switch's `before_live`) and the watch."""

    context: WorkerContext
    plan: RolloutPlan
    slot: int | None
    environment_id: uuid.UUID
    deployment_id: uuid.UUID
    hosts: list[str]  # the environment's run hosts: their routers' counters are needed
    traffic: Traffic | None
    analysis: Analysis = field(init=False)
    at_start: dict[str, ServerCounters] = field(default_factory=dict, init=False)
    stable: ReleaseFigures | None = field(default=None, init=False)  # the live one's, last seen

    def __post_init__(self) -> None:
        state = "canary" if self.plan.canary else "watching"
        record = RolloutRecord(plan=self.plan, state=state, share=0)
        self.analysis = Analysis(
            plan=self.plan,
            read_counters=self._read,
            store=DeploymentRollout(self.context.db_url, self.deployment_id),
            record=record,
        )
        if self.plan.canary:
            # Recorded before anything starts: a rollback asked for meanwhile finds it (and
            # makes it yield), and a takeover knows a canary was under way.
            self.analysis.store.save(record)
        self.at_start = self._read_quietly()

    def _read(self) -> dict[str, ServerCounters]:
        if self.slot is None:
            return {}
        namespace = self.context.settings.broker_namespace
        router_stats.check_alive(self.context.redis, namespace, self.hosts)
        return router_stats.read(self.context.redis, namespace, self.slot)

    def _read_quietly(self) -> dict[str, ServerCounters]:
        try:
            return self._read()
        except Exception as exc:  # the broker away: the watch judges without the live figures
            log.warning("rollout.counters_unreadable", error=type(exc).__name__)
            return {}

    def live(self) -> list[ProcessRecord]:
        """The live release's processes on this host now."""
        return live_here(self.context, self.environment_id)

    def before_live(
        self,
        new: list[ProcessRecord],
        weights: Weights | None = None,
        live: Callable[[], list[ProcessRecord]] | None = None,
    ) -> None:
        """The canary's steps (if the plan has any and there is a live release to compare with),
        then the live release's figures since the stage began, for the watch. `weights` and
        `live`: where the shares are set and the live release's processes, when not this
        host's router and processes alone (an environment spread over several run hosts)."""
        live = live or self.live
        weights = weights if weights is not None else self.traffic
        old = server_names(live())
        if self.plan.canary:
            if weights is None or not old:
                why = "no router on this host" if weights is None else "no live release"
                self.analysis.record.reason = f"canary skipped: {why} to compare it with"
                self.analysis.finish("watching" if self.plan.watch_seconds else "done", 100)
            else:
                canary_steps(self.analysis, weights, new, live)
                if self.analysis.record.state == "canary":
                    self.analysis.finish("done", 100)
                last = self.analysis.record.steps[-1] if self.analysis.record.steps else None
                self.stable = last.stable if last is not None else None
        if self.stable is None and old:
            now = self._read_quietly()
            if now:
                self.stable = analysis.figures(analysis.window(self.at_start, now, old))

    def watch(self) -> None:
        """The watch window after the switch (if planned); RolloutStopped on a breach,
        RolloutYielded when a rollback was asked for meanwhile."""
        if self.plan.watch_seconds > 0:
            watch(self.analysis, self._deployed, self.stable)

    def _deployed(self) -> list[ProcessRecord]:
        """The watched deployment's processes now (restarted ones are other servers)."""
        with session_scope(self.context.db_url) as session:
            return list(get_row(session, Deployment, self.deployment_id).processes)


def interrupted_canary(
    context: WorkerContext, deployment: Deployment, undo: Callable[[], object]
) -> None:
    """A canary whose run worker died (this attempt took the stage over): its rollout recorded
    aborted, then `undo` run (the canary's servers drained out of the routers, the live
    release's back to full weight, the canary's processes stopped: stop_canary_here, or every
    host's share called off for a spread environment), the deployment failed; raises
    StageFailed."""
    record = record_of(deployment)
    share = record.share if record is not None else 0
    reason = (
        f"the run worker running the canary stopped at {share} %; the canary was aborted and "
        "the live release serves all requests: deploy again"
    )
    if record is not None:
        # Recorded first: a spread environment's other hosts read it before they weigh again.
        record.state = "aborted"
        record.share = 0
        record.reason = reason
        DeploymentRollout(context.db_url, deployment.id).save(record)
    undo()
    with session_scope(context.db_url) as session:
        current = get_row(session, Deployment, deployment.id)
        deployments.fail_deployment(session=session, deployment=current, error=reason)
    raise StageFailed(reason)


def stop_canary_here(
    context: WorkerContext, runner: Runner, deployment: Deployment, traffic: Traffic | None
) -> None:
    """The canary's servers drained out of this host's router (no new request from the first
    command on), the live release's back to full weight, the canary's processes stopped."""
    if traffic is not None:
        try:
            traffic.retire(deployment.processes)
            traffic.serve(live_here(context, deployment.environment_id))
        except RouterError as exc:
            log.error("rollout.interrupted_retire_failed", error=exc.message)
    runner.stop(deployment.processes)


def in_canary(deployment: Deployment) -> bool:
    """Whether the deployment, not live yet, had a canary under way: an attempt that died then
    may have left its servers in the router, at any step's weights."""
    record = record_of(deployment)
    return (
        deployment.status == DeploymentStatus.STARTING
        and record is not None
        and bool(record.plan.canary)
        and (record.share > 0 or bool(record.steps))  # its servers may be in the router
    )


def watch_cut_short(context: WorkerContext, deployment: Deployment) -> None:
    """A watch whose run worker died: recorded as ended (the release stays live)."""
    record = record_of(deployment)
    if record is not None and record.state == "watching":
        record.state = "done"
        record.reason = "the watch was cut short: its run worker stopped"
        DeploymentRollout(context.db_url, deployment.id).save(record)


def roll_back(
    context: WorkerContext, watched: Deployment, replaced: uuid.UUID | None, why: str
) -> str:
    """Ask for a rollback to the release `replaced` ran (a pipeline of its own, published),
    away from the `watched` deployment's release (its source: the rollback is skipped if
    another release went live meanwhile); what the stage's failure says about it."""
    if replaced is None:
        return f"{why}; there is no earlier release to roll back to"
    try:
        with session_scope(context.db_url) as session:
            environment = get_row(session, Environment, watched.environment_id)
            app = get_row(session, App, environment.app_id)
            previous = get_row(session, Deployment, replaced)
            release = get_row(session, Release, previous.release_id)
            pipeline = rollbacks.create_rollback_pipeline(
                session=session,
                app=app,
                environment=environment,
                to_version=release.version,
                trigger=deployments.AUTO_ROLLBACK,
                requested_by="watch",
            )
            pipeline.source_release_id = watched.release_id
            session.add(pipeline)
            session.commit()
            pipelines.start(
                session=session,
                pipeline=pipeline,
                publish=lambda event: publish(context.celery, event),
            )
            return f"{why}; rolling back to v{release.version} (pipeline {pipeline.id})"
    except ShipyardError as exc:
        log.error("rollout.rollback_failed", error=exc.message)
        return f"{why}; the automatic rollback could not be started: {exc.message}"


def live_already(
    session: Session, pipeline: Pipeline, environment_id: uuid.UUID
) -> uuid.UUID | None:
    """For a rollback whose release is the live one (asked for during a canary, which it made
    yield), the live deployment: nothing to run. None otherwise, or once begun."""
    if pipeline.kind != PipelineKind.ROLLBACK:
        return None
    live = deployments.live_deployment(session=session, environment_id=environment_id)
    if live is None or live.release_id != pipeline.release_id:
        return None
    begun = session.exec(select(Deployment.id).where(Deployment.pipeline_id == pipeline.id))
    return live.id if begun.first() is None else None


def check_still_wanted(session: Session, pipeline: Pipeline, environment_id: uuid.UUID) -> None:
    """An automatic rollback (a watch's) away from a release no longer live (another deploy
    went live before it reached its turn) is not run: StageFailed saying so."""
    if pipeline.trigger != deployments.AUTO_ROLLBACK or pipeline.source_release_id is None:
        return
    begun = session.exec(select(Deployment.id).where(Deployment.pipeline_id == pipeline.id))
    if begun.first() is not None:
        return  # decided by an earlier attempt of the stage
    live = deployments.live_deployment(session=session, environment_id=environment_id)
    if live is not None and live.release_id != pipeline.source_release_id:
        raise StageFailed(
            "skipped: the release the watch saw fail is no longer live (a newer deploy went "
            "live first); roll back by hand if that is still wanted"
        )


def live_everywhere(context: WorkerContext, environment_id: uuid.UUID) -> list[ProcessRecord]:
    """The live deployment's processes, on every run host."""
    with session_scope(context.db_url) as session:
        live = deployments.live_deployment(session=session, environment_id=environment_id)
        return list(live.processes) if live is not None else []


def live_here(context: WorkerContext, environment_id: uuid.UUID) -> list[ProcessRecord]:
    """The live deployment's processes on this host."""
    host = context.settings.host_name
    processes = live_everywhere(context, environment_id)
    return [p for p in processes if p.get("host", host) == host]


def record_of(deployment: Deployment) -> RolloutRecord | None:
    """The deployment's rollout record; None without one (or one unreadable)."""
    if not deployment.rollout:
        return None
    try:
        return RolloutRecord.model_validate(deployment.rollout)
    except ValidationError:
        return None
