"""Certificates of environments' domains: one row per domain, from its first order (or an
upload) to what every router serves, with each order's claim, success and failure.

An ACME certificate is `pending` until its first order succeeds (`issued`) or fails (`failed`,
tried again with backoff: 1 min doubling to 6 h). An issued one is due again within the renewal
window before it expires, or when a renewal is forced; a renewal that fails leaves it `issued`
(the certificate it has keeps serving) with the CA's `error`, and backs off the same way. An
uploaded certificate is never ordered: deleting it goes back to the ACME CA.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from shipyard.shared import certificate_pem, constants
from shipyard.shared.crypto import SecretBox
from shipyard.shared.events import CertificatesDue, Event
from shipyard.shared.exceptions import ConfigurationError, Conflict, InvalidInput, NotFound
from shipyard.shared.models import (
    AcmeAccount,
    App,
    Certificate,
    CertificateSource,
    CertificateStatus,
    Environment,
    utcnow,
)
from shipyard.shared.schemas import CertificatePublic

log = structlog.get_logger(__name__)

# The CA's problem detail kept on the row: enough to act on, never a page of HTML.
ERROR_MAX_CHARS = 2000
# Names of a refused certificate quoted back to the user.
_NAMES_SHOWN = 5


@dataclass(frozen=True)
class ServedCertificate:
    """A certificate every router serves for `domain` (what HAProxy loads: `pem`, the chain then
    the decrypted key), and how the domain's plain HTTP behaves."""

    domain: str
    fingerprint: str
    pem: str
    redirect: bool
    hsts: bool

    def __repr__(self) -> str:  # never the key, in a log line or a failed assertion
        return f"ServedCertificate(domain={self.domain!r}, fingerprint={self.fingerprint!r})"


@dataclass(frozen=True)
class OrderClaim:
    """A worker's lease on ordering one domain's certificate: its result is recorded only while
    the row still holds this lease (an upload, or another worker after it lapsed, voids it)."""

    certificate_id: uuid.UUID
    domain: str
    since: datetime
    renewal: bool  # the domain has a certificate: a failure leaves it issued


@dataclass(frozen=True)
class AccountKey:
    """The installation's account with one ACME CA: its key (PEM) and URL once registered."""

    account_id: uuid.UUID
    key_pem: str
    uri: str | None


# --- Domains: a certificate row each ------------------------------------------------------


def sync_domains(
    *, session: Session, environment: Environment, now: datetime | None = None
) -> list[str]:
    """Give each of the environment's domains a certificate row (a new one is due an ACME order
    at once) and delete the rows of domains it gave up; returns the domains added."""
    now = now or utcnow()
    rows = {row.domain: row for row in _rows_of(session, environment)}
    for domain, row in rows.items():
        if domain not in environment.domains:
            session.delete(row)
    added = [domain for domain in environment.domains if domain not in rows]
    # Rows left by an environment that gave the domain up without deleting them (a destroyed
    # app's): the domain is this environment's now (shared.services.apps checked that).
    for row in session.exec(select(Certificate).where(col(Certificate.domain).in_(added))):
        session.delete(row)
    session.flush()  # the deletes before the inserts: the domain is unique
    for domain in added:
        session.add(Certificate(environment_id=environment.id, domain=domain, next_attempt_at=now))
    session.flush()
    return added


def ask_for_orders(publish: Callable[[Event], None]) -> None:
    """Have a worker order what is due now rather than at the beat's next look; a broker that
    is away only delays it until then."""
    try:
        publish(CertificatesDue())
    except Exception as exc:  # the beat's next look orders it all the same
        log.warning("certificates.order_not_sent", error=type(exc).__name__)


# --- What the routers serve, and what `certs` shows -----------------------------------------


# The certificates this process could not decrypt (the wrong SHIPYARD_SECRET_KEY here).
_UNDECRYPTABLE: set[tuple[str, str | None]] = set()


def served(
    *, session: Session, box: SecretBox, now: datetime | None = None
) -> list[ServedCertificate]:
    """Every issued, unexpired certificate of a domain its environment (of an app not
    destroyed) still has, with its key decrypted, by domain."""
    now = now or utcnow()
    rows = session.exec(
        select(Certificate, Environment)
        .join(Environment, col(Environment.id) == col(Certificate.environment_id))
        .join(App, col(App.id) == col(Environment.app_id))
        .where(
            col(Certificate.status) == CertificateStatus.ISSUED,
            col(Certificate.not_after) > now,
            col(App.destroyed_at).is_(None),
        )
        .order_by(col(Certificate.domain))
    )
    result = []
    for certificate, environment in rows:
        if certificate.domain not in environment.domains:
            continue
        if certificate.cert_pem is None or certificate.key is None:
            continue
        try:
            key = box.decrypt(certificate.key)
        except ConfigurationError:
            # Said once per certificate: a router asks every 5 s.
            said = (certificate.domain, certificate.fingerprint)
            if said not in _UNDECRYPTABLE:
                _UNDECRYPTABLE.add(said)
                log.error("certificate.undecryptable", domain=certificate.domain)
            continue
        result.append(
            ServedCertificate(
                domain=certificate.domain,
                fingerprint=certificate.fingerprint or "",
                pem=certificate.cert_pem + key,
                redirect=environment.https_redirect,
                hsts=environment.hsts,
            )
        )
    return result


def of_environment(
    *, session: Session, environment: Environment, now: datetime | None = None
) -> list[CertificatePublic]:
    """The certificates of the environment's domains, by domain (never a key)."""
    now = now or utcnow()
    return [public(row, now) for row in _rows_of(session, environment)]


def public(certificate: Certificate, now: datetime) -> CertificatePublic:
    """What the API shows of a certificate."""
    days_left = None
    if certificate.not_after is not None:
        days_left = math.floor((certificate.not_after - now).total_seconds() / 86400)
    return CertificatePublic.model_validate(
        {**certificate.model_dump(exclude={"key", "cert_pem"}), "days_left": days_left}
    )


# --- Users' own certificates, and forced renewals -------------------------------------------


def upload(
    *,
    session: Session,
    environment: Environment,
    chain_text: str,
    key_text: str,
    box: SecretBox,
    now: datetime | None = None,
) -> list[Certificate]:
    """Store a user's certificate for each of the environment's domains it names (replacing
    what they had); InvalidInput, with the reason, for a key that does not match, a
    certificate expired or not yet valid, or one that names none of the domains."""
    now = now or utcnow()
    chain = certificate_pem.read_chain(chain_text)
    key = certificate_pem.read_key(key_text)
    # What a router loads: the chain and key as served (re-encoded), in one command.
    size = len(certificate_pem.facts(chain).chain_pem) + len(certificate_pem.key_pem(key))
    if size > constants.CERTIFICATE_MAX_SERVED_CHARS:
        raise InvalidInput(
            f"the chain and key take {size:,} characters; a router loads at most "
            f"{constants.CERTIFICATE_MAX_SERVED_CHARS:,} (leave out the root certificate, or "
            "use an ECDSA or RSA 2048 key)"
        )
    if not certificate_pem.key_matches(chain[0], key):
        raise InvalidInput(
            "the key does not match the certificate (the first one in the file, which must be "
            "the domain's own, before its intermediates)"
        )
    facts = certificate_pem.facts(chain)
    if facts.not_after <= now:
        raise InvalidInput(f"the certificate expired on {_day(facts.not_after)}")
    if facts.not_before > now:
        raise InvalidInput(f"the certificate is not valid before {_day(facts.not_before)}")
    covered = [
        domain
        for domain in environment.domains
        if any(certificate_pem.covers(name, domain) for name in facts.names)
    ]
    if not covered:
        raise InvalidInput(_names_none(facts.names, environment))
    token = box.encrypt(certificate_pem.key_pem(key))
    rows = {row.domain: row for row in _rows_of(session, environment)}
    stored = []
    for domain in covered:
        row = rows.get(domain) or Certificate(environment_id=environment.id, domain=domain)
        row.source, row.status = CertificateSource.UPLOADED, CertificateStatus.ISSUED
        row.cert_pem, row.key, row.fingerprint = facts.chain_pem, token, facts.fingerprint
        row.issuer, row.not_before, row.not_after = facts.issuer, facts.not_before, facts.not_after
        # An ACME order under way for it finds its lease gone and records nothing.
        row.error, row.attempts, row.next_attempt_at, row.ordering_since = None, 0, None, None
        row.updated_at = now
        session.add(row)
        stored.append(row)
    session.flush()
    return stored


def remove_upload(
    *, session: Session, environment: Environment, domain: str, now: datetime | None = None
) -> Certificate:
    """Drop a user's certificate for `domain`: the domain is due an ACME order at once."""
    now = now or utcnow()
    row = _row_for(session, environment, domain)
    if row.source != CertificateSource.UPLOADED:
        raise Conflict(
            f"{domain} has no uploaded certificate (its certificate is the ACME CA's): "
            f"`shipyard certs renew {domain}` orders a new one"
        )
    row.source, row.status = CertificateSource.ACME, CertificateStatus.PENDING
    row.cert_pem = row.key = row.fingerprint = row.issuer = None
    row.not_before = row.not_after = None
    row.error, row.attempts, row.next_attempt_at, row.ordering_since = None, 0, now, None
    row.updated_at = now
    session.add(row)
    session.flush()
    return row


def force_renewal(
    *,
    session: Session,
    environment: Environment,
    domain: str,
    acme_enabled: bool,
    now: datetime | None = None,
) -> Certificate:
    """Make `domain`'s certificate due an order now, whatever its expiry or backoff."""
    now = now or utcnow()
    if not acme_enabled:
        raise Conflict("ACME is off here (SHIPYARD_ACME_DIRECTORY_URL is empty): nothing to order")
    row = _row_for(session, environment, domain)
    if row.source == CertificateSource.UPLOADED:
        raise Conflict(
            f"{domain}'s certificate was uploaded: Shipyard renews only the ACME CA's. Upload "
            f"its successor (`shipyard certs add`), or `shipyard certs remove {domain}` to go "
            "back to the ACME CA"
        )
    row.next_attempt_at, row.updated_at = now, now
    session.add(row)
    session.flush()
    return row


# --- Orders: which are due, the claim, and each outcome -------------------------------------


def due(*, session: Session, now: datetime, renew_days: int) -> list[uuid.UUID]:
    """The ACME certificates to order now: pending or failed ones whose backoff is over, issued
    ones within `renew_days` of expiry (or forced), none already being ordered."""
    query = (
        select(Certificate.id)
        .where(_orderable(now, renew_days))
        .order_by(col(Certificate.updated_at))
    )
    return list(session.exec(query))


def claim(
    *, session: Session, certificate_id: uuid.UUID, now: datetime, renew_days: int
) -> OrderClaim | None:
    """Take the lease on ordering one certificate if it is still due and nobody holds it (a
    conditional UPDATE: of two workers, one gets it); None otherwise."""
    claimed = session.execute(
        update(Certificate)
        .where(col(Certificate.id) == certificate_id, _orderable(now, renew_days))
        .values(ordering_since=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = session.get(Certificate, certificate_id, populate_existing=True)
    assert row is not None
    return OrderClaim(
        certificate_id=row.id,
        domain=row.domain,
        since=now,
        renewal=row.status == CertificateStatus.ISSUED,
    )


def record_issued(
    *,
    session: Session,
    order: OrderClaim,
    chain_text: str,
    key_text: str,
    box: SecretBox,
    now: datetime | None = None,
    renew_days: int = constants.ACME_RENEW_DAYS,
) -> bool:
    """Store the CA's chain and its key (encrypted); False if the lease was lost meanwhile
    (the result is then dropped). A certificate that lives less than twice `renew_days` (a CA's
    short-lived profile) is due again when a third of its life is left, not at once."""
    now = now or utcnow()
    facts = certificate_pem.facts(certificate_pem.read_chain(chain_text))
    lifetime = facts.not_after - facts.not_before
    short = lifetime < timedelta(days=2 * renew_days)  # not Let's Encrypt's 90 days: 6, 1, …
    renew_at = facts.not_after - lifetime / 3 if short else None
    stored = session.execute(
        update(Certificate)
        .where(_still_held(order))
        .values(
            status=CertificateStatus.ISSUED,
            cert_pem=facts.chain_pem,
            key=box.encrypt(key_text),
            fingerprint=facts.fingerprint,
            issuer=facts.issuer,
            not_before=facts.not_before,
            not_after=facts.not_after,
            error=None,
            attempts=0,
            next_attempt_at=renew_at,
            ordering_since=None,
            updated_at=now,
        )
    )
    return bool(stored.rowcount == 1)  # type: ignore[attr-defined]


def record_failure(
    *, session: Session, order: OrderClaim, error: str, now: datetime | None = None
) -> Certificate | None:
    """Count a failed order and set the next one after the backoff; a first order's failure
    makes the certificate `failed`, a renewal's leaves it `issued`. None if the lease was lost."""
    now = now or utcnow()
    row = session.get(Certificate, order.certificate_id, populate_existing=True)
    if row is None or row.ordering_since != order.since:
        return None
    attempts = row.attempts + 1
    status = (
        CertificateStatus.ISSUED
        if row.status == CertificateStatus.ISSUED
        else CertificateStatus.FAILED
    )
    recorded = session.execute(
        update(Certificate)
        .where(_still_held(order))
        .values(
            status=status,
            error=error[:ERROR_MAX_CHARS],
            attempts=attempts,
            next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)),
            ordering_since=None,
            updated_at=now,
        )
    )
    if recorded.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(Certificate, order.certificate_id, populate_existing=True)


def backoff_seconds(attempts: int) -> float:
    """The wait after `attempts` failed orders in a row: 1 min, doubling, at most 6 h."""
    exponent = min(max(attempts - 1, 0), 32)
    return float(
        min(constants.ACME_BACKOFF_SECONDS * 2**exponent, constants.ACME_BACKOFF_MAX_SECONDS)
    )


# --- The ACME account ----------------------------------------------------------------------


def account_key(
    *, session: Session, box: SecretBox, directory_url: str, new_key_pem: Callable[[], str]
) -> AccountKey:
    """The installation's account key with the CA at `directory_url`, made (and stored
    encrypted) on first use: two workers that race both end up with the one stored."""
    row = _account(session, directory_url)
    if row is None:
        row = AcmeAccount(directory_url=directory_url, key=box.encrypt(new_key_pem()))
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            row = _account(session, directory_url)
            assert row is not None
    return AccountKey(account_id=row.id, key_pem=box.decrypt(row.key), uri=row.uri)


def record_account(*, session: Session, account_id: uuid.UUID, uri: str) -> None:
    """The account's URL at its CA, once registered (or registered again)."""
    row = session.get(AcmeAccount, account_id)
    if row is not None and row.uri != uri:
        row.uri = uri
        session.add(row)
        session.flush()


def rotate_keys(*, session: Session, box: SecretBox) -> int:
    """Re-encrypt every certificate's and ACME account's key under `box`'s newest key (`secrets
    rotate-key`); returns how many."""
    count = 0
    for certificate in session.exec(select(Certificate).where(col(Certificate.key).is_not(None))):
        assert certificate.key is not None
        certificate.key = box.rotate(certificate.key)
        session.add(certificate)
        count += 1
    for account in session.exec(select(AcmeAccount)):
        account.key = box.rotate(account.key)
        session.add(account)
        count += 1
    session.flush()
    return count


# --- Helpers -------------------------------------------------------------------------------


def _rows_of(session: Session, environment: Environment) -> Sequence[Certificate]:
    query = select(Certificate).where(Certificate.environment_id == environment.id)
    return session.exec(query.order_by(col(Certificate.domain))).all()


def _row_for(session: Session, environment: Environment, domain: str) -> Certificate:
    """The certificate row of one of the environment's domains (made if it has none yet)."""
    domain = domain.lower()
    if domain not in environment.domains:
        raise NotFound(f"{domain} is not a domain of this environment (`shipyard domains`)")
    row = session.exec(
        select(Certificate).where(
            Certificate.environment_id == environment.id, Certificate.domain == domain
        )
    ).first()
    if row is None:
        sync_domains(session=session, environment=environment)
        return _row_for(session, environment, domain)
    return row


def _account(session: Session, directory_url: str) -> AcmeAccount | None:
    query = select(AcmeAccount).where(AcmeAccount.directory_url == directory_url)
    return session.exec(query).first()


def _orderable(now: datetime, renew_days: int) -> ColumnElement[bool]:
    """An ACME certificate of a live app's environment that is due an order and not being
    ordered (or whose orderer's lease has lapsed)."""
    live_environments = (
        select(Environment.id)
        .join(App, col(App.id) == col(Environment.app_id))
        .where(col(App.destroyed_at).is_(None))
    )
    next_attempt = col(Certificate.next_attempt_at)
    lapsed = now - timedelta(seconds=constants.ACME_ORDER_LEASE_SECONDS)
    return and_(
        col(Certificate.source) == CertificateSource.ACME,
        col(Certificate.environment_id).in_(live_environments),
        or_(col(Certificate.ordering_since).is_(None), col(Certificate.ordering_since) < lapsed),
        or_(
            and_(
                col(Certificate.status).in_([CertificateStatus.PENDING, CertificateStatus.FAILED]),
                or_(next_attempt.is_(None), next_attempt <= now),
            ),
            and_(
                col(Certificate.status) == CertificateStatus.ISSUED,
                or_(
                    next_attempt <= now,  # forced, or a renewal's retry
                    and_(
                        next_attempt.is_(None),
                        col(Certificate.not_after) <= now + timedelta(days=renew_days),
                    ),
                ),
            ),
        ),
    )


def _still_held(order: OrderClaim) -> ColumnElement[bool]:
    return and_(
        col(Certificate.id) == order.certificate_id,
        col(Certificate.ordering_since) == order.since,
        col(Certificate.source) == CertificateSource.ACME,
    )


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _names_none(names: tuple[str, ...], environment: Environment) -> str:
    named = ", ".join(names[:_NAMES_SHOWN]) + (", …" if len(names) > _NAMES_SHOWN else "")
    has = ", ".join(environment.domains)
    return (
        "the certificate names none of this environment's domains: it is for "
        + (named or "no DNS name (it has no subjectAltName)")
        + "; the environment has "
        + (has or "no domain (add one with `shipyard domains add`)")
    )
