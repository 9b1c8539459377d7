"""Run hosts: the hosts whose run pools consume a queue of their own (`run.<host>`), what is
placed on each and what runs there."""

from __future__ import annotations

from collections import Counter

from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.models import App, Deployment, DeploymentStatus, Environment
from shipyard.shared.schemas import RunHostPublic
from shipyard.shared.services.workers import WorkersProbe, worker_pools
from shipyard.shared.stages import host_queue


def run_hosts(*, session: Session, probe: WorkersProbe) -> list[RunHostPublic]:
    """Every run host that has a live run pool, an environment placed on it or a live process
    recorded on it, by name."""
    prefix = host_queue(constants.RUN_QUEUE, "")
    pools = {
        pool.queue.removeprefix(prefix): pool.workers
        for pool in worker_pools(probe=probe, queues=None)
        if pool.queue.startswith(prefix)
    }
    placed: dict[str, list[str]] = {}
    for host, app, environment in session.exec(
        select(Environment.run_host, App.name, Environment.name)
        .join(App, col(App.id) == col(Environment.app_id))
        .where(col(Environment.run_host).is_not(None))
        .order_by(col(App.name), col(Environment.name))
    ):
        placed.setdefault(str(host), []).append(f"{app}/{environment}")
    running: Counter[str] = Counter()
    for processes in session.exec(
        select(Deployment.processes).where(Deployment.status == DeploymentStatus.LIVE)
    ):
        running.update(str(p["host"]) for p in processes if p.get("host"))
    return [
        RunHostPublic(
            name=name,
            state="up" if pools.get(name) else "down",
            workers=pools.get(name, []),
            environments=placed.get(name, []),
            processes=running[name],
        )
        for name in sorted(set(pools) | set(placed) | set(running))
    ]
