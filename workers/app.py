"""The Celery app of the three worker pools: `celery -A workers.app worker -Q build|release|run`."""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery, signals

from shipyard.shared import constants
from shipyard.shared.broker import make_celery
from shipyard.shared.logging import configure_logging
from shipyard.shared.metrics import multiprocess
from shipyard.shared.services import workers
from shipyard.shared.settings import get_settings
from shipyard.shared.stages import host_queue


def create_worker_app() -> Celery:
    """The worker-side Celery app: late acks, requeue on a lost worker, one message at a time."""
    settings = get_settings()
    # Before workers.tasks (and prometheus-client with it) is imported: the pool's children
    # write their metrics there, where the API (or --metrics-port) reads them back.
    multiprocess.use_metrics_dir(settings.host_metrics_dir)
    celery = make_celery(settings, "shipyard")
    celery.conf.update(
        include=["shipyard.workers.tasks"],
        # At-least-once: a message is acked after its task returns, and requeued if the worker
        # process dies under it. Every stage is idempotent, so a second delivery is harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=constants.TASK_TIME_LIMIT_SECONDS,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        # One beat per installation (see docs/operations.md); it only publishes the reconciler,
        # the schedules' tick and the certificates' look, whose due times are kept in SQL.
        beat_schedule={
            # Maintenance runs on the notify pool, never on a stage's queue: a stage pool that
            # is busy or gone must not take the reconciler (its repairer) with it.
            "reconcile": {
                "task": constants.RECONCILE_TASK,
                "schedule": settings.reconcile_seconds,
                "options": {
                    "queue": constants.NOTIFY_QUEUE,
                    "expires": settings.reconcile_seconds,
                },
            },
            "hosts": {
                "task": constants.HOSTS_TICK_TASK,
                "schedule": settings.reconcile_seconds,
                "options": {
                    "queue": constants.NOTIFY_QUEUE,
                    "expires": settings.reconcile_seconds,
                },
            },
            "schedules": {
                "task": constants.SCHEDULE_TICK_TASK,
                "schedule": settings.schedule_tick_seconds,
                "options": {
                    "queue": constants.NOTIFY_QUEUE,
                    "expires": settings.schedule_tick_seconds,
                },
            },
            # Certificates due an order (new domains, renewals, retries after backoff).
            "certificates": {
                "task": constants.CERTIFICATES_TASK,
                "schedule": settings.acme_check_seconds,
                "options": {
                    "queue": constants.NOTIFY_QUEUE,
                    "expires": settings.acme_check_seconds,
                },
            },
        },
    )
    return celery


app = create_worker_app()


@signals.setup_logging.connect
def _configure_logging(**_kwargs: Any) -> None:
    settings = get_settings()
    configure_logging(json=settings.log_format == "json", level=settings.log_level)


@signals.worker_ready.connect
def _announce_worker(sender: Any, **_kwargs: Any) -> None:
    """Keep this worker's liveness keys fresh until it shuts down (shared.services.workers).

    Sent once, in the worker's main process (the pool's children never get it), with the
    consumer as sender: its task consumer knows the queues this worker really consumes.
    """
    settings = get_settings()
    heartbeat = workers.Heartbeat(
        redis_client=redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        ),
        namespace=settings.broker_namespace,
        queues=[queue.name for queue in sender.task_consumer.queues],
        hostname=sender.hostname,
    )
    heartbeat.start()

    def forget(**_: Any) -> None:
        heartbeat.stop()

    # A cold shutdown sends no worker_shutdown: then the keys simply expire.
    signals.worker_shutdown.connect(forget, weak=False)


@signals.worker_ready.connect
def _start_host_agent(sender: Any, **_kwargs: Any) -> None:
    """A run host's run pool also takes its part in deployments spread over several hosts
    (workers.stages.spread): a thread of the main process reads the host's inbox."""
    settings = get_settings()
    own = host_queue(constants.RUN_QUEUE, settings.host_name)
    if own not in {queue.name for queue in sender.task_consumer.queues}:
        return
    from shipyard.workers.host_agent import HostAgent

    agent = HostAgent(settings, sender.app)
    agent.start()

    def stop(**_: Any) -> None:
        agent.stop()

    signals.worker_shutdown.connect(stop, weak=False)


@signals.worker_ready.connect
def _expose_metrics(**_kwargs: Any) -> None:
    """`shipyard worker --metrics-port`: serve this host's metrics dir from the main process."""
    settings = get_settings()
    if settings.metrics_port is None:
        return
    from shipyard.shared.metrics.exposition import HostMetricsServer

    server = HostMetricsServer(
        host=settings.metrics_host,
        port=settings.metrics_port,
        metrics_dir=settings.host_metrics_dir,
    )

    def stop(**_: Any) -> None:
        server.stop()

    signals.worker_shutdown.connect(stop, weak=False)


@signals.worker_process_shutdown.connect
def _forget_process_metrics(**_kwargs: Any) -> None:
    """A pool child exits: drop its live gauges, as prometheus-client's multiprocess mode asks."""
    multiprocess.mark_process_dead(os.getpid(), get_settings().host_metrics_dir)
