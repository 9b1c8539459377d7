"""The wiring: each event reaches its task on its queue, carrying IDs only (in-process broker)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from celery import Celery
from cryptography.fernet import Fernet
from kombu import Connection

from shipyard.shared import constants
from shipyard.shared.broker import broker_config, make_celery, publish
from shipyard.shared.events import (
    ArtifactBuilt,
    ArtifactsExpired,
    Event,
    PipelineQueued,
    ReleaseCreated,
)
from shipyard.shared.settings import Settings

PIPELINE = uuid.uuid4()
RELEASE = uuid.uuid4()


def _memory_celery() -> Celery:
    # Distributed-mode settings, the app then pointed at kombu's in-process transport.
    settings = Settings(
        broker_url="redis://127.0.0.1:1/0", secret_key=Fernet.generate_key().decode()
    )
    celery = make_celery(settings, "test-wiring")
    celery.conf.broker_url = "memory://"
    celery.conf.broker_transport_options = {}
    return celery


@pytest.mark.parametrize(
    ("event", "task", "queue"),
    [
        (PipelineQueued(pipeline_id=PIPELINE), constants.BUILD_TASK, "build"),
        (
            ArtifactBuilt(pipeline_id=PIPELINE, artifact_id="sha256:" + "a" * 64),
            constants.RELEASE_TASK,
            "release",
        ),
        (ReleaseCreated(pipeline_id=PIPELINE, release_id=RELEASE), constants.RUN_TASK, "run"),
        (  # an environment placed on run host "alpha": that host's own queue
            ReleaseCreated(pipeline_id=PIPELINE, release_id=RELEASE, run_host="alpha"),
            constants.RUN_TASK,
            "run.alpha",
        ),
        (
            ArtifactsExpired(artifact_ids=["sha256:" + "b" * 64]),
            constants.REMOVE_ARTIFACTS_TASK,
            "build",
        ),
    ],
)
def test_each_event_is_sent_by_name_to_its_queue_with_ids_only(
    event: Event, task: str, queue: str
) -> None:
    celery = _memory_celery()
    publish(celery, event)
    # kombu's memory transport is one broker per process: read what the API side sent.
    with Connection("memory://") as connection:
        with connection.SimpleQueue(queue) as received:
            message = received.get(timeout=2)
            headers: dict[str, Any] = message.headers
            args = message.decode()[0]
            message.ack()
    assert headers["task"] == task
    assert args == [event.model_dump(mode="json")]
    ids = {"type", "pipeline_id", "artifact_id", "release_id", "artifact_ids", "run_host"}
    assert set(args[0]) <= ids


def test_embedded_mode_uses_the_redis_transport_on_the_data_dirs_socket(tmp_path: Any) -> None:
    embedded = broker_config(Settings(data_dir=tmp_path))
    distributed = broker_config(
        Settings(broker_url="redis://127.0.0.1:6379/0", secret_key=Fernet.generate_key().decode())
    )

    assert embedded["broker_url"] == f"redis+socket://{tmp_path}/broker/broker.sock"
    # One code path: the same transport settings in both modes, only the address differs.
    assert {k: v for k, v in embedded.items() if k != "broker_url"} == {
        k: v for k, v in distributed.items() if k != "broker_url"
    }


def test_the_redis_broker_keeps_visibility_above_the_task_time_limit() -> None:
    config = broker_config(
        Settings(broker_url="redis://127.0.0.1:6379/0", secret_key=Fernet.generate_key().decode())
    )

    options = config["broker_transport_options"]
    assert options["visibility_timeout"] > constants.TASK_TIME_LIMIT_SECONDS
    assert options["global_keyprefix"] == "shipyard:"
    assert constants.TASK_TIME_LIMIT_SECONDS > constants.BUILD_TIMEOUT_SECONDS
