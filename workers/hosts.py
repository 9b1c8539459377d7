"""The beat's look at the run hosts: a lost host's environments run elsewhere (the rules are
shared.services.hosts'; this only asks the broker who is up and starts what that made)."""

from __future__ import annotations

from functools import partial

import structlog

from shipyard.shared.broker import publish
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import ServiceUnavailable
from shipyard.shared.models import Pipeline, utcnow
from shipyard.shared.services import hosts, pipelines, workers
from shipyard.workers.context import WorkerContext

log = structlog.get_logger(__name__)


def watch_run_hosts(context: WorkerContext) -> None:
    """Record which run hosts are up; start a failover pipeline for each environment of a
    lost one (docs/operations.md, "Run hosts")."""
    settings = context.settings
    live = workers.live_workers(redis_client=context.redis, namespace=settings.broker_namespace)
    with session_scope(context.db_url) as session:
        made = hosts.watch(
            session=session,
            up=set(hosts.up_hosts(live)),
            now=utcnow(),
            lost_after=settings.host_lost_seconds,
        )
    for pipeline_id in [pipeline.id for pipeline in made]:
        with session_scope(context.db_url) as session:
            pipeline = session.get(Pipeline, pipeline_id)
            assert pipeline is not None
            try:
                pipelines.start(
                    session=session, pipeline=pipeline, publish=partial(publish, context.celery)
                )
            except ServiceUnavailable as exc:
                log.error("hosts.failover_not_started", error=exc.message)
