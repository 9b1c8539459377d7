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
from shipyard.shared.exceptions import Conflict, InvalidInput, NotFound
from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentStatus,
    Environment,
    OneOff,
    OneOffStatus,
    Pipeline,
    Release,
    RunHost,
)
from shipyard.shared.schemas import RunHostPublic
from shipyard.shared.services import deployments, pipelines, placement, queueing
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
    for environment, app in session.exec(
        select(Environment, App.name)
        .join(App, col(App.id) == col(Environment.app_id))
        .where(col(Environment.run_host).is_not(None), col(App.destroyed_at).is_(None))
        .order_by(col(App.name), col(Environment.name))
    ):
        for host in placement.hosts_of(environment):
            placed.setdefault(host, []).append(f"{app}/{environment.name}")
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
    known = name in _placed(session)
    row = session.get(RunHost, name)
    live = up_hosts({pool.queue: pool.workers for pool in worker_pools(probe=probe, queues=None)})
    if row is None and not known and name not in live:
        raise NotFound(f"no run host named {name!r} (see GET /v1/hosts)")
    row = row or RunHost(name=name)
    row.draining = draining
    session.add(row)


def choose(
    *,
    session: Session,
    probe: WorkersProbe,
    run_host: str | None = None,
    hosts: list[str] | None = None,
    spread: int | str | None = None,
) -> list[str] | None:
    """The run hosts an environment is to run on, the coordinating one first: `run_host`
    alone, `hosts` as listed, or `spread` up hosts (not draining) with the fewest live processes
    ("all": every one); None when none is asked for (it is placed where it first runs)."""
    if run_host is not None:
        hosts = [run_host]
    if hosts is not None:
        for name in hosts:
            require_up(session=session, probe=probe, name=name)
        return hosts
    if spread is None:
        return None
    live = up_hosts({pool.queue: pool.workers for pool in worker_pools(probe=probe, queues=None)})
    draining = {row.name for row in session.exec(select(RunHost)) if row.draining}
    eligible = sorted(set(live) - draining)
    wanted = len(eligible) if spread == "all" else int(spread)
    if not eligible or wanted > len(eligible):
        raise InvalidInput(
            f"cannot spread over {wanted} run hosts: {len(eligible)} up and not draining "
            f"({', '.join(eligible) or 'none'})"
        )
    load = _processes_per_host(session)
    return sorted(eligible, key=lambda name: (load[name], name))[:wanted]


def replace_placement(
    *,
    session: Session,
    app: App,
    environment: Environment,
    placed: list[str],
    trigger: str,
    requested_by: str | None = None,
) -> Pipeline | None:
    """Run `environment` on the run hosts `placed` from now on; when a release is live, a
    pipeline that starts it there healthy before it stops where it ran (else None)."""
    busy = session.exec(
        select(Pipeline.id).where(Pipeline.environment_id == environment.id, queueing.active())
    ).first()
    if busy is not None:
        raise Conflict(
            f"a pipeline of {environment.name} is under way ({busy}); "
            "change its placement once it has ended"
        )
    environment.run_host, environment.extra_hosts = placed[0], placed[1:]
    session.add(environment)
    session.flush()
    return _failover(
        session, environment, trigger, kind=PipelineKind.PLACEMENT, requested_by=requested_by
    )


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
    environments = [e for e in session.exec(select(Environment)) if e.run_host is not None]
    placed = {host for e in environments for host in placement.hosts_of(e)}
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
    lost = {h for h in placed - up if (seen[h].down_since or now) <= bound}
    _end_lost_one_offs(
        session,
        {h for h, row in seen.items() if h not in up and (row.down_since or now) <= bound},
        now,
    )
    leaving = lost | (placed & draining)
    targets = up - draining
    if not leaving or not targets:
        return []  # nothing to move, or nowhere to go: the environments wait for their host
    load = _processes_per_host(session)
    made: list[Pipeline] = []
    for environment in environments:
        before = placement.hosts_of(environment)
        gone = [h for h in before if h in leaving]
        if not gone:
            continue
        after = _moved(before, gone, targets, load)
        moved = session.execute(
            update(Environment)
            .where(
                col(Environment.id) == environment.id,
                col(Environment.run_host) == environment.run_host,
            )
            .values(run_host=after[0], extra_hosts=after[1:])
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            continue  # moved by another look meanwhile
        session.refresh(environment)
        trigger = "failover" if set(gone) & lost else "drain"
        pipeline = _failover(session, environment, trigger)
        log.warning("hosts.failover", left=gone, run_hosts=after, environment=str(environment.id))
        if pipeline is not None:
            made.append(pipeline)
            for host in set(after) - set(before):
                load[host] += 1
    return made


def _end_lost_one_offs(session: Session, lost: set[str], now: datetime) -> None:
    """One-off commands queued or running on a lost run host: it died with them (or will never
    start them); recorded failed, saying so."""
    if not lost:
        return
    session.execute(
        update(OneOff)
        .where(
            col(OneOff.host).in_(sorted(lost)),
            col(OneOff.status).in_([OneOffStatus.QUEUED, OneOffStatus.RUNNING]),
        )
        .values(
            status=OneOffStatus.FAILED,
            error="its run host was lost (its run pool stopped answering) before it ended",
            finished_at=now,
        )
    )


def _moved(before: list[str], gone: list[str], targets: set[str], load: Counter[str]) -> list[str]:
    """The placement `before` without the hosts `gone`: each replaced by the target with the
    fewest processes that it does not use yet, or dropped when there is none (at least one
    host stays: the least loaded target when every host is gone)."""
    after: list[str] = []
    for host in before:
        if host not in gone:
            after.append(host)
            continue
        free = sorted(targets - set(before) - set(after), key=lambda name: (load[name], name))
        if free:
            after.append(free[0])
    if not after:
        after.append(min(targets, key=lambda name: (load[name], name)))
    return after


def _placed(session: Session) -> set[str]:
    """Every run host some environment is placed on."""
    return {
        host
        for environment in session.exec(select(Environment))
        for host in placement.hosts_of(environment)
    }


def _failover(
    session: Session,
    environment: Environment,
    trigger: str,
    kind: PipelineKind = PipelineKind.FAILOVER,
    requested_by: str | None = None,
) -> Pipeline | None:
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
        kind=kind,
        trigger=trigger,
        requested_by=requested_by,
        artifact_id=release.artifact_id,
        release_id=release.id,
    )
