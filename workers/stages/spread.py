"""An environment spread over several run hosts: all of them switch, or none does.

Every host starts its share of the release (shared.services.formation.share_indexes) and
health-checks it, with nothing routed yet. Only when every share is healthy does the deployment
go live (one transaction, with every host's processes); then each host sends its router to its
new processes, drains and stops what they replace there. If any share fails (unhealthy, crashed,
no answer within a bound), every host stops its new processes, the old release keeps serving
everywhere, and the run stage fails naming the host and why.

The environment's first run host (its run_host) runs the run stage and coordinates: it starts
its own share itself and asks the other hosts through their inboxes: a Redis list per run host,
read by a thread in that host's run pool's main process (HostAgent). Not through the run
queues: a coordinator waits in a pool slot, and a share queued there behind another host's
coordinator would wait for it in turn. Each share's progress is recorded in the store
(shared.services.shares); only IDs travel.

A canary (workers.runners.rollout) runs between "every share healthy" and going live: each
step's share is recorded on the deployment, the coordinator sets its own router and tells the
other hosts to `weigh`, and each host gives its own share of the new release that share of its
own router's requests, against the live release's processes there. The record, not the message,
says the share: a host's agent handles each message in a thread of its own, so a host weighs
and stops under one lock per deployment, reading the record at that moment. Every router
getting the share of its own requests, the environment gets it of all of them.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from dataclasses import dataclass, replace
from functools import partial

import redis
import structlog

from shipyard.router.runtime import RouterError
from shipyard.router.traffic import Traffic
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import ShipyardError, StageFailed
from shipyard.shared.host_inbox import Inbox, ShareMessage
from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentShare,
    DeploymentStatus,
    Environment,
    Pipeline,
    Release,
    ShareStatus,
)
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.services import shares, stage_runs
from shipyard.shared.stages import PipelineKind
from shipyard.workers.context import WorkerContext
from shipyard.workers.routes import traffic_for
from shipyard.workers.runners import get_runner
from shipyard.workers.runners.base import ReleaseSpec, Runner
from shipyard.workers.runners.switch import SwitchRecorder, health_gated_start, warm_healthy
from shipyard.workers.stages import rollouts
from shipyard.workers.stages.frame import get_row
from shipyard.workers.stages.spec import release_spec

log = structlog.get_logger(__name__)

# Beyond the health timeout, how long a host may take to start its share (unpack, pull) and
# say so; beyond the drain timeout, how long to switch. A host silent for longer is reported.
START_ALLOWANCE_SECONDS = 60.0
SWITCH_ALLOWANCE_SECONDS = 30.0
# The coordinator looks at the shares when a host says one changed, and at least this often.
POLL_SECONDS = 0.5


def inbox_of(context: WorkerContext) -> Inbox:
    return Inbox(context.redis, context.settings.broker_namespace)


# --- the coordinating host (the run stage) -------------------------------------------------------


def switch_spread(
    context: WorkerContext,
    runner: Runner,
    spec: ReleaseSpec,
    recorder: SwitchRecorder,
    traffic: Traffic | None,
    hosts: list[str],
    rollout: rollouts.RunRollout | None = None,
    warm: list[ProcessRecord] | None = None,
) -> None:
    """Run `spec` on every one of `hosts` (this host first), then switch them all, or none;
    with a `rollout`, its canary's steps on every host's router in between. `warm`: processes
    of this release taken over from standby (recorded as this deployment's): each host goes
    live with its own once they answer their health check, else starts its share anew."""
    deployment_id = uuid.UUID(spec.deployment_id)
    me = hosts[0]
    inbox = inbox_of(context)
    attempt = call_off_earlier(context, runner, deployment_id, me, traffic)
    with session_scope(context.db_url) as session:
        shares.ask(session=session, deployment_id=deployment_id, hosts=hosts, attempt=attempt)
    try:
        for host in hosts[1:]:
            message = ShareMessage(action="start", deployment_id=deployment_id, attempt=attempt)
            inbox.send(host, message)
        mine = replace(spec, share=(0, len(hosts)))
        start_share(context, runner, mine, me, attempt, _on(warm or [], me))
        deadline = time.monotonic() + spec.health_timeout + START_ALLOWANCE_SECONDS
        everyone = _await_ready(context, deployment_id, attempt, deadline)
        new = [p for share in everyone for p in share.processes]
        if rollout is not None:
            weights = (
                SpreadWeights(traffic, inbox, deployment_id, attempt, me, hosts[1:])
                if traffic is not None
                else None
            )
            live = partial(rollouts.live_everywhere, context, rollout.environment_id)
            rollout.before_live(new, weights, live)
        previous = recorder.go_live(new)
        log.info("run.spread_live", hosts=hosts)
    except stage_runs.StageSuperseded:
        raise  # the attempt that took over owns the deployment and its shares now
    except BaseException:
        _call_off(context, runner, inbox, deployment_id, attempt, me, traffic)
        # Recorded on the deployment that failed: a host that missed its stop (cut off) stops
        # them when it is back, as it does any ended deployment's (serve.apps).
        with session_scope(context.db_url) as session:
            started = [
                p
                for s in shares.of(session=session, deployment_id=deployment_id)
                if s.attempt == attempt
                for p in s.processes
            ]
        # And the processes taken over from standby that no share recorded (a host that never
        # began its start): they are this deployment's, stopped with it.
        recorded = {_identity(p) for p in started}
        recorder.started([*started, *(p for p in warm or [] if _identity(p) not in recorded)])
        raise
    replaced = recorder.replaced
    old = previous or []
    # What was replaced stands by on the hosts that keep running the environment (drained out
    # of their routers), if it keeps one: a rollback inside the window is then a router change.
    # Recorded before any host is told to keep its processes: whatever happens to this worker
    # from now on, the window's end stops them on every host.
    keep = bool(old) and traffic is not None and recorder.stand_by()
    leaving = sorted({str(p["host"]) for p in old if p.get("host")} - set(hosts))
    for host in [*hosts[1:], *leaving]:
        message = ShareMessage(
            action="switch",
            deployment_id=deployment_id,
            attempt=attempt,
            replaced_id=replaced,
            standby=keep and host in hosts,
        )
        inbox.send(host, message)
    own = everyone[0].processes
    own_old = [p for p in old if p.get("host", me) == me]
    if traffic is not None:
        try:
            traffic.serve(own)
        except RouterError as exc:  # live in the store already: the router catches up
            log.error("router.serve_failed", error=exc.message)
            traffic = None
        recorder.switched()
    with session_scope(context.db_url) as session:
        shares.advance(
            session=session,
            deployment_id=deployment_id,
            host=me,
            attempt=attempt,
            status=ShareStatus.LIVE,
        )
    _retire(traffic, runner, own_old, keep=keep)
    everywhere = _await_live(context, deployment_id, hosts[1:], spec, traffic)
    if keep:
        log.info("run.previous_standing_by", processes=len(old))
    elif previous is not None and everywhere:
        # Retired once every host switched and drained: a host that has not still sends its
        # traffic to what it ran before, which its supervision would otherwise stop as retired.
        recorder.retired()


def _await_ready(
    context: WorkerContext, deployment_id: uuid.UUID, attempt: int, deadline: float
) -> list[DeploymentShare]:
    """Every share healthy, or a StageFailed naming the first host that failed or is silent."""
    while True:
        with session_scope(context.db_url) as session:
            everyone = shares.of(session=session, deployment_id=deployment_id)
        if any(share.attempt != attempt for share in everyone):
            raise stage_runs.StageSuperseded("another attempt of this run stage took it over")
        for share in everyone:
            if share.status == ShareStatus.FAILED:
                raise StageFailed(f"run host {share.host}: {share.error or 'failed'}")
        if all(share.status == ShareStatus.READY for share in everyone):
            return everyone
        if time.monotonic() > deadline:
            silent = [s.host for s in everyone if s.status == ShareStatus.STARTING]
            raise StageFailed(
                f"run host {', '.join(silent)} did not report its processes healthy in time "
                "(is its run worker up? `shipyard hosts`); nothing was switched"
            )
        inbox_of(context).wait_change(deployment_id, POLL_SECONDS)


def _await_live(
    context: WorkerContext,
    deployment_id: uuid.UUID,
    others: list[str],
    spec: ReleaseSpec,
    traffic: Traffic | None,
) -> bool:
    """Wait (bounded) for the other hosts to switch; whether all did."""
    drain = traffic.route.drain_timeout if traffic is not None else 0.0
    deadline = time.monotonic() + drain + SWITCH_ALLOWANCE_SECONDS
    while True:
        with session_scope(context.db_url) as session:
            pending = [
                share.host
                for share in shares.of(session=session, deployment_id=deployment_id)
                if share.host in others and share.status != ShareStatus.LIVE
            ]
        if not pending:
            return True
        if time.monotonic() > deadline:
            log.warning("run.spread_switch_late", hosts=pending, deployment_id=spec.deployment_id)
            return False
        inbox_of(context).wait_change(deployment_id, POLL_SECONDS)


def _call_off(
    context: WorkerContext,
    runner: Runner,
    inbox: Inbox,
    deployment_id: uuid.UUID,
    attempt: int,
    me: str,
    traffic: Traffic | None,
) -> None:
    """Every host stops its share of this attempt; this host's own share at once."""
    with session_scope(context.db_url) as session:
        everyone = shares.of(session=session, deployment_id=deployment_id)
    for share in everyone:
        if share.attempt != attempt:
            continue
        try:
            if share.host == me:
                stop_share(context, runner, deployment_id, me, attempt, traffic)
            else:
                message = ShareMessage(action="stop", deployment_id=deployment_id, attempt=attempt)
                inbox.send(share.host, message)
        except Exception as exc:  # every other host is still told; this one's strays are
            # recorded on the failed deployment (its supervision stops them)
            log.error("run.spread_stop_failed", host=share.host, error=str(exc))


def call_off_earlier(
    context: WorkerContext,
    runner: Runner,
    deployment_id: uuid.UUID,
    me: str,
    traffic: Traffic | None,
) -> int:
    """Stop what an earlier attempt of this run stage started (its worker died), on every host
    (a canary's servers drained out of the routers first); returns the number of this
    attempt."""
    inbox = inbox_of(context)
    with session_scope(context.db_url) as session:
        earlier = shares.of(session=session, deployment_id=deployment_id)
    if not earlier:
        return 1
    attempt = earlier[0].attempt
    _call_off(context, runner, inbox, deployment_id, attempt, me, traffic)
    deadline = time.monotonic() + SWITCH_ALLOWANCE_SECONDS
    while time.monotonic() < deadline:
        with session_scope(context.db_url) as session:
            busy = [
                s.host
                for s in shares.of(session=session, deployment_id=deployment_id)
                if s.status in (ShareStatus.STARTING, ShareStatus.READY) and s.processes
            ]
        if not busy:
            break
        inbox.wait_change(deployment_id, POLL_SECONDS)
    else:
        log.warning("run.spread_earlier_not_stopped", hosts=busy)
    return attempt + 1


# --- every run host's part -----------------------------------------------------------------------


def start_share(
    context: WorkerContext,
    runner: Runner,
    spec: ReleaseSpec,
    host: str,
    attempt: int,
    warm: list[ProcessRecord] | None = None,
) -> None:
    """Start this host's share healthy and record it ready, or record why it failed. `warm`:
    this host's processes of the release taken over from standby, used if they answer their
    health check (else stopped, and the share started anew)."""
    deployment_id = uuid.UUID(spec.deployment_id)

    def started(processes: list[ProcessRecord]) -> None:
        with session_scope(context.db_url) as session:
            shares.record_processes(
                session=session,
                deployment_id=deployment_id,
                host=host,
                attempt=attempt,
                processes=processes,
            )

    try:
        processes = None
        if warm:
            started(warm)
            processes = warm_healthy(runner, spec, warm)
        if processes is None:
            processes = health_gated_start(runner, spec, started)
    except ShipyardError as exc:
        with session_scope(context.db_url) as session:
            shares.advance(
                session=session,
                deployment_id=deployment_id,
                host=host,
                attempt=attempt,
                status=ShareStatus.FAILED,
                error=exc.message,
            )
        inbox_of(context).changed(deployment_id)
        return
    with session_scope(context.db_url) as session:
        ready = shares.advance(
            session=session,
            deployment_id=deployment_id,
            host=host,
            attempt=attempt,
            status=ShareStatus.READY,
            processes=processes,
        )
    inbox_of(context).changed(deployment_id)
    log.info("run.share_ready", host=host, processes=len(processes))
    if not ready:  # called off while it started
        runner.stop(processes)
        log.info("run.share_called_off", host=host)


def stop_share(
    context: WorkerContext,
    runner: Runner,
    deployment_id: uuid.UUID,
    host: str,
    attempt: int,
    traffic: Traffic | None = None,
) -> None:
    """Stop this host's share of the attempt (its processes as recorded) and record it so; if
    a canary put its servers in the router (`traffic`), they are drained out first and the
    live release's put back to full weight."""
    with _lock(deployment_id):
        with session_scope(context.db_url) as session:
            share = shares.get(
                session=session, deployment_id=deployment_id, host=host, attempt=attempt
            )
            processes = list(share.processes) if share is not None else []
            deployment = session.get(Deployment, deployment_id)
            environment_id = deployment.environment_id if deployment is not None else None
        # A canary's servers may be in the router (from its first step on, or a takeover in
        # the middle of one): drained out first. Without them the router is left alone.
        if traffic is not None and processes and environment_id is not None:
            try:
                traffic.unsplit(processes, rollouts.live_here(context, environment_id))
            except RouterError as exc:
                log.error("rollout.unsplit_failed", error=exc.message)
    runner.stop(processes)
    with session_scope(context.db_url) as session:
        shares.advance(
            session=session,
            deployment_id=deployment_id,
            host=host,
            attempt=attempt,
            status=ShareStatus.STOPPED,
        )
    inbox_of(context).changed(deployment_id)


def _retire(
    traffic: Traffic | None, runner: Runner, processes: list[ProcessRecord], *, keep: bool = False
) -> None:
    """Drain the processes out of this host's router, then stop them; with `keep` (their release
    stands by), leave them running once drained (one the router may still send to is stopped)."""
    if not processes:
        return
    drained = False
    if traffic is not None:
        try:
            traffic.retire(processes)
            drained = True
        except RouterError as exc:
            log.error("router.drain_failed", error=exc.message)
    if keep and drained:
        log.info("run.share_standing_by", processes=len(processes))
        return
    runner.stop(processes)
    log.info("run.previous_stopped", processes=len(processes))


def handle(context: WorkerContext, message: ShareMessage) -> None:
    """Start, switch or stop this host's share of a spread deployment; a start that cannot even
    begin here (a release this host cannot read, a runner it lacks) is recorded failed at once,
    with why, rather than left for the coordinator's bound."""
    try:
        _handle(context, message)
    except Exception as exc:
        if message.action == "start":
            reason = exc.message if isinstance(exc, ShipyardError) else type(exc).__name__
            with session_scope(context.db_url) as session:
                shares.advance(
                    session=session,
                    deployment_id=message.deployment_id,
                    host=context.settings.host_name,
                    attempt=message.attempt,
                    status=ShareStatus.FAILED,
                    error=f"could not start here: {reason}",
                )
            inbox_of(context).changed(message.deployment_id)
        raise


def _handle(context: WorkerContext, message: ShareMessage) -> None:
    host = context.settings.host_name
    with session_scope(context.db_url) as session:
        share = shares.get(
            session=session,
            deployment_id=message.deployment_id,
            host=host,
            attempt=message.attempt,
        )
        deployment = session.get(Deployment, message.deployment_id)
        if deployment is None:
            return
        release = get_row(session, Release, deployment.release_id)
        environment = get_row(session, Environment, release.environment_id)
        runner = get_runner(environment.runner, context)
        app = get_row(session, App, environment.app_id)
        starting = share is not None and share.status == ShareStatus.STARTING
        pipeline = (
            session.get(Pipeline, deployment.pipeline_id)
            if starting and deployment.pipeline_id
            else None
        )
        spec = (
            release_spec(
                session,
                context,
                release,
                str(deployment.id),
                only_type=pipeline.process_type if pipeline is not None else None,
            )
            if message.action == "start" and starting
            else None
        )
        replaced = session.get(Deployment, message.replaced_id) if message.replaced_id else None
        old = [p for p in (replaced.processes if replaced else []) if p.get("host") == host]
        # A rollback's processes taken over from standby (any other start records none).
        rollback = pipeline is not None and pipeline.kind == PipelineKind.ROLLBACK
        warm = _on(deployment.processes, host) if rollback else []
    if message.action == "start":
        if spec is None or share is None:
            return  # an older attempt's, or started already
        mine = replace(spec, share=(share.position, share.hosts))
        start_share(context, runner, mine, host, message.attempt, warm)
        return
    traffic = traffic_for(context, environment, app.name)
    if message.action == "stop":
        stop_share(context, runner, message.deployment_id, host, message.attempt, traffic)
    elif message.action == "weigh":
        weigh_share(context, message, traffic)
    else:
        with _lock(message.deployment_id):
            switch_share(share, traffic)
        # Recorded live once what it replaced here is drained (and stopped, or standing by): the
        # run stage, and so a rollback after it, waits for that; a rollback that took these
        # processes back meanwhile would have its servers drained under it.
        _retire(traffic, runner, old, keep=message.standby)
        if share is not None:
            with session_scope(context.db_url) as session:
                shares.advance(
                    session=session,
                    deployment_id=message.deployment_id,
                    host=share.host,
                    attempt=message.attempt,
                    status=ShareStatus.LIVE,
                )
            inbox_of(context).changed(message.deployment_id)


def switch_share(share: DeploymentShare | None, traffic: Traffic | None) -> None:
    """Send this host's router to its share of the deployment gone live."""
    if share is None:
        return  # a host the deployment left: it only retires what ran there
    if traffic is not None and share.processes:
        try:
            traffic.serve(share.processes)
        except RouterError as exc:
            log.error("router.serve_failed", error=exc.message)


# --- a canary across the hosts -------------------------------------------------------------------

# One lock per deployment in this process (a host's agent): weighing, stopping and switching a
# share read the store and set the router as one step, in the order they take the lock.
_LOCKS: weakref.WeakValueDictionary[uuid.UUID, threading.Lock] = weakref.WeakValueDictionary()
_LOCKS_GUARD = threading.Lock()


def _lock(deployment_id: uuid.UUID) -> threading.Lock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(deployment_id)
        if lock is None:
            lock = _LOCKS[deployment_id] = threading.Lock()
        return lock


@dataclass
class SpreadWeights:
    """A canary's shares on every router of a spread environment (workers.runners.rollout's
    Weights): the other hosts told to weigh (each reads the share recorded on the deployment),
    this host's router set at once, each with its own host's processes."""

    traffic: Traffic  # this host's
    inbox: Inbox
    deployment_id: uuid.UUID
    attempt: int
    me: str
    others: list[str]

    def split(self, new: list[ProcessRecord], old: list[ProcessRecord], share: int) -> object:
        message = ShareMessage(
            action="weigh", deployment_id=self.deployment_id, attempt=self.attempt
        )
        for host in self.others:
            try:
                self.inbox.send(host, message)
            except redis.RedisError as exc:  # told again at the next look
                log.warning("rollout.weigh_unsent", host=host, error=type(exc).__name__)
        return self.traffic.split(self._here(new), self._here(old), share)

    def retire(self, processes: list[ProcessRecord]) -> None:
        """This host's; the others drain theirs when they stop their share."""
        self.traffic.retire(self._here(processes))

    def _here(self, processes: list[ProcessRecord]) -> list[ProcessRecord]:
        return _on(processes, self.me)


def _identity(process: ProcessRecord) -> tuple[object, ...]:
    """What tells one process record from another: its host, pid or container, and server."""
    return (
        process.get("host"),
        process.get("pid"),
        process.get("container"),
        process.get("server"),
    )


def _on(processes: list[ProcessRecord], host: str) -> list[ProcessRecord]:
    """Those of the processes that run on `host` (one recorded without a host runs here)."""
    return [p for p in processes if p.get("host", host) == host]


def weigh_share(context: WorkerContext, message: ShareMessage, traffic: Traffic | None) -> None:
    """Set this host's router as the deployment's rollout record says now: while its canary
    runs, the record's share of the requests to this host's share of the new release and the
    rest to the live release's processes here; once the canary was aborted, the live release's
    back to full weight and the new one's drained out; nothing once it went on (the switch
    serves the new release) or when this host's share is not ready."""
    if traffic is None:
        return
    host = context.settings.host_name
    with _lock(message.deployment_id):
        with session_scope(context.db_url) as session:
            share = shares.get(
                session=session,
                deployment_id=message.deployment_id,
                host=host,
                attempt=message.attempt,
            )
            deployment = session.get(Deployment, message.deployment_id)
            if share is None or deployment is None or share.status != ShareStatus.READY:
                return
            record = rollouts.record_of(deployment)
            starting = deployment.status == DeploymentStatus.STARTING
            environment_id = deployment.environment_id
            new = list(share.processes)
        if record is None:
            return
        old = rollouts.live_here(context, environment_id)
        try:
            if record.state == "canary" and starting:
                traffic.split(new, old, record.share)
                log.info("rollout.weighed", share=record.share)
            elif record.state == "aborted":
                traffic.unsplit(new, old)
        except RouterError as exc:
            log.error("rollout.weigh_failed", error=exc.message)
