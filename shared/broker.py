"""The Celery connection both rooms use: the API to send the first event, workers the next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from shared import constants
from shared.events import ROUTES, Event
from shared.settings import Settings


def broker_config(settings: Settings) -> dict[str, Any]:
    """Celery settings shared by producers and consumers, for either mode."""
    config: dict[str, Any] = {
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
    }
    if settings.mode == "embedded":
        folders = _file_broker_folders(settings.broker_dir)
        config["broker_url"] = "filesystem://localhost//"
        config["broker_transport_options"] = {
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "control_folder": str(folders["control"]),
            "processed_folder": str(folders["processed"]),
            "store_processed": False,
            "polling_interval": constants.FILE_BROKER_POLL_SECONDS,
        }
        # Remote control needs a fanout broadcast the file broker does not deliver reliably
        # between several worker processes; nothing in Shipyard uses it.
        config["worker_enable_remote_control"] = False
    else:
        config["broker_url"] = settings.broker_url
        config["broker_transport_options"] = {
            "visibility_timeout": constants.VISIBILITY_TIMEOUT_SECONDS,
            "global_keyprefix": f"{settings.broker_namespace}:",
        }
    return config


def _file_broker_folders(root: Path) -> dict[str, Path]:
    folders = {name: root / name for name in ("queue", "control", "processed")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def make_celery(settings: Settings, main: str) -> Celery:
    """A Celery app configured for this installation's broker; connects on first use only."""
    app = Celery(main)
    app.conf.update(broker_config(settings))
    return app


def publish(celery: Celery, event: Event) -> None:
    """Send `event` to the task and queue that consume it, by name."""
    task_name, queue = ROUTES[event.type]
    celery.send_task(
        task_name,
        args=[event.model_dump(mode="json")],
        queue=queue,
        routing_key=queue,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )
