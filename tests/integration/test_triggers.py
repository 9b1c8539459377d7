"""Triggers on the real stack: a signed GitHub push, the beat's tick task, notifications to a real
loopback receiver that fails twice before it answers.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shipyard.shared import constants
from shipyard.shared.broker import make_celery
from shipyard.shared.services.webhooks import sign, signature_matches
from shipyard.shared.settings import Settings
from tests.integration.stack import Stack
from tests.repos import git

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SECRET = "integration-tests-trigger-secret"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Receiver:
    """A real HTTP receiver on loopback: answers the scripted statuses, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.requests.append((dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/shipyard"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver([500, 500]) as running:
        yield running


def send_tick(stack: Stack, now: datetime) -> None:
    """Send the beat's task by name, as the beat does, with the test's clock."""
    settings = Settings(
        broker_url=stack.env["SHIPYARD_BROKER_URL"],
        broker_namespace=stack.env["SHIPYARD_BROKER_NAMESPACE"],
        secret_key=stack.env["SHIPYARD_SECRET_KEY"],
    )
    celery = make_celery(settings, "test-tick")
    try:
        celery.send_task(
            constants.SCHEDULE_TICK_TASK,
            kwargs={"now": now.isoformat()},
            queue=constants.NOTIFY_QUEUE,
            routing_key=constants.NOTIFY_QUEUE,
        )
    finally:
        celery.close()


def test_a_signed_github_push_deploys_the_pushed_commit_once(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("hook")
    repository = f"acme/{app}"
    distributed.create_app(app, hello_repo, envs=("staging",))
    config = {
        "github_repository": repository,
        "rules": [{"branch": "main", "environment": "staging"}],
        "secret": SECRET,
    }
    distributed.api("PUT", f"/v1/apps/{app}/hooks", 200, json=config)
    commit = git(hello_repo, "rev-parse", "HEAD")
    payload = json.loads((FIXTURES / "github_push.json").read_text())
    payload["ref"] = "refs/heads/main"
    payload["after"] = payload["head_commit"]["id"] = commit
    payload["repository"]["full_name"] = repository
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET, body),
        "Authorization": "",  # hooks need no token
    }

    started = time.monotonic()
    response = distributed.client.post("/v1/hooks/github", content=body, headers=headers)
    answered_in = time.monotonic() - started

    assert response.status_code == 202, response.text
    assert answered_in < 5  # record and enqueue only: well inside GitHub's 10 s
    (pipeline,) = response.json()["pipelines"]
    done = distributed.wait_pipeline(pipeline["id"])
    assert done["status"] == "succeeded", done
    assert done["trigger"] == "webhook"
    log = distributed.api("GET", f"/v1/pipelines/{pipeline['id']}/log", 200)
    assert log["commit"] == commit

    again = distributed.client.post("/v1/hooks/github", content=body, headers=headers)
    forged = distributed.client.post(
        "/v1/hooks/github",
        content=body,
        headers={**headers, "X-Hub-Signature-256": sign("guessed", body)},
    )

    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert [p["id"] for p in again.json()["pipelines"]] == [pipeline["id"]]
    assert forged.status_code == 401
    deliveries = distributed.api("GET", f"/v1/apps/{app}/hooks/deliveries", 200)
    assert [(d["outcome"], d["pipeline_id"]) for d in deliveries] == [("started", pipeline["id"])]


def test_a_receiver_that_fails_twice_gets_the_signed_notification_on_the_third_attempt(
    distributed: Stack, hello_repo: Path, receiver: Receiver
) -> None:
    app = unique("notify")
    distributed.create_app(app, hello_repo, envs=("staging",))
    subscription = distributed.api(
        "POST",
        f"/v1/apps/{app}/subscriptions",
        201,
        json={"url": receiver.url, "events": ["pipeline.succeeded"], "secret": SECRET},
    )

    pipeline = distributed.deploy(app, "staging")

    assert pipeline["status"] == "succeeded"  # whatever the receiver answers
    wait_for(lambda: len(receiver.requests) >= 3, "three attempts", timeout=30)
    assert [status for _, _, status in receiver.requests] == [500, 500, 200]
    bodies = {body for _, body, _ in receiver.requests}
    assert len(bodies) == 1  # every attempt sends the same bytes
    for headers, body, _ in receiver.requests:
        assert signature_matches(SECRET, body, headers[constants.SIGNATURE_HEADER])
        assert headers["X-Shipyard-Event"] == "pipeline.succeeded"
    sent = json.loads(bodies.pop())
    assert sent["event"] == "pipeline.succeeded" and sent["app"] == app
    assert sent["pipeline"]["id"] == pipeline["id"]
    path = f"/v1/apps/{app}/subscriptions/{subscription['id']}/notifications"
    (notification,) = wait_for(
        lambda: [n for n in distributed.api("GET", path, 200) if n["status"] == "delivered"],
        "the delivered notification",
    )
    assert [(a["number"], a["status_code"]) for a in notification["attempts"]] == [
        (1, 500),
        (2, 500),
        (3, 200),
    ]
    assert all(a["duration_ms"] > 0 for a in notification["attempts"])
    assert notification["id"] == sent["id"]


def test_the_tick_task_fires_due_schedules_from_sql_and_skips_those_whose_gates_fail(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("schedule")
    distributed.create_app(app, hello_repo, envs=("staging", "production"))
    staging = distributed.deploy(app, "staging")
    assert staging["status"] == "succeeded"

    def schedule(soak: int) -> dict[str, Any]:
        body = {
            "from": "staging",
            "to": "production",
            "cron": "0 3 * * *",
            "timezone": "UTC",
            "gates": {"min_soak_seconds": soak, "require_healthy": True},
        }
        result: dict[str, Any] = distributed.api(
            "POST", f"/v1/apps/{app}/schedules", 201, json=body
        )
        return result

    soaking, ready = schedule(soak=30 * 86400), schedule(soak=0)
    due = datetime.fromisoformat(ready["next_due_at"])

    send_tick(distributed, due + timedelta(seconds=5))

    def run_of(item: dict[str, Any]) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = distributed.api(
            "GET", f"/v1/apps/{app}/schedules/{item['id']}/runs", 200
        )
        return runs

    (skipped,) = wait_for(lambda: run_of(soaking), "the soaking schedule's run")
    (fired,) = wait_for(lambda: run_of(ready), "the ready schedule's run")
    assert skipped["outcome"] == "skipped" and "soak time" in skipped["reason"]
    assert skipped["pipeline_id"] is None
    assert fired["outcome"] == "fired"
    assert datetime.fromisoformat(fired["due_at"]) == due
    promotion = distributed.wait_pipeline(fired["pipeline_id"])
    assert promotion["status"] == "succeeded", promotion
    assert (promotion["kind"], promotion["trigger"]) == ("promotion", "schedule")
    assert (
        distributed.current(app, "production")["release"]["artifact_id"] == (staging["artifact_id"])
    )

    send_tick(distributed, due + timedelta(seconds=20))  # the same due time again
    send_tick(distributed, due + timedelta(days=1, seconds=5))  # the next one: nothing new

    def next_runs() -> bool:
        return len(run_of(ready)) == 2

    wait_for(next_runs, "the next day's run")
    runs = run_of(ready)
    assert [r["outcome"] for r in runs] == ["skipped", "fired"]
    assert runs[0]["reason"] == "production already runs the artifact live in staging"
    assert len(run_of(soaking)) == 2
