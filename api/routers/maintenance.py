"""Maintenance: `POST /v1/gc` removes artifacts no release can still need."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.api.deps import PublisherDep, SessionDep, SettingsDep
from shipyard.shared.events import ArtifactsExpired
from shipyard.shared.schemas import GarbageCollection, GarbageCollectionRequest
from shipyard.shared.services import retention

router = APIRouter(tags=["maintenance"])


@router.post("/gc")
def collect_garbage(
    session: SessionDep,
    settings: SettingsDep,
    publish: PublisherDep,
    data: GarbageCollectionRequest | None = None,
) -> GarbageCollection:
    """Keep live artifacts and each environment's last N releases'; remove and expire the rest."""
    keep = data.keep if data is not None and data.keep is not None else settings.retention_releases
    removed, expired = retention.collect_garbage(session=session, releases_per_environment=keep)
    session.commit()
    if removed:
        # The files live where the build workers write them; they delete them.
        publish(ArtifactsExpired(artifact_ids=[artifact.id for artifact in removed]))
    return GarbageCollection(
        removed_artifacts=[a.id for a in removed], expired_releases=[str(r.id) for r in expired]
    )
