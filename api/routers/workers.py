"""Worker pools: which workers consume each queue now, `GET /v1/workers`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from shipyard.shared.schemas import WorkerPoolPublic
from shipyard.shared.services import workers

router = APIRouter(tags=["workers"])


def get_workers_probe(request: Request) -> workers.WorkersProbe:
    probe: workers.WorkersProbe = request.app.state.workers_probe
    return probe


WorkersProbeDep = Annotated[workers.WorkersProbe, Depends(get_workers_probe)]


@router.get("/workers")
def list_workers(probe: WorkersProbeDep) -> list[WorkerPoolPublic]:
    """Every queue with the workers whose heartbeat is fresh; an empty list: nothing consumes it."""
    return workers.worker_pools(probe=probe)
