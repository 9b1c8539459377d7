"""Subscription routes: create (secret shown once), list, remove, what was sent."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def test_create_list_and_remove_a_subscription(client: TestClient, staging: str) -> None:
    created = client.post(
        "/v1/apps/web/subscriptions",
        json={
            "url": "http://127.0.0.1:9999/hook",
            "events": ["pipeline.failed", "rollback.finished"],
        },
    )

    assert created.status_code == 201, created.text
    subscription = created.json()
    assert len(subscription["secret"]) >= 32
    listed = client.get("/v1/apps/web/subscriptions")
    assert listed.status_code == 200
    assert subscription["secret"] not in listed.text
    assert [s["events"] for s in listed.json()] == [["pipeline.failed", "rollback.finished"]]
    sent = client.get(f"/v1/apps/web/subscriptions/{subscription['id']}/notifications")
    assert sent.status_code == 200 and sent.json() == []

    removed = client.delete(f"/v1/apps/web/subscriptions/{subscription['id']}")

    assert removed.status_code == 200
    assert client.get("/v1/apps/web/subscriptions").json() == []


def test_a_chosen_secret_is_not_echoed(client: TestClient, staging: str) -> None:
    created = client.post(
        "/v1/apps/web/subscriptions",
        json={
            "url": "https://hooks.example.invalid/x",
            "events": ["release.created"],
            "secret": "my own signing secret",
        },
    )

    assert created.status_code == 201
    assert created.json()["secret"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.invalid/x", "events": ["pipeline.failed"]},
        {"url": "http://", "events": ["pipeline.failed"]},
        {"url": "http://example.invalid/x", "events": []},
        {"url": "http://example.invalid/x", "events": ["pipeline.exploded"]},
        {"url": "http://example.invalid/x", "events": ["pipeline.failed"], "secret": "short"},
    ],
)
def test_invalid_subscriptions_are_422(client: TestClient, staging: str, body: object) -> None:
    response = client.post("/v1/apps/web/subscriptions", json=body)

    assert response.status_code == 422, response.text


def test_subscriptions_are_admin_only(
    client: TestClient, anonymous: TestClient, staging: str
) -> None:
    made = client.post("/v1/tokens", json={"name": "d", "scopes": ["deploy:staging"]}).json()

    response = anonymous.post(
        "/v1/apps/web/subscriptions",
        json={"url": "http://example.invalid/x", "events": ["pipeline.failed"]},
        headers={"Authorization": f"Bearer {made['token']}"},
    )

    assert response.status_code == 403
