"""`GET /metrics`: Prometheus text, for a token with the `metrics`, `read` or `admin` scope."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from shipyard.api.auth import authenticate_metrics
from shipyard.api.deps import BrokerRedisDep, SessionDep, SettingsDep
from shipyard.shared.metrics import exposition
from shipyard.shared.metrics.store import BrokerProbe

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(authenticate_metrics)],
    include_in_schema=False,  # Prometheus text, not JSON: documented in docs/operations.md
)
def metrics(session: SessionDep, settings: SettingsDep, broker_redis: BrokerRedisDep) -> Response:
    """The store's gauges and this host's worker metrics (docs/operations.md, Metrics)."""
    broker = None
    if broker_redis is not None:
        broker = BrokerProbe(redis_client=broker_redis, namespace=settings.broker_namespace)
    body = exposition.scrape(session=session, broker=broker, metrics_dir=settings.metrics_root)
    return Response(content=body, media_type=exposition.CONTENT_TYPE)
