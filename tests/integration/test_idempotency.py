"""Duplicates do nothing and races do not break numbering: real workers, Redis, PostgreSQL."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from shipyard.shared.broker import make_celery, publish
from shipyard.shared.events import ArtifactBuilt, PipelineQueued, ReleaseCreated
from shipyard.shared.settings import Settings
from tests.integration.stack import Stack, fetch


def _wait_for_log(stack: Stack, worker: str, needle: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.log_path(worker).read_text().count(needle) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{worker} did not log {needle!r} {count} times")


def test_redelivered_stage_messages_create_nothing_twice(
    distributed: Stack, hello_repo: Path
) -> None:
    app = f"dup-{uuid.uuid4().hex[:8]}"
    distributed.create_app(app, hello_repo, envs=("staging",))
    pipeline = distributed.deploy(app, "staging")
    assert pipeline["status"] == "succeeded"
    pipeline_id = uuid.UUID(pipeline["id"])

    settings = Settings(
        broker_url=distributed.env["SHIPYARD_BROKER_URL"],
        broker_namespace=distributed.env["SHIPYARD_BROKER_NAMESPACE"],
        secret_key=distributed.env["SHIPYARD_SECRET_KEY"],
    )
    celery = make_celery(settings, "test-duplicates")
    try:
        publish(celery, PipelineQueued(pipeline_id=pipeline_id))
        publish(celery, ArtifactBuilt(pipeline_id=pipeline_id, artifact_id=pipeline["artifact_id"]))
        publish(celery, ReleaseCreated(pipeline_id=pipeline_id, release_id=pipeline["release_id"]))
    finally:
        celery.close()
    needle = f'"pipeline_id": "{pipeline_id}"'
    for queue in ("build", "release", "run"):
        _wait_for_log(distributed, f"worker-{queue}", "stage.duplicate_ignored", 1)
        lines = [
            line
            for line in distributed.log_path(f"worker-{queue}").read_text().splitlines()
            if needle in line and "stage.duplicate_ignored" in line
        ]
        assert len(lines) == 1, queue

    again = distributed.api("GET", f"/v1/pipelines/{pipeline_id}", 200)
    assert [s["attempt"] for s in again["stages"]] == [1, 1, 1]
    assert len(distributed.api("GET", f"/v1/apps/{app}/artifacts", 200)) == 1
    releases = distributed.api("GET", f"/v1/apps/{app}/environments/staging/releases", 200)
    assert len(releases) == 1
    current = distributed.current(app, "staging")
    assert current["deployment"]["id"] == pipeline["deployment_id"]
    assert fetch(distributed.web_url(app, "staging")) == "Hello from Shipyard"


def test_racing_pipelines_get_gapless_unique_versions_and_one_live_deployment(
    distributed: Stack, hello_repo: Path
) -> None:
    app = f"race-{uuid.uuid4().hex[:8]}"
    distributed.create_app(app, hello_repo, envs=("staging", "qa"))
    started = [distributed.start_pipeline(app, env) for _ in range(4) for env in ("staging", "qa")]

    finished = [distributed.wait_pipeline(pipeline_id, timeout=180) for pipeline_id in started]

    assert all(p["status"] == "succeeded" for p in finished), finished
    for env in ("staging", "qa"):
        releases = distributed.api("GET", f"/v1/apps/{app}/environments/{env}/releases", 200)
        assert sorted(r["version"] for r in releases) == [1, 2, 3, 4]
        live = distributed.current(app, env)
        assert live["deployment"]["status"] == "live"
        assert live["release"]["version"] == max(r["version"] for r in releases)
