"""Worker pools and run hosts: which workers consume each queue now, `GET /v1/workers`; the run
hosts and what is placed on each, `GET /v1/hosts`."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlmodel import Session

from shipyard.api.deps import SessionDep, WorkersProbeDep
from shipyard.shared.schemas import RunHostPublic, WorkerPoolPublic
from shipyard.shared.services import hosts, workers

router = APIRouter(tags=["workers"])


@router.get("/workers")
def list_workers(probe: WorkersProbeDep) -> list[WorkerPoolPublic]:
    """Every queue with the workers whose heartbeat is fresh; an empty list: nothing consumes it."""
    return workers.worker_pools(probe=probe)


@router.get("/hosts")
def list_hosts(session: SessionDep, probe: WorkersProbeDep) -> list[RunHostPublic]:
    """Every run host: up while a run worker consumes its queue; placed environments, processes."""
    return hosts.run_hosts(session=session, probe=probe)


@router.post("/hosts/{name}/drain", status_code=status.HTTP_202_ACCEPTED)
def drain_host(name: str, session: SessionDep, probe: WorkersProbeDep) -> RunHostPublic:
    """Move every environment off run host `name` (admin): each live release starts on another
    host within a beat's look, and nothing more is placed there."""
    hosts.drain(session=session, probe=probe, name=name)
    session.commit()
    return _host(session, probe, name)


@router.post("/hosts/{name}/resume")
def resume_host(name: str, session: SessionDep, probe: WorkersProbeDep) -> RunHostPublic:
    """Let environments be placed on run host `name` again (admin); nothing moves back."""
    hosts.drain(session=session, probe=probe, name=name, draining=False)
    session.commit()
    return _host(session, probe, name)


def _host(session: Session, probe: workers.WorkersProbe, name: str) -> RunHostPublic:
    found = (h for h in hosts.run_hosts(session=session, probe=probe) if h.name == name)
    return next(
        found, RunHostPublic(name=name, state="down", workers=[], environments=[], processes=0)
    )
