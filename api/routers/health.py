"""`GET /health`: liveness and the database's reachability, without auth."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from shipyard.api.deps import SessionDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    """200 when the API and its database answer."""
    session.execute(text("SELECT 1"))
    return {"status": "ok", "mode": settings.mode}
