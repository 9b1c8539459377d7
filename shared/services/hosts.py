"""Run hosts: the hosts whose run pools consume a queue of their own (`run.<host>`), what is
placed on each and what runs there; and a lost host's environments run elsewhere.

A run host is up while a run worker of it heartbeats (shared.services.workers); the beat looks
every few seconds (`watch`) and records since when each is down. One down for longer than
SHIPYARD_HOST_LOST_SECONDS is lost: each environment placed on it is placed on the up host
with the fewest live processes, and one that has a live release gets a `failover` pipeline that
runs that release there (no new release). The lost host, when it returns, stops what the store
no longer says is its own (serve.apps)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import structlog
from sqlalchemy import update
from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.exceptions import InvalidInput, NotFound
from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    Release,
    RunHost,
)
from shipyard.shared.schemas import RunHostPublic
from shipyard.shared.services import deployments, pipelines
from shipyard.shared.services.workers import LiveWorkers, WorkersProbe, worker_pools
from shipyard.shared.stages import PipelineKind, host_queue

log = structlog.get_logger(__name__)
_PREFIX = host_queue(constants.RUN_QUEUE, "")


def up_hosts(live: LiveWorkers) -> dict[str, list[str]]:
    """The run hosts whose run pool consumes its own queue now, with its workers."""
    return {q.removeprefix(_PREFIX): w for q, w in live.items() if q.startswith(_PREFIX) and w}


def run_hosts(*, session: Session, probe: WorkersProbe) -> list[RunHostPublic]:
    """Every run host that has a live run pool, an environment placed on it or a live process
    recorded on it, by name."""
    pools = up_hosts({pool.queue: pool.workers for pool in worker_pools(probe=probe, queues=None)})
    placed: dict[str, list[str]] = {}
    for host, app, environment in session.exec(
        select(Environment.run_host, App.name, Environment.name)
        .join(App, col(App.id) == col(Environment.app_id))
        .where(col(Environment.run_host).is_not(None))
        .order_by(col(App.name), col(Environment.name))
    ):
        placed.setdefault(str(host), []).append(f"{app}/{environment}")
    running = _processes_per_host(session)
    rows = {row.name: row for row in session.exec(select(RunHost))}
    disk = {name: row.unpacked_bytes for name, row in rows.items()}
    draining = {name for name, row in rows.items() if row.draining}
    return [
        RunHostPublic(
            name=name,
            state="draining" if name in draining else "up" if pools.get(name) else "down",
            workers=pools.get(name, []),
            environments=placed.get(name, []),
            processes=running[name],
            unpacked_bytes=disk.get(name),
        )
        for name in sorted(set(pools) | set(placed) | set(running) | draining)
    ]


def drain(*, session: Session, probe: WorkersProbe, name: str, draining: bool = True) -> None:
    """Move everything off run host `name` (the beat's next look starts each environment's live
    release elsewhere) and place nothing more on it; `draining` False takes it back."""
    known = session.exec(select(Environment.id).where(Environment.run_host == name)).first()
    row = session.get(RunHost, name)
    live = up_hosts({pool.queue: pool.workers for pool in worker_pools(probe=probe, queues=None)})
    if row is None and known is None and name not in live:
        raise NotFound(f"no run host named {name!r} (see GET /v1/hosts)")
    row = row or RunHost(name=name)
    row.draining = draining
    session.add(row)


def require_up(*, session: Session, probe: WorkersProbe, name: str) -> None:
    """Refuse to place anything on run host `name` unless its run pool is up now and it is
    not being drained."""
    row = session.get(RunHost, name)
    if row is not None and row.draining:
        raise InvalidInput(f"run host {name!r} is being drained: place it elsewhere")
    up = up_hosts({pool.queue: pool.workers for pool in worker_pools(probe=probe, queues=None)})
    if name not in up:
        listed = ", ".join(sorted(up)) or "none"
        queue = host_queue(constants.RUN_QUEUE, name)
        raise InvalidInput(
            f"run host {name!r} is not up (no run worker consumes {queue}); "
            f"run hosts up now: {listed}"
        )


def record_disk(*, session: Session, host: str, unpacked_bytes: int) -> None:
    """What the apps' unpacked artifacts take on `host`'s disk now (its supervision measures)."""
    row = session.get(RunHost, host) or RunHost(name=host)
    row.unpacked_bytes = unpacked_bytes
    session.add(row)


def _processes_per_host(session: Session) -> Counter[str]:
    running: Counter[str] = Counter()
    for processes in session.exec(
        select(Deployment.processes).where(Deployment.status == DeploymentStatus.LIVE)
    ):
        running.update(str(p["host"]) for p in processes if p.get("host"))
    return running


def watch(*, session: Session, up: set[str], now: datetime, lost_after: float) -> list[Pipeline]:
    """Record which run hosts are up or down (and since when); move the environments of the
    hosts down for longer than `lost_after` seconds to up ones. Returns the failover
    pipelines made, to start once committed."""
    placed = {str(h) for h in session.exec(select(Environment.run_host).distinct()) if h}
    seen = {row.name: row for row in session.exec(select(RunHost))}
    draining = {name for name, row in seen.items() if row.draining}
    for name in sorted(placed | set(seen) | up):
        row = seen.setdefault(name, RunHost(name=name))
        if name in up:
            row.last_seen_at, row.down_since = now, None
        elif row.down_since is None:
            row.down_since = now
            log.warning("hosts.down", host=name)
        session.add(row)
    bound = now - timedelta(seconds=lost_after)
    lost = sorted(h for h in placed - up if (seen[h].down_since or now) <= bound)
    leaving = sorted(set(lost) | (placed & draining))
    targets = up - draining
    if not leaving or not targets:
        return []  # nothing to move, or nowhere to go: the environments wait for their host
    load = _processes_per_host(session)
    made: list[Pipeline] = []
    for host in leaving:
        trigger = "drain" if host in draining else "failover"
        for environment in session.exec(select(Environment).where(Environment.run_host == host)):
            target = min(targets, key=lambda name: (load[name], name))
            moved = session.execute(
                update(Environment)
                .where(col(Environment.id) == environment.id, col(Environment.run_host) == host)
                .values(run_host=target)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                continue  # moved by another look meanwhile
            session.refresh(environment)
            pipeline = _failover(session, environment, trigger)
            log.warning(
                "hosts.failover", lost=host, run_host=target, environment=str(environment.id)
            )
            if pipeline is not None:
                made.append(pipeline)
                load[target] += 1
    return made


def _failover(session: Session, environment: Environment, trigger: str) -> Pipeline | None:
    """A pipeline that runs the environment's live release again where it is placed now."""
    live = deployments.live_deployment(session=session, environment_id=environment.id)
    if live is None:
        return None
    release = session.get(Release, live.release_id)
    app = session.get(App, environment.app_id)
    assert release is not None and app is not None
    return pipelines.create_pipeline(
        session=session,
        app=app,
        environment=environment,
        kind=PipelineKind.FAILOVER,
        trigger=trigger,
        artifact_id=release.artifact_id,
        release_id=release.id,
    )
