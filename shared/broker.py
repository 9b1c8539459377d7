"""The Celery connection both rooms use: the API to send the first event, workers the next."""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from shipyard.shared import constants
from shipyard.shared.events import OTHER_ROUTES, Event
from shipyard.shared.settings import Settings
from shipyard.shared.stages import STAGE_ROUTES, host_queue

# Which task, on which queue, consumes each event.
ROUTES: dict[str, tuple[str, str]] = {
    **{route.event_type: (route.task, route.queue) for route in STAGE_ROUTES.values()},
    **OTHER_ROUTES,
}


def broker_config(settings: Settings) -> dict[str, Any]:
    """Celery settings shared by producers and consumers, for either mode."""
    return {
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "task_queues": [
            Queue(name, Exchange(name), routing_key=name)  # type: ignore[no-untyped-call]
            for name in constants.ALL_QUEUES
        ],
        "task_default_queue": constants.BUILD_QUEUE,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        # Embedded mode's own server and a distributed Redis take the same transport settings:
        # one code path, whichever started the broker.
        "broker_url": settings.celery_broker_url,
        "broker_transport_options": {
            "visibility_timeout": constants.VISIBILITY_TIMEOUT_SECONDS,
            "global_keyprefix": f"{settings.broker_namespace}:",
        },
    }


def make_celery(settings: Settings, main: str) -> Celery:
    """A Celery app configured for this installation's broker; connects on first use only."""
    app = Celery(main)
    app.conf.update(broker_config(settings))
    return app


def publish(celery: Celery, event: Event) -> None:
    """Send `event` to the task and queue that consume it, by name."""
    task_name, queue = ROUTES[event.type]
    run_host = getattr(event, "run_host", None)
    if run_host is not None:  # a run stage of an environment placed on that host
        queue = host_queue(queue, run_host)
    celery.send_task(
        task_name,
        args=[event.model_dump(mode="json")],
        queue=queue,
        routing_key=queue,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )
