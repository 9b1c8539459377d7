"""Worker pools and run hosts: which workers consume each queue now, `GET /v1/workers`; the run
hosts and what is placed on each, `GET /v1/hosts`."""

from __future__ import annotations

from fastapi import APIRouter

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
