"""Domains and their certificates over the API: PATCH of an environment's domains and HTTPS,
`…/certs` (list, upload, renew, remove), who may do what, and that no key ever comes back."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.shared.db import get_engine
from shipyard.shared.events import CertificatesDue, Event
from shipyard.shared.services import tokens
from shipyard.shared.settings import Settings
from tests.certificate_support import TestCA, other_key

DOMAINS = ["shop.example.com", "www.example.com"]


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def shop(client: TestClient, staging: str, events: list[Event]) -> str:
    """Staging with two domains; returns its URL."""
    response = client.patch(staging, json={"domains": DOMAINS})
    assert response.status_code == 200, response.text
    events.clear()
    return staging


def _token(settings: Settings, scope: str) -> dict[str, str]:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        _row, token = tokens.create_token(session=session, name="ci", scopes=[scope])
        session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_domains_added_are_listed_pending_and_ordered_at_once(
    client: TestClient, staging: str, events: list[Event]
) -> None:
    response = client.patch(staging, json={"domains": DOMAINS, "hsts": True})

    assert response.status_code == 200
    body = response.json()
    assert (body["domains"], body["https_redirect"], body["hsts"]) == (DOMAINS, True, True)
    assert events == [CertificatesDue()]
    assert client.get(staging).json()["domains"] == DOMAINS
    listed = client.get(f"{staging}/certs").json()
    assert [(c["domain"], c["source"], c["status"]) for c in listed] == [
        ("shop.example.com", "acme", "pending"),
        ("www.example.com", "acme", "pending"),
    ]


def test_a_domain_removed_loses_its_certificate(
    client: TestClient, shop: str, events: list[Event]
) -> None:
    response = client.patch(shop, json={"domains": ["www.example.com"]})

    assert response.status_code == 200
    assert [c["domain"] for c in client.get(f"{shop}/certs").json()] == ["www.example.com"]
    assert events == []  # nothing new to order


def test_an_environment_created_with_domains_is_ordered_at_once(
    client: TestClient, staging: str, events: list[Event]
) -> None:
    response = client.post(
        "/v1/apps/web/environments", json={"name": "production", "domains": ["web.example.com"]}
    )

    assert response.status_code == 201
    assert response.json()["https_redirect"] is True
    assert events == [CertificatesDue()]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"domains": ["a.localhost"]}, 422, "domains under .localhost"),
        ({"domains": ["not a domain"]}, 422, "domains.0: String should match pattern"),
        ({}, 422, "nothing to change"),
        ({"tls": True}, 422, "Extra inputs are not permitted"),
    ],
)
def test_bad_changes_are_refused(
    client: TestClient, staging: str, body: dict[str, object], status: int, detail: str
) -> None:
    response = client.patch(staging, json=body)

    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_a_domain_of_another_environment_is_a_conflict(client: TestClient, shop: str) -> None:
    client.post("/v1/apps/web/environments", json={"name": "production"})

    response = client.patch(
        "/v1/apps/web/environments/production", json={"domains": ["www.example.com"]}
    )

    assert response.status_code == 409
    assert response.json()["detail"] == "www.example.com already belongs to another environment"


def test_changing_domains_needs_an_admin_token(
    anonymous: TestClient, shop: str, settings: Settings
) -> None:
    response = anonymous.patch(
        shop, json={"domains": []}, headers=_token(settings, "deploy:staging")
    )

    assert response.status_code == 403


def test_an_uploaded_certificate_is_listed_without_its_key(
    client: TestClient, shop: str, ca: TestCA, events: list[Event]
) -> None:
    issued = ca.issue("*.example.com")

    response = client.post(f"{shop}/certs", json={"cert": issued.chain, "key": issued.key})

    assert response.status_code == 201
    assert "PRIVATE" not in response.text
    listed = client.get(f"{shop}/certs")
    assert "PRIVATE" not in listed.text and "key" not in listed.json()[0]
    first = listed.json()[0]
    assert (first["domain"], first["source"], first["status"]) == (
        "shop.example.com",
        "uploaded",
        "issued",
    )
    assert first["issuer"] == "CN=Shipyard Test CA" and first["days_left"] in (88, 89)
    assert len(first["fingerprint"]) == 64
    assert events == []


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("mismatch", "the key does not match the certificate"),
        ("expired", "the certificate expired on "),
        ("elsewhere", "the certificate names none of this environment's domains"),
        ("garbage", "the key is not a PEM private key"),
    ],
)
def test_a_bad_certificate_is_refused_with_why_and_the_key_is_not_echoed(
    client: TestClient, shop: str, ca: TestCA, case: str, detail: str
) -> None:
    from datetime import UTC, datetime, timedelta

    issued = ca.issue("shop.example.com")
    key = issued.key
    chain = issued.chain
    if case == "mismatch":
        key = other_key()
    elif case == "expired":
        past = datetime(2021, 3, 1, tzinfo=UTC)
        expired = ca.issue("shop.example.com", not_before=past, not_after=past + timedelta(30))
        chain, key = expired.chain, expired.key
    elif case == "elsewhere":
        elsewhere = ca.issue("example.org")
        chain, key = elsewhere.chain, elsewhere.key
    else:
        key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"

    response = client.post(f"{shop}/certs", json={"cert": chain, "key": key})

    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)
    assert "PRIVATE" not in response.text and "c2VjcmV0" not in response.text
    assert [c["status"] for c in client.get(f"{shop}/certs").json()] == ["pending", "pending"]


def test_a_deploy_token_uploads_for_its_own_environment_only(
    anonymous: TestClient, shop: str, ca: TestCA, settings: Settings
) -> None:
    issued = ca.issue("shop.example.com")
    body = {"cert": issued.chain, "key": issued.key}

    refused = anonymous.post(f"{shop}/certs", json=body, headers=_token(settings, "deploy:prod"))
    allowed = anonymous.post(f"{shop}/certs", json=body, headers=_token(settings, "deploy:staging"))

    assert refused.status_code == 403
    assert allowed.status_code == 201


def test_removing_an_upload_goes_back_to_acme_at_once(
    client: TestClient, shop: str, ca: TestCA, events: list[Event]
) -> None:
    issued = ca.issue("shop.example.com")
    client.post(f"{shop}/certs", json={"cert": issued.chain, "key": issued.key})

    response = client.delete(f"{shop}/certs/shop.example.com")

    assert response.status_code == 200
    assert (response.json()["source"], response.json()["status"]) == ("acme", "pending")
    assert events == [CertificatesDue()]
    again = client.delete(f"{shop}/certs/shop.example.com")
    assert again.status_code == 409
    assert "has no uploaded certificate" in again.json()["detail"]


def test_a_renewal_is_ordered_at_once(client: TestClient, shop: str, events: list[Event]) -> None:
    response = client.post(f"{shop}/certs/www.example.com/renew")

    assert response.status_code == 202
    assert response.json()["domain"] == "www.example.com"
    assert events == [CertificatesDue()]


def test_a_domain_the_environment_does_not_have_is_404(client: TestClient, shop: str) -> None:
    assert client.post(f"{shop}/certs/other.example.com/renew").status_code == 404
    assert client.delete(f"{shop}/certs/other.example.com").status_code == 404


def test_an_uploaded_certificate_is_not_renewed(client: TestClient, shop: str, ca: TestCA) -> None:
    issued = ca.issue("shop.example.com")
    client.post(f"{shop}/certs", json={"cert": issued.chain, "key": issued.key})

    response = client.post(f"{shop}/certs/shop.example.com/renew")

    assert response.status_code == 409
    assert "was uploaded" in response.json()["detail"]
