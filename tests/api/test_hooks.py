"""Webhook routes: signed deliveries without a token, redelivery, 401/413, per-app config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shipyard.api.routers.hooks import PROVIDERS
from shipyard.shared.events import Event, PipelineQueued
from shipyard.shared.services.webhooks import HOOK_PATHS, sign

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SECRET = "It's a Secret to Everybody"
COMMIT = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def push_body(**changes: Any) -> bytes:
    payload = json.loads((FIXTURES / "github_push.json").read_text())
    payload.update(changes)
    return json.dumps(payload).encode()


def github_headers(body: bytes, delivery: str, event: str = "push") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(SECRET, body),
        "User-Agent": "GitHub-Hookshot/044aadd",
    }


@pytest.fixture
def hooked(client: TestClient, staging: str) -> TestClient:
    """App `web` whose `master` deploys to staging, configured with GitHub's example secret."""
    body = {
        "github_repository": "Codertocat/Hello-World",
        "gitlab_project": "group/hello",
        "rules": [{"branch": "master", "environment": "staging"}],
        "secret": SECRET,
    }
    response = client.put("/v1/apps/web/hooks", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["secret"] is None  # a secret the caller chose is not echoed
    return client


def test_a_signed_github_push_starts_a_pipeline_without_a_token(
    hooked: TestClient, anonymous: TestClient, events: list[Event]
) -> None:
    body = push_body()
    anonymous.headers.pop("Authorization", None)

    response = anonymous.post("/v1/hooks/github", content=body, headers=github_headers(body, "d-1"))

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["outcome"] == "started" and answer["delivery_id"] == "d-1"
    (pipeline,) = answer["pipelines"]
    assert (pipeline["environment"], pipeline["ref"], pipeline["trigger"]) == (
        "staging",
        COMMIT,
        "webhook",
    )
    assert events == [PipelineQueued(pipeline_id=pipeline["id"])]


def test_a_redelivery_is_200_with_the_same_pipeline_and_publishes_nothing(
    hooked: TestClient, events: list[Event]
) -> None:
    body = push_body()
    first = hooked.post("/v1/hooks/github", content=body, headers=github_headers(body, "d-2"))

    again = hooked.post("/v1/hooks/github", content=body, headers=github_headers(body, "d-2"))

    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert again.json()["pipelines"] == first.json()["pipelines"]
    assert len(events) == 1
    deliveries = hooked.get("/v1/apps/web/hooks/deliveries").json()
    assert [(d["delivery_id"], d["outcome"]) for d in deliveries] == [("d-2", "started")]


def test_ping_is_200_and_other_events_and_unmapped_branches_are_202_ignored(
    hooked: TestClient, events: list[Event]
) -> None:
    body = push_body()
    ping = hooked.post("/v1/hooks/github", content=body, headers=github_headers(body, "p", "ping"))
    star = hooked.post("/v1/hooks/github", content=body, headers=github_headers(body, "s", "star"))
    other = push_body(ref="refs/heads/feature")
    branch = hooked.post("/v1/hooks/github", content=other, headers=github_headers(other, "b"))

    assert ping.status_code == 200 and ping.json()["outcome"] == "ping"
    assert star.status_code == 202
    assert star.json()["ignored"] == "event 'star' is not handled (only pushes are)"
    assert branch.status_code == 202
    assert branch.json()["ignored"] == "no rule maps branch 'feature' to an environment"
    assert events == []
    outcomes = {
        d["delivery_id"]: d["outcome"] for d in hooked.get("/v1/apps/web/hooks/deliveries").json()
    }
    assert outcomes == {"p": "ping", "s": "ignored", "b": "ignored"}


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no signature
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": sign("not the secret", push_body())},
        {"X-Hub-Signature-256": "sha1=0123"},
        {"X-Hub-Signature-256": "sha256=\u00e9".encode("latin-1")},  # not ASCII
    ],
)
def test_a_bad_or_missing_signature_is_401_and_stores_nothing_but_a_count(
    hooked: TestClient, events: list[Event], headers: dict[str, str | bytes]
) -> None:
    body = push_body()

    response = hooked.post(
        "/v1/hooks/github",
        content=body,
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "bad", **headers},
    )

    assert response.status_code == 401
    assert response.json() == {
        "detail": "the delivery could not be authenticated (see the hooks documentation)"
    }
    assert events == []
    assert hooked.get("/v1/apps/web/hooks/deliveries").json() == []
    stats = hooked.get("/v1/hooks/stats").json()
    assert sum(stats.values()) == 1
    assert set(stats) <= {"github:missing_signature", "github:bad_signature"}


def test_a_push_from_an_unconfigured_repository_is_401(hooked: TestClient) -> None:
    body = push_body(repository={"full_name": "someone/else"})

    response = hooked.post("/v1/hooks/github", content=body, headers=github_headers(body, "u"))

    assert response.status_code == 401
    assert hooked.get("/v1/hooks/stats").json() == {"github:unknown_repository": 1}


def test_a_body_over_5_mb_is_413(hooked: TestClient) -> None:
    body = b" " * (5 * 1024 * 1024 + 1)

    response = hooked.post("/v1/hooks/github", content=body, headers=github_headers(body, "big"))

    assert response.status_code == 413


def test_gitlab_push_with_its_token(hooked: TestClient, events: list[Event]) -> None:
    body = json.dumps(
        {
            "object_kind": "push",
            "ref": "refs/heads/master",
            "checkout_sha": COMMIT,
            "after": COMMIT,
            "project": {"path_with_namespace": "group/hello"},
        }
    ).encode()
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "g-1"}

    wrong = hooked.post(
        "/v1/hooks/gitlab", content=body, headers={**headers, "X-Gitlab-Token": "nope"}
    )
    right = hooked.post(
        "/v1/hooks/gitlab", content=body, headers={**headers, "X-Gitlab-Token": SECRET}
    )
    again = hooked.post(
        "/v1/hooks/gitlab", content=body, headers={**headers, "X-Gitlab-Token": SECRET}
    )

    assert wrong.status_code == 401
    assert right.status_code == 202 and right.json()["outcome"] == "started"
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert len(events) == 1


def test_generic_hook_for_ci(hooked: TestClient, events: list[Event]) -> None:
    body = json.dumps({"app": "web", "environment": "staging", "ref": "main"}).encode()
    bad = json.dumps({"app": "web", "environment": "staging", "ref": "--upload-pack=x"}).encode()

    started = hooked.post(
        "/v1/hooks/generic",
        content=body,
        headers={"X-Shipyard-Signature-256": sign(SECRET, body), "X-Shipyard-Delivery": "ci-7"},
    )
    refused = hooked.post(
        "/v1/hooks/generic", content=bad, headers={"X-Shipyard-Signature-256": sign(SECRET, bad)}
    )
    unsigned = hooked.post("/v1/hooks/generic", content=body)

    assert started.status_code == 202
    assert started.json()["pipelines"][0]["ref"] == "main"
    assert refused.status_code == 422 and "ref" in refused.json()["detail"]
    assert unsigned.status_code == 401
    assert len(events) == 1


def test_a_generated_secret_is_shown_once_and_the_config_never_shows_it(
    client: TestClient, staging: str
) -> None:
    created = client.put("/v1/apps/web/hooks", json={"github_repository": "o/r"})
    shown = client.get("/v1/apps/web/hooks")

    secret = created.json()["secret"]
    assert isinstance(secret, str) and len(secret) >= 32
    assert shown.status_code == 200
    assert "secret" not in shown.text.replace('"secret":null', "")
    assert secret not in shown.text
    assert shown.json()["urls"] == {
        "github": "/v1/hooks/github",
        "gitlab": "/v1/hooks/gitlab",
        "generic": "/v1/hooks/generic",
    }


def test_hook_config_needs_admin_and_names_existing_environments(
    client: TestClient, anonymous: TestClient, staging: str
) -> None:
    token = client.post("/v1/tokens", json={"name": "ci", "scopes": ["deploy:staging"]}).json()
    deployer = {"Authorization": f"Bearer {token['token']}"}

    forbidden = anonymous.put("/v1/apps/web/hooks", json={}, headers=deployer)
    missing = client.put(
        "/v1/apps/web/hooks", json={"rules": [{"branch": "main", "environment": "qa"}]}
    )
    both = client.put(
        "/v1/apps/web/hooks",
        json={"rules": [{"branch": "main", "tag": "v*", "environment": "staging"}]},
    )
    unconfigured = client.get("/v1/apps/web/hooks")

    assert forbidden.status_code == 403
    assert missing.status_code == 404
    assert both.status_code == 422
    assert unconfigured.status_code == 404


def test_every_provider_has_its_route_at_the_url_the_config_shows() -> None:
    assert {p.name: f"/v1/hooks/{p.name}" for p in PROVIDERS} == HOOK_PATHS
