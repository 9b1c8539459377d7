"""What the store says at scrape time: live releases, pipelines, stage queues, certificates'
expiry, rollouts under way, worker liveness.

A custom collector, so that every scrape reads the truth with one cheap query set (three
statements on indexed columns, one over the certificates, a row per custom domain, and a SCAN
of the broker's few liveness keys) instead of keeping counters in step with the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import BindParameter, bindparam, func
from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.models import (
    App,
    Certificate,
    CertificateStatus,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    PipelineStatus,
    Release,
    StageRun,
    StageStatus,
    utcnow,
)
from shipyard.shared.services import rollouts, workers
from shipyard.shared.services.queueing import active

# A stage runs on the queue of its name (build, release, run).
STAGE_QUEUES = constants.QUEUES
# The stage statuses of an active pipeline that say where its work stands.
_IN_FLIGHT = (StageStatus.QUEUED, StageStatus.WAITING, StageStatus.RUNNING)


@dataclass(frozen=True)
class BrokerProbe:
    """Where the workers' liveness keys are: the broker's Redis and the installation's prefix."""

    redis_client: redis.Redis
    namespace: str


class StoreCollector(Collector):
    """Gauges read from the database (and the broker's liveness keys) when scraped."""

    def __init__(self, session: Session, broker: BrokerProbe | None = None) -> None:
        self._session = session
        self._broker = broker

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        yield self._live_releases()
        yield self._pipelines()
        yield from self._stages(now)
        yield self._certificate_expiry(now)
        yield from self._rollouts()
        if self._broker is not None:
            yield from self._workers(self._broker)

    def _live_releases(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "shipyard_environment_live_release",
            "Version of the release live in each environment (absent: nothing live).",
            labels=["app", "environment"],
        )
        live: BindParameter[str] = bindparam(
            "live_status", DeploymentStatus.LIVE.value, literal_execute=True
        )
        rows = self._session.exec(
            select(App.name, Environment.name, Release.version)
            .select_from(Deployment)
            .join(Release, col(Release.id) == col(Deployment.release_id))
            .join(Environment, col(Environment.id) == col(Deployment.environment_id))
            .join(App, col(App.id) == col(Environment.app_id))
            .where(col(Deployment.status) == live)
        )
        for app, environment, version in rows:
            family.add_metric([app, environment], version)
        return family

    def _pipelines(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "shipyard_pipelines",
            "Pipelines in the store by status.",
            labels=["status"],
        )
        counts = dict(
            self._session.exec(
                select(Pipeline.status, func.count()).group_by(col(Pipeline.status))
            ).all()
        )
        for status in PipelineStatus:
            family.add_metric([status.value], counts.get(status.value, 0))
        return family

    def _stages(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        stages = GaugeMetricFamily(
            "shipyard_stages",
            "Stages of unfinished pipelines by queue and status (queued, waiting, running).",
            labels=["queue", "status"],
        )
        oldest = GaugeMetricFamily(
            "shipyard_oldest_queued_stage_age_seconds",
            "Age of each queue's oldest queued stage (0: none queued).",
            labels=["queue"],
        )
        # Joined through the pipeline's status index: only active pipelines' stages are read.
        rows = self._session.exec(
            select(StageRun.name, StageRun.status, func.count(), func.min(col(StageRun.queued_at)))
            .join(Pipeline, col(Pipeline.id) == col(StageRun.pipeline_id))
            .where(active(), col(StageRun.status).in_([s.value for s in _IN_FLIGHT]))
            .group_by(col(StageRun.name), col(StageRun.status))
        ).all()
        found = {(name, status): (count, first) for name, status, count, first in rows}
        for queue in STAGE_QUEUES:
            for status in _IN_FLIGHT:
                count, first = found.get((queue, status.value), (0, None))
                stages.add_metric([queue, status.value], count)
                if status == StageStatus.QUEUED:
                    age = (now - _utc(first)).total_seconds() if first is not None else 0.0
                    oldest.add_metric([queue], max(0.0, age))
        yield stages
        yield oldest

    def _certificate_expiry(self, now: datetime) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "shipyard_certificate_expiry_seconds",
            "Seconds until each domain's certificate expires (negative: expired; absent: none "
            "issued yet).",
            labels=["app", "environment", "domain"],
        )
        rows = self._session.exec(
            select(App.name, Environment.name, Certificate.domain, Certificate.not_after)
            .select_from(Certificate)
            .join(Environment, col(Environment.id) == col(Certificate.environment_id))
            .join(App, col(App.id) == col(Environment.app_id))
            .where(
                col(Certificate.status) == CertificateStatus.ISSUED,
                col(App.destroyed_at).is_(None),
            )
        )
        for app, environment, domain, not_after in rows:
            if not_after is not None:
                family.add_metric(
                    [app, environment, domain], (_utc(not_after) - now).total_seconds()
                )
        return family

    def _rollouts(self) -> Iterator[GaugeMetricFamily]:
        share = GaugeMetricFamily(
            "shipyard_rollout_share",
            "Percent of requests the new release of a canary or watch under way gets (absent: "
            "none runs).",
            labels=["app", "environment"],
        )
        error_rate = GaugeMetricFamily(
            "shipyard_rollout_error_rate",
            "Error rate (0 to 1: 5xx, connection and response errors) of the new and the live "
            "release over the last step of a rollout under way, once it has figures.",
            labels=["app", "environment", "release"],
        )
        for app, environment, record in rollouts.running(session=self._session):
            share.add_metric([app, environment], record.share)
            last = record.steps[-1] if record.steps else None
            sides = (("new", last.canary), ("live", last.stable)) if last else ()
            for release, figures in sides:
                if figures is not None:
                    error_rate.add_metric([app, environment, release], figures.error_rate)
        yield share
        yield error_rate

    def _workers(self, broker: BrokerProbe) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "shipyard_broker_up", "1 when the broker answered this scrape's liveness question."
        )
        try:
            ages = workers.heartbeat_ages(
                redis_client=broker.redis_client, namespace=broker.namespace
            )
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        pools = GaugeMetricFamily(
            "shipyard_workers",
            "Workers whose liveness key is fresh, by the queue they consume.",
            labels=["queue"],
        )
        for queue in constants.ALL_QUEUES:
            pools.add_metric([queue], sum(1 for q, _ in ages if q == queue))
        yield pools
        heartbeat = GaugeMetricFamily(
            "shipyard_worker_heartbeat_age_seconds",
            "Seconds since each live worker last refreshed its liveness key.",
            labels=["queue", "hostname"],
        )
        for (queue, hostname), age in sorted(ages.items()):
            heartbeat.add_metric([queue, hostname], age)
        yield heartbeat


def _utc(moment: datetime) -> datetime:
    """The column's type reads MIN back timezone-aware; a naive one is UTC all the same."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
