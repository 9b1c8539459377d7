"""Certificates of domains: rows per domain, uploads refused or stored, what the routers serve,
and the orders' claim, outcome and backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from shipyard.shared.crypto import SecretBox
from shipyard.shared.exceptions import Conflict, InvalidInput, NotFound
from shipyard.shared.models import (
    App,
    Certificate,
    CertificateSource,
    CertificateStatus,
    Environment,
    utcnow,
)
from shipyard.shared.schemas import AppCreate, EnvironmentCreate, EnvironmentUpdate
from shipyard.shared.services import apps, certificates, destroy
from tests.certificate_support import TestCA, other_key

RENEW_DAYS = 30


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def shop(session: Session, app: App) -> Environment:
    """An environment with two domains."""
    environment = apps.create_environment(
        session=session,
        app=app,
        data=EnvironmentCreate(name="shop", domains=["shop.example.com", "www.example.com"]),
    )
    session.commit()
    return environment


def _row(session: Session, domain: str) -> Certificate:
    row = session.exec(select(Certificate).where(Certificate.domain == domain)).one()
    session.refresh(row)
    return row


def _domains(session: Session) -> list[str]:
    return sorted(session.exec(select(Certificate.domain)).all())


# --- Domains -----------------------------------------------------------------------------


def test_each_domain_of_a_new_environment_is_due_an_acme_order(
    session: Session, shop: Environment
) -> None:
    row = _row(session, "shop.example.com")

    assert _domains(session) == ["shop.example.com", "www.example.com"]
    assert (row.source, row.status) == (CertificateSource.ACME, CertificateStatus.PENDING)
    assert row.next_attempt_at is not None and row.next_attempt_at <= utcnow()
    assert certificates.due(session=session, now=utcnow(), renew_days=RENEW_DAYS) != []


def test_a_domain_added_gets_a_row_and_one_removed_loses_its_own(
    session: Session, shop: Environment
) -> None:
    added = apps.update_environment(
        session=session,
        environment=shop,
        data=EnvironmentUpdate(domains=["www.example.com", "api.example.com"]),
    )
    session.commit()

    assert added == ["api.example.com"]
    assert _domains(session) == ["api.example.com", "www.example.com"]


def test_a_domain_of_another_environment_is_refused(
    session: Session, shop: Environment, staging: Environment
) -> None:
    with pytest.raises(Conflict, match="www.example.com already belongs"):
        apps.update_environment(
            session=session,
            environment=staging,
            data=EnvironmentUpdate(domains=["www.example.com"]),
        )


def test_a_localhost_domain_is_refused(session: Session, staging: Environment) -> None:
    with pytest.raises(InvalidInput, match=r"\.localhost"):
        apps.update_environment(
            session=session, environment=staging, data=EnvironmentUpdate(domains=["a.localhost"])
        )


def test_nothing_to_change_is_refused(session: Session, staging: Environment) -> None:
    with pytest.raises(InvalidInput, match="nothing to change"):
        apps.update_environment(session=session, environment=staging, data=EnvironmentUpdate())


def test_a_destroyed_apps_domain_can_be_taken_with_a_fresh_row(
    session: Session, app: App, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    issued = ca.issue("shop.example.com")
    certificates.upload(
        session=session, environment=shop, chain_text=issued.chain, key_text=issued.key, box=box
    )
    destroy.destroy_app(session=session, app=app, confirm="web")
    session.commit()
    assert certificates.served(session=session, box=box) == []
    assert certificates.due(session=session, now=utcnow(), renew_days=RENEW_DAYS) == []

    other = apps.create_app(session=session, data=AppCreate(name="other", repo="/srv/o"))
    environment = apps.create_environment(
        session=session,
        app=other,
        data=EnvironmentCreate(name="live", domains=["shop.example.com"]),
    )
    session.commit()

    row = _row(session, "shop.example.com")
    assert row.environment_id == environment.id
    assert (row.source, row.status) == (CertificateSource.ACME, CertificateStatus.PENDING)


# --- Uploads -------------------------------------------------------------------------------


def test_an_uploaded_certificate_is_stored_encrypted_and_served(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    issued = ca.issue("shop.example.com")

    stored = certificates.upload(
        session=session, environment=shop, chain_text=issued.chain, key_text=issued.key, box=box
    )
    session.commit()

    assert [row.domain for row in stored] == ["shop.example.com"]
    row = _row(session, "shop.example.com")
    assert (row.source, row.status) == (CertificateSource.UPLOADED, CertificateStatus.ISSUED)
    assert row.key is not None and "PRIVATE KEY" not in row.key
    assert "PRIVATE KEY" in box.decrypt(row.key)
    assert row.cert_pem == issued.chain
    assert row.issuer == "CN=Shipyard Test CA"
    (served,) = certificates.served(session=session, box=box)
    assert served.domain == "shop.example.com"
    assert served.fingerprint == row.fingerprint and len(served.fingerprint) == 64
    assert served.pem.startswith(issued.chain) and "PRIVATE KEY" in served.pem
    assert (served.redirect, served.hsts) == (True, False)
    assert "PRIVATE" not in repr(served)
    # Never ordered from the ACME CA.
    assert certificates.due(session=session, now=utcnow(), renew_days=RENEW_DAYS) == [
        _row(session, "www.example.com").id
    ]


def test_a_wildcard_certificate_covers_one_label(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    issued = ca.issue("*.example.com")

    stored = certificates.upload(
        session=session, environment=shop, chain_text=issued.chain, key_text=issued.key, box=box
    )

    assert [row.domain for row in stored] == ["shop.example.com", "www.example.com"]


def test_a_wildcard_does_not_cover_two_labels_or_the_bare_domain(
    session: Session, app: App, ca: TestCA, box: SecretBox
) -> None:
    environment = apps.create_environment(
        session=session,
        app=app,
        data=EnvironmentCreate(name="deep", domains=["a.b.example.com", "example.com"]),
    )
    issued = ca.issue("*.example.com")

    with pytest.raises(InvalidInput, match="names none of this environment's domains"):
        certificates.upload(
            session=session,
            environment=environment,
            chain_text=issued.chain,
            key_text=issued.key,
            box=box,
        )


def test_a_certificate_for_another_domain_is_refused_with_both_lists(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    issued = ca.issue("elsewhere.org")

    with pytest.raises(InvalidInput) as refused:
        certificates.upload(
            session=session, environment=shop, chain_text=issued.chain, key_text=issued.key, box=box
        )

    assert refused.value.message == (
        "the certificate names none of this environment's domains: it is for elsewhere.org; "
        "the environment has shop.example.com, www.example.com"
    )


def test_a_key_that_does_not_match_is_refused(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    issued = ca.issue("shop.example.com")
    wrong = other_key()

    with pytest.raises(InvalidInput, match="the key does not match the certificate") as refused:
        certificates.upload(
            session=session, environment=shop, chain_text=issued.chain, key_text=wrong, box=box
        )

    assert "PRIVATE KEY" not in refused.value.message


def test_a_chain_too_long_for_the_router_is_refused(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    issued = ca.issue("shop.example.com")
    padded = issued.chain + ca.pem * (16_000 // len(ca.pem) + 1)  # intermediates galore

    with pytest.raises(InvalidInput, match="a router loads at most 15,000"):
        certificates.upload(
            session=session, environment=shop, chain_text=padded, key_text=issued.key, box=box
        )


def test_an_expired_certificate_is_refused(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    issued = ca.issue("shop.example.com", not_before=long_ago, not_after=long_ago + timedelta(1))

    with pytest.raises(InvalidInput, match="the certificate expired on 2020-01-02 00:00 UTC"):
        certificates.upload(
            session=session, environment=shop, chain_text=issued.chain, key_text=issued.key, box=box
        )


def test_a_certificate_not_yet_valid_is_refused(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    later = utcnow() + timedelta(days=3)
    issued = ca.issue("shop.example.com", not_before=later, not_after=later + timedelta(90))

    with pytest.raises(InvalidInput, match="the certificate is not valid before"):
        certificates.upload(
            session=session, environment=shop, chain_text=issued.chain, key_text=issued.key, box=box
        )


@pytest.mark.parametrize(
    ("chain", "key", "message"),
    [
        ("not a certificate", None, "is not a PEM certificate"),
        (None, "not a key", "is not a PEM private key"),
    ],
)
def test_what_is_not_pem_is_refused(
    session: Session,
    shop: Environment,
    ca: TestCA,
    box: SecretBox,
    chain: str | None,
    key: str | None,
    message: str,
) -> None:
    issued = ca.issue("shop.example.com")

    with pytest.raises(InvalidInput, match=message):
        certificates.upload(
            session=session,
            environment=shop,
            chain_text=chain or issued.chain,
            key_text=key or issued.key,
            box=box,
        )


def test_removing_an_upload_goes_back_to_acme(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    issued = ca.issue("shop.example.com")
    certificates.upload(
        session=session, environment=shop, chain_text=issued.chain, key_text=issued.key, box=box
    )

    row = certificates.remove_upload(session=session, environment=shop, domain="shop.example.com")
    session.commit()

    assert (row.source, row.status, row.key, row.cert_pem) == ("acme", "pending", None, None)
    assert certificates.served(session=session, box=box) == []
    with pytest.raises(Conflict, match="has no uploaded certificate"):
        certificates.remove_upload(session=session, environment=shop, domain="shop.example.com")
    with pytest.raises(NotFound, match="is not a domain of this environment"):
        certificates.remove_upload(session=session, environment=shop, domain="x.example.com")


# --- What is served ------------------------------------------------------------------------


def _issue_through_acme(
    session: Session,
    box: SecretBox,
    ca: TestCA,
    domain: str,
    *,
    days: float = 90,
    not_before: datetime | None = None,
) -> Certificate:
    """As a worker's successful order would store it."""
    now = utcnow()
    row = _row(session, domain)
    order = certificates.claim(
        session=session, certificate_id=row.id, now=now, renew_days=RENEW_DAYS
    )
    assert order is not None
    issued = ca.issue(domain, not_before=not_before, not_after=now + timedelta(days=days))
    assert certificates.record_issued(
        session=session, order=order, chain_text=issued.chain, key_text=issued.key, box=box
    )
    session.commit()
    return _row(session, domain)


def test_served_follows_the_environments_redirect_and_hsts(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    _issue_through_acme(session, box, ca, "shop.example.com")
    apps.update_environment(
        session=session,
        environment=shop,
        data=EnvironmentUpdate(https_redirect=False, hsts=True),
    )
    session.commit()

    (served,) = certificates.served(session=session, box=box)

    assert (served.domain, served.redirect, served.hsts) == ("shop.example.com", False, True)


def test_an_expired_certificate_is_not_served(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    _issue_through_acme(session, box, ca, "shop.example.com", days=1)

    assert certificates.served(session=session, box=box, now=utcnow() + timedelta(days=2)) == []


# --- Orders: claim, outcome, backoff ----------------------------------------------------------


def test_one_worker_claims_an_order_and_a_second_finds_it_taken(
    session: Session, shop: Environment
) -> None:
    now = utcnow()
    row = _row(session, "shop.example.com")

    first = certificates.claim(
        session=session, certificate_id=row.id, now=now, renew_days=RENEW_DAYS
    )
    session.commit()
    second = certificates.claim(
        session=session, certificate_id=row.id, now=now, renew_days=RENEW_DAYS
    )

    assert first is not None and first.domain == "shop.example.com" and not first.renewal
    assert second is None
    assert row.id not in certificates.due(session=session, now=now, renew_days=RENEW_DAYS)
    # A claim whose worker died lapses.
    later = now + timedelta(hours=1)
    assert row.id in certificates.due(session=session, now=later, renew_days=RENEW_DAYS)


def test_a_failed_first_order_backs_off_doubling(session: Session, shop: Environment) -> None:
    row = _row(session, "shop.example.com")
    now = utcnow()
    waits = []
    for _ in range(4):
        order = certificates.claim(
            session=session, certificate_id=row.id, now=now, renew_days=RENEW_DAYS
        )
        assert order is not None
        failed = certificates.record_failure(
            session=session, order=order, error="urn:ietf:params:acme:error:dns", now=now
        )
        session.commit()
        assert failed is not None and failed.next_attempt_at is not None
        assert (
            certificates.claim(
                session=session, certificate_id=row.id, now=now, renew_days=RENEW_DAYS
            )
            is None
        )  # not before the backoff is over
        waits.append((failed.next_attempt_at - now).total_seconds())
        now = failed.next_attempt_at

    row = _row(session, "shop.example.com")
    assert waits == [60, 120, 240, 480]
    assert (row.status, row.attempts, row.error) == ("failed", 4, "urn:ietf:params:acme:error:dns")


def test_a_short_lived_certificate_is_renewed_with_a_third_of_its_life_left(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    # Valid from a day ago (TestCA) for six days in all: due with two days left, not at once.
    row = _issue_through_acme(session, box, ca, "shop.example.com", days=5)
    assert row.not_after is not None and row.not_before is not None
    renew_at = row.not_after - (row.not_after - row.not_before) / 3

    assert row.next_attempt_at is not None
    assert abs((row.next_attempt_at - renew_at).total_seconds()) < 1
    assert row.id not in certificates.due(session=session, now=utcnow(), renew_days=RENEW_DAYS)
    later = renew_at + timedelta(minutes=1)
    assert row.id in certificates.due(session=session, now=later, renew_days=RENEW_DAYS)


def test_a_long_lived_certificate_is_renewed_renew_days_before_it_expires(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    row = _issue_through_acme(session, box, ca, "shop.example.com", days=90)
    assert row.next_attempt_at is None and row.not_after is not None

    just_before = row.not_after - timedelta(days=RENEW_DAYS, minutes=1)
    assert row.id not in certificates.due(session=session, now=just_before, renew_days=RENEW_DAYS)
    inside = row.not_after - timedelta(days=RENEW_DAYS - 1)
    assert row.id in certificates.due(session=session, now=inside, renew_days=RENEW_DAYS)


def test_lets_encrypts_90_days_are_renewed_renew_days_before_expiry(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    # Let's Encrypt's lifetime: 90 days less a second, from its issuance.
    now = utcnow()
    row = _issue_through_acme(
        session, box, ca, "shop.example.com", days=90 - 1 / 86400, not_before=now
    )

    assert row.next_attempt_at is None  # due by the renewal window, whatever it is set to


def test_the_backoff_stops_at_six_hours() -> None:
    assert certificates.backoff_seconds(1) == 60
    assert certificates.backoff_seconds(9) == 60 * 256
    assert certificates.backoff_seconds(10) == 6 * 3600
    assert certificates.backoff_seconds(1000) == 6 * 3600


def test_an_issued_certificate_is_due_within_the_renewal_window(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    row = _issue_through_acme(session, box, ca, "shop.example.com", days=90)
    now = utcnow()

    assert row.id not in certificates.due(session=session, now=now, renew_days=RENEW_DAYS)
    soon = now + timedelta(days=61)
    assert row.id in certificates.due(session=session, now=soon, renew_days=RENEW_DAYS)


def test_a_failed_renewal_keeps_the_certificate_issued_and_served(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    old = _issue_through_acme(session, box, ca, "shop.example.com", days=90)
    in_window = utcnow() + timedelta(days=61)
    order = certificates.claim(
        session=session, certificate_id=old.id, now=in_window, renew_days=RENEW_DAYS
    )
    assert order is not None and order.renewal

    failed = certificates.record_failure(session=session, order=order, error="CA down")
    session.commit()

    assert failed is not None
    assert (failed.status, failed.error, failed.attempts) == ("issued", "CA down", 1)
    (served,) = certificates.served(session=session, box=box)
    assert served.fingerprint == old.fingerprint


def test_a_forced_renewal_is_due_at_once(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    row = _issue_through_acme(session, box, ca, "shop.example.com")
    first = row.fingerprint
    assert row.id not in certificates.due(session=session, now=utcnow(), renew_days=RENEW_DAYS)

    certificates.force_renewal(
        session=session, environment=shop, domain="shop.example.com", acme_enabled=True
    )
    session.commit()

    assert row.id in certificates.due(session=session, now=utcnow(), renew_days=RENEW_DAYS)
    renewed = _issue_through_acme(session, box, ca, "shop.example.com")
    assert renewed.fingerprint != first and renewed.next_attempt_at is None
    assert row.id not in certificates.due(session=session, now=utcnow(), renew_days=RENEW_DAYS)


def test_an_uploaded_certificate_is_not_renewed_by_force(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    issued = ca.issue("shop.example.com")
    certificates.upload(
        session=session, environment=shop, chain_text=issued.chain, key_text=issued.key, box=box
    )

    with pytest.raises(Conflict, match="was uploaded"):
        certificates.force_renewal(
            session=session, environment=shop, domain="shop.example.com", acme_enabled=True
        )
    with pytest.raises(Conflict, match="ACME is off"):
        certificates.force_renewal(
            session=session, environment=shop, domain="www.example.com", acme_enabled=False
        )


def test_an_upload_during_an_order_voids_the_orders_result(
    session: Session, shop: Environment, ca: TestCA, box: SecretBox
) -> None:
    row = _row(session, "shop.example.com")
    order = certificates.claim(
        session=session, certificate_id=row.id, now=utcnow(), renew_days=RENEW_DAYS
    )
    assert order is not None
    mine = ca.issue("shop.example.com")
    certificates.upload(
        session=session, environment=shop, chain_text=mine.chain, key_text=mine.key, box=box
    )
    session.commit()

    from_ca = ca.issue("shop.example.com")
    assert not certificates.record_issued(
        session=session, order=order, chain_text=from_ca.chain, key_text=from_ca.key, box=box
    )
    assert certificates.record_failure(session=session, order=order, error="late") is None
    session.commit()

    row = _row(session, "shop.example.com")
    assert (row.source, row.cert_pem, row.error) == ("uploaded", mine.chain, None)


# --- The ACME account ----------------------------------------------------------------------


def test_the_account_key_is_made_once_per_directory_and_kept_encrypted(
    session: Session, box: SecretBox
) -> None:
    made: list[str] = []

    def make() -> str:
        made.append(other_key())
        return made[-1]

    first = certificates.account_key(
        session=session, box=box, directory_url="https://ca.test/dir", new_key_pem=make
    )
    certificates.record_account(session=session, account_id=first.account_id, uri="https://a/1")
    session.commit()
    again = certificates.account_key(
        session=session, box=box, directory_url="https://ca.test/dir", new_key_pem=make
    )
    elsewhere = certificates.account_key(
        session=session, box=box, directory_url="https://other.test/dir", new_key_pem=make
    )

    assert len(made) == 2
    assert (again.key_pem, again.uri) == (made[0], "https://a/1")
    assert elsewhere.key_pem == made[1] and elsewhere.uri is None
    stored = session.exec(select(Certificate)).all()  # no certificate row was touched
    assert stored == []


def test_rotating_the_secret_key_re_encrypts_certificate_and_account_keys(
    session: Session, shop: Environment, ca: TestCA
) -> None:
    from cryptography.fernet import Fernet

    from shipyard.shared.services.secrets import rotate_secrets

    old_key = Fernet.generate_key()
    old = SecretBox(old_key)
    issued = ca.issue("shop.example.com")
    certificates.upload(
        session=session, environment=shop, chain_text=issued.chain, key_text=issued.key, box=old
    )
    certificates.account_key(
        session=session, box=old, directory_url="https://ca.test/dir", new_key_pem=other_key
    )
    session.commit()
    new_key = Fernet.generate_key()

    assert rotate_secrets(session=session, box=SecretBox(new_key + b"," + old_key)) == 2
    session.commit()

    newest_only = SecretBox(new_key)
    (served,) = certificates.served(session=session, box=newest_only)
    assert served.pem.startswith(issued.chain) and "PRIVATE KEY" in served.pem
    account = certificates.account_key(
        session=session, box=newest_only, directory_url="https://ca.test/dir", new_key_pem=str
    )
    assert "PRIVATE KEY" in account.key_pem
