"""The run host's supervision of the apps it runs: a live process that exits is taken out of the
router, started again with backoff (the same policy `shipyard up` applies to its own children),
and put back once it answers. Restarts are recorded on the process (count, last exit status,
when), so `shipyard ps` and the API show them; one that keeps exiting shows as `crashed`.

It runs in `shipyard router` on each run host (a child of `shipyard up` in embedded mode), for
the local runner's processes of this host; Docker containers have the engine's restart policy.
The store is the truth: after the host or `up` restarts, every live process found dead is
started again here.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import structlog
from sqlalchemy import and_, or_
from sqlmodel import col, select

from shipyard.router import haproxy
from shipyard.router.runtime import RouterError
from shipyard.router.traffic import server_name
from shipyard.serve.supervisor import Backoff, RestartPolicy
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import ShipyardError
from shipyard.shared.metrics import instruments
from shipyard.shared.models import App, Deployment, DeploymentStatus, Environment, Release, utcnow
from shipyard.shared.process_record import ProcessRecord, ProcessStatus
from shipyard.shared.services import deployments, hosts, standby, unpacked
from shipyard.workers.context import WorkerContext
from shipyard.workers.routes import traffic_for
from shipyard.workers.runners import get_runner
from shipyard.workers.runners.base import Runner
from shipyard.workers.runners.local import LocalRunner
from shipyard.workers.stages.spec import release_spec

log = structlog.get_logger(__name__)

# An app's first restart comes after a second (a crash at start-up would otherwise spin).
APP_RESTART_POLICY = RestartPolicy(initial=1.0, maximum=30.0, stable_after=60.0)
# How often a run host removes the unpacked artifacts it no longer needs (not in a run stage,
# whose every statement counts: see tests/workers/stages/test_frame.py's budget).
PRUNE_SECONDS = 60.0
# How often, and how far back, a run host looks for processes of its own that the store no
# longer counts as running (a lost or drained host's, moved elsewhere).
STALE_SECONDS = 5.0
STALE_LOOKBACK = timedelta(days=7)
STALE_MARGIN = timedelta(minutes=1)


@dataclass
class _Watched:
    """What the supervision knows of one process slot (deployment, type, index)."""

    backoff: Backoff
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None


class AppSupervisor:
    """Checks this host's live local processes and restarts the ones that exited."""

    def __init__(
        self,
        context: WorkerContext,
        policy: RestartPolicy = APP_RESTART_POLICY,
        prune_every: float = PRUNE_SECONDS,
    ) -> None:
        self._context = context
        self._policy = policy
        self._prune_every = prune_every
        self._prune_at = time.monotonic()  # the first pass prunes
        self._stale_at = time.monotonic()  # and looks for strays
        self._stale_checked: datetime | None = None  # ended deployments looked at up to then
        self._runner = LocalRunner(
            context.store,
            context.settings.run_dir,
            context.settings.storage_dir,
            context.sandbox,
            context.settings.host_name,
        )
        self._router = context.router
        self._hostname = context.settings.host_name
        self._watched: dict[tuple[uuid.UUID, str, int], _Watched] = {}
        # Stale processes not yet stopped (the engine away, a stop refused), by deployment and
        # pid or container; and destroyed environments' storage folders to put aside.
        self._stale: dict[tuple[uuid.UUID, str], ProcessRecord] = {}
        self._storage_left: set[Path] = set()

    def check(self) -> None:
        """One pass over the live deployments of this host (and, now and then, its disk)."""
        self._check_processes()
        if time.monotonic() >= self._stale_at:
            self._stale_at = time.monotonic() + STALE_SECONDS
            self.end_standby()
            self.stop_stale()
        if time.monotonic() >= self._prune_at:
            self._prune_at = time.monotonic() + self._prune_every
            self.prune()

    def end_standby(self) -> None:
        """Stop this host's processes of replaced releases whose standby window is past: each
        deployment recorded retired first (a rollback can no longer take its processes), then
        its processes handed to the stale ones' stop, which retries what fails."""
        with session_scope(self._context.db_url) as session:
            for deployment in standby.expired(session=session):
                mine = [
                    record
                    for record in deployment.processes
                    if record.get("host", self._hostname) == self._hostname
                ]
                if not mine or not standby.expire(session=session, deployment_id=deployment.id):
                    continue
                log.info("apps.standby_ended", deployment_id=str(deployment.id))
                for record in mine:
                    key = (deployment.id, str(record.get("pid") or record.get("container")))
                    self._stale[key] = record

    def stop_stale(self) -> None:
        """Stop this host's processes that the store no longer counts as running here: those of
        deployments retired or failed meanwhile, as when the host was lost and its environments
        moved (their new host recorded the old deployment retired but could not stop it), and
        those of deployments stopped because their app was destroyed (containers too, whatever
        their state: the engine would restart them). One still draining (superseded, not yet
        retired) is its switch's to stop. What could not be stopped is tried again at each look."""
        now = utcnow()
        # The first look goes back a week (the host may have been away), and to every destroyed
        # app's deployment whatever its age; later ones only at what ended since the last (with a
        # margin for transactions committed late).
        if self._stale_checked is None:
            bound = now - STALE_LOOKBACK
            recent = or_(
                col(Deployment.ended_at) >= bound,
                col(Deployment.retired_at) >= bound,
                col(Deployment.status) == DeploymentStatus.STOPPED,
            )
        else:
            since = self._stale_checked - STALE_MARGIN
            destroyed = (
                select(Environment.id)
                .join(App, col(App.id) == col(Environment.app_id))
                .where(col(App.destroyed_at) >= since)
            )
            recent = or_(
                col(Deployment.ended_at) >= since,
                col(Deployment.retired_at) >= since,
                # Stopped with its app: one superseded long before keeps its ended_at.
                col(Deployment.environment_id).in_(destroyed),
            )
        with session_scope(self._context.db_url) as session:
            ended = session.exec(
                select(Deployment).where(
                    recent,
                    or_(
                        col(Deployment.status).in_(
                            [DeploymentStatus.FAILED, DeploymentStatus.STOPPED]
                        ),
                        and_(
                            col(Deployment.status) == DeploymentStatus.SUPERSEDED,
                            col(Deployment.retired_at).is_not(None),
                        ),
                    ),
                )
            ).all()
            for deployment in ended:
                stopped = deployment.status == DeploymentStatus.STOPPED
                for record in deployment.processes:
                    if record.get("host", self._hostname) != self._hostname:
                        continue
                    # A container's switch stops it; a stopped deployment's has none.
                    if "pid" in record or ("container" in record and stopped):
                        key = (deployment.id, str(record.get("pid") or record["container"]))
                        self._stale[key] = record
                    if stopped and record.get("storage"):
                        self._storage_left.add(Path(str(record["storage"])))
        self._stale_checked = now
        for key, record in list(self._stale.items()):
            if self._stop_stale_process(key[0], record):
                del self._stale[key]
        if self._storage_left and not self._stale:
            self._put_storage_aside()

    def _stop_stale_process(self, deployment_id: uuid.UUID, record: ProcessRecord) -> bool:
        """Stop one stale process (if it runs); whether that is done with."""
        try:
            if "pid" in record:
                if not self._runner.is_running(record):
                    return True
                runner: Runner = self._runner
            else:
                docker = self._docker()
                if docker is None:
                    return False
                runner = docker  # stopped and removed even if restarting or exited
            log.warning(
                "apps.stale_stopped", type=record["type"], process=record.get("pid", "container")
            )
            self._take_out(deployment_id, record)
            runner.stop([record])
        except ShipyardError as exc:
            log.warning("apps.stale_stop_failed", type=record["type"], error=exc.message)
            return False
        return True

    def _put_storage_aside(self) -> None:
        """Move the default storage folders of destroyed apps' environments out of the way (to
        `.destroyed/` beside them), so that a new app given the same name never finds their
        data; one a live process of this host uses (a new app of that name already running)
        is left where it is, and said so."""
        root = self._context.settings.storage_dir
        with session_scope(self._context.db_url) as session:
            in_use = {
                Path(str(record["storage"]))
                for deployment in deployments.live_deployments(session=session, runner="local")
                for record in deployment.processes
                if record.get("storage")
            }
            # A new app given the name already (its first deploy may still be starting): its
            # folder now, whatever is in it.
            taken = set(session.exec(select(App.name).where(col(App.destroyed_at).is_(None))))
        for folder in sorted(self._storage_left):
            self._storage_left.discard(folder)
            if not folder.is_dir() or not folder.is_relative_to(root) or folder == root:
                continue  # gone already, or an environment's own storage_dir: the user's
            if folder in in_use or folder.relative_to(root).parts[0] in taken:
                log.warning("apps.destroyed_storage_in_use", folder=str(folder))
                continue
            aside = (
                root
                / ".destroyed"
                / f"{folder.relative_to(root).as_posix().replace('/', '.')}-{uuid.uuid4().hex[:8]}"
            )
            aside.parent.mkdir(parents=True, exist_ok=True)
            folder.rename(aside)
            log.info("apps.destroyed_storage_moved", folder=str(folder), to=str(aside))

    def _docker(self) -> Runner | None:
        """This host's Docker runner, once connected; None (and a warning) while the engine
        does not answer: the next look tries again."""
        try:
            return get_runner("docker", self._context)
        except ShipyardError as exc:
            log.warning("apps.docker_unavailable", error=exc.message)
            return None

    def prune(self) -> None:
        """Remove, app by app, what this host keeps unpacked and no longer needs."""
        run_dir = self._context.settings.run_dir
        names = (
            [path.name for path in run_dir.iterdir() if path.is_dir()] if run_dir.is_dir() else []
        )
        if not names:
            return
        with session_scope(self._context.db_url) as session:
            known = session.exec(
                select(App.name, App.id).where(
                    col(App.name).in_(names), col(App.destroyed_at).is_(None)
                )
            ).all()
            keeps = {
                name: unpacked.artifacts_to_keep(session=session, app_id=app_id)
                for name, app_id in known
            }
        # The folder of an app that is no more (destroyed): nothing of it is kept.
        keeps.update({name: set() for name in names if name not in keeps})
        total = 0
        for name, keep in keeps.items():
            try:
                size = self._runner.prune(name, keep)
            except (OSError, ShipyardError) as exc:
                log.warning("apps.prune_failed", app=name, error=str(exc))
                continue
            total += size
            instruments.UNPACKED_BYTES.labels(app=name, host=self._hostname).set(size)
        with session_scope(self._context.db_url) as session:
            hosts.record_disk(session=session, host=self._hostname, unpacked_bytes=total)

    def _check_processes(self) -> None:
        with session_scope(self._context.db_url) as session:
            live = deployments.live_deployments(session=session, runner="local")
            work = [(d.id, list(d.processes)) for d in live]
        live_ids = {deployment_id for deployment_id, _ in work}
        for key in [key for key in self._watched if key[0] not in live_ids]:
            del self._watched[key]  # replaced since: nothing of it to watch any more
        for deployment_id, records in work:
            for record in records:
                if record.get("host", self._hostname) != self._hostname or "pid" not in record:
                    continue
                try:
                    self._check_process(deployment_id, record)
                except ShipyardError as exc:
                    log.error("apps.restart_failed", error=exc.message, type=record["type"])

    def _check_process(self, deployment_id: uuid.UUID, record: ProcessRecord) -> None:
        key = (deployment_id, str(record["type"]), int(record.get("index", 1)))
        watched = self._watched.setdefault(key, _Watched(Backoff(self._policy)))
        now = time.monotonic()
        status = record.get("status")
        if status == ProcessStatus.RUNNING:
            if not self._runner.is_running(record):
                self._exited(deployment_id, record, watched, now)
        elif status == ProcessStatus.STARTING:
            self._check_started(deployment_id, record, watched, now)
        elif watched.restart_at is None or now >= watched.restart_at:
            self._restart(deployment_id, record, watched)

    def _exited(
        self, deployment_id: uuid.UUID, record: ProcessRecord, watched: _Watched, now: float
    ) -> None:
        exit_status = self._runner.exit_status(record)
        delay, began_crashing = watched.backoff.exited(now, watched.started_at)
        watched.restart_at = now + delay
        status = ProcessStatus.CRASHED if watched.backoff.crashing else ProcessStatus.RESTARTING
        if record.get("status") == ProcessStatus.RUNNING:  # one still starting was never routed to
            self._take_out(deployment_id, record)
        self._runner.stop([record])  # what is left of its group, if only its shell ended
        self._update(deployment_id, record, {**record, "status": status, "last_exit": exit_status})
        event = dict(type=record["type"], index=record.get("index", 1), exit_code=exit_status)
        if began_crashing:
            log.error("apps.crash_loop", restart_in=round(delay, 1), **event)
        else:
            log.warning("apps.exited", restart_in=round(delay, 1), **event)

    def _restart(self, deployment_id: uuid.UUID, record: ProcessRecord, watched: _Watched) -> None:
        """Start the process again; a `web` one is `starting` until it answers its health
        check, which later passes look at (a pass never waits for an app)."""
        with session_scope(self._context.db_url) as session:
            deployment = session.get(Deployment, deployment_id)
            if deployment is None or deployment.status != DeploymentStatus.LIVE:
                return
            release = session.get(Release, deployment.release_id)
            assert release is not None
            spec = release_spec(session, self._context, release, str(deployment_id))
        process_type, index = record["type"], record.get("index", 1)
        started = self._runner.start_process(spec, process_type, index)
        watched.started_at = time.monotonic()
        watched.restart_at = None
        fresh: ProcessRecord = {
            **started,
            "status": ProcessStatus.STARTING if process_type == "web" else ProcessStatus.RUNNING,
            "restarts": record.get("restarts", 0) + 1,
            "last_exit": record.get("last_exit"),
            "restarted_at": utcnow().isoformat(),
        }
        if not self._update(deployment_id, record, fresh):
            self._runner.stop([started])  # the deployment was replaced meanwhile
            return
        instruments.PROCESS_RESTARTS.labels(
            app=spec.app, environment=spec.environment, process_type=process_type
        ).inc()
        log.info("apps.restarted", type=process_type, index=index, restarts=fresh["restarts"])

    def _check_started(
        self, deployment_id: uuid.UUID, record: ProcessRecord, watched: _Watched, now: float
    ) -> None:
        """A restarted `web`: back in the router once healthy, an exit if it never gets so."""
        if not self._runner.is_running(record):
            self._exited(deployment_id, record, watched, now)
            return
        with session_scope(self._context.db_url) as session:
            deployment = session.get(Deployment, deployment_id)
            environment = (
                session.get(Environment, deployment.environment_id) if deployment else None
            )
            app = session.get(App, environment.app_id) if environment else None
        if environment is None or app is None:
            return
        try:
            answer = httpx.get(
                f"{record['url']}{environment.health_path}", timeout=1.0, trust_env=False
            )
            healthy = 200 <= answer.status_code < 400
        except httpx.HTTPError:
            healthy = False
        if healthy:
            running: ProcessRecord = {**record, "status": ProcessStatus.RUNNING}
            if self._update(deployment_id, record, running):
                self._put_back(environment, app.name, running)
            return
        if now - watched.started_at > environment.health_timeout:
            log.warning("apps.restart_unhealthy", type=record["type"], index=record.get("index"))
            self._runner.stop([record])
            self._exited(deployment_id, record, watched, now)

    def _update(self, deployment_id: uuid.UUID, old: ProcessRecord, new: ProcessRecord) -> bool:
        """Replace the process's record on the deployment if it is still live. The row is
        locked while it is read and written: the hosts of a spread deployment each update their
        own processes in the same list."""
        with session_scope(self._context.db_url) as session:
            deployment = session.get(Deployment, deployment_id, with_for_update=True)
            if deployment is None or deployment.status != DeploymentStatus.LIVE:
                return False
            replaced = [new if _same_slot(p, old) else p for p in deployment.processes]
            deployments.set_processes(
                session=session, deployment_id=deployment.id, processes=replaced
            )
        return True

    def _take_out(self, deployment_id: uuid.UUID, record: ProcessRecord) -> None:
        if record.get("type") != "web" or not record.get("server"):
            return
        with session_scope(self._context.db_url) as session:
            deployment = session.get(Deployment, deployment_id)
            environment = (
                session.get(Environment, deployment.environment_id) if deployment else None
            )
        if environment is None or environment.route_slot is None:
            return
        try:
            self._router.remove_server(
                haproxy.backend_name(environment.route_slot), server_name(record)
            )
        except RouterError as exc:
            log.warning("apps.router_remove_failed", error=exc.message)

    def _put_back(self, environment: Environment, app: str, record: ProcessRecord) -> None:
        traffic = traffic_for(self._context, environment, app)
        if traffic is None or record.get("type") != "web":
            return
        try:
            traffic.serve([record])
        except RouterError as exc:
            log.warning("apps.router_add_failed", error=exc.message)


def _same_slot(a: ProcessRecord, b: ProcessRecord) -> bool:
    return bool(a["type"] == b["type"] and a.get("index", 1) == b.get("index", 1))
