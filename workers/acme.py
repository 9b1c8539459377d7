"""Certificate orders from the ACME CA (RFC 8555, HTTP-01), with certbot's `acme` client.

What is due, who orders it and what each outcome does to the certificate are
shared.services.certificates'; this module only talks to the CA. Each challenge's answer is put
on the broker before the CA is asked to validate (shared.acme_challenges), where every router
answers it from. Neither the account key nor a certificate's key is ever logged.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import requests
import structlog
from acme import challenges, messages
from acme import errors as acme_errors
from acme.client import ClientNetwork, ClientV2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from josepy.errors import Error as JoseError
from josepy.jwa import RS256
from josepy.jwk import JWKRSA

from shipyard.shared import acme_challenges, certificate_pem, constants
from shipyard.shared.crypto import SecretBox
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import InvalidInput
from shipyard.shared.models import utcnow
from shipyard.shared.services import certificates
from shipyard.shared.services.certificates import OrderClaim
from shipyard.shared.settings import Settings

log = structlog.get_logger(__name__)

# RFC 8555 §7.3.1: the account the request names is unknown (a test CA that restarted, or an
# account deactivated): register the key again.
_ACCOUNT_UNKNOWN = "accountDoesNotExist"


@dataclass(frozen=True)
class OrderOutcome:
    """What one order did: a certificate stored, or the error recorded."""

    domain: str
    issued: bool
    error: str | None = None


class OrderFailed(Exception):
    """The CA refused, or never finished, an order: the message says why (no secret in it)."""


# What stops an order and is the CA's (or the way to it's) doing: recorded on the certificate,
# which is tried again after its backoff. Anything else is a bug, and the task's to raise.
ORDER_ERRORS: tuple[type[Exception], ...] = (
    OrderFailed,
    acme_errors.Error,
    requests.RequestException,
    JoseError,
    redis.RedisError,
    ValueError,  # a chain the CA sent that does not parse
)


class AcmeClient:
    """The installation's account with the CA (registered on first use), and its orders."""

    def __init__(
        self,
        settings: Settings,
        box: SecretBox,
        challenges_redis: redis.Redis,
    ) -> None:
        self._settings = settings
        self._redis = challenges_redis
        directory_url = settings.acme_directory_url
        with session_scope(settings.sqlalchemy_url) as session:
            account = certificates.account_key(
                session=session, box=box, directory_url=directory_url, new_key_pem=_account_key
            )
        private = serialization.load_pem_private_key(account.key_pem.encode(), password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        self._account_id = account.account_id
        self._key = JWKRSA(key=private)
        # requests takes a CA file for `verify` as well as a boolean.
        verify: Any = str(settings.acme_ca_bundle) if settings.acme_ca_bundle else True
        self._net = ClientNetwork(
            self._key,
            alg=RS256,
            verify_ssl=verify,
            user_agent="shipyard",
            timeout=constants.ACME_HTTP_TIMEOUT_SECONDS,
        )
        self._client = ClientV2(ClientV2.get_directory(directory_url, self._net), self._net)
        if account.uri is None:
            self._register()
        else:
            self._net.account = messages.RegistrationResource(
                body=messages.Registration(), uri=account.uri
            )

    def _register(self) -> None:
        """Register the key (again): a CA that knows it answers with the account it has."""
        self._net.account = None
        email = self._settings.acme_email
        new = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
        try:
            registration = self._client.new_account(new)
        except acme_errors.ConflictError as known:
            registration = messages.RegistrationResource(
                body=messages.Registration(), uri=known.location
            )
            self._net.account = registration
        with session_scope(self._settings.sqlalchemy_url) as session:
            certificates.record_account(
                session=session, account_id=self._account_id, uri=str(registration.uri)
            )
        log.info("acme.account_registered", directory=self._settings.acme_directory_url)

    def issue(self, domain: str) -> tuple[str, str]:
        """Order a certificate for `domain` with a fresh key: (chain PEM, key PEM)."""
        key = certificate_pem.new_key()
        csr = certificate_pem.csr_pem(key, domain)
        try:
            order = self._client.new_order(csr)
        except messages.Error as exc:
            if exc.code != _ACCOUNT_UNKNOWN:
                raise
            self._register()
            order = self._client.new_order(csr)
        tokens = []
        try:
            for authorization in order.authorizations:
                if authorization.body.status == messages.STATUS_VALID:
                    continue  # validated recently: the CA reuses it
                challenge = _http01(authorization)
                response, validation = challenge.response_and_validation(self._key)
                token = challenge.chall.encode("token")
                acme_challenges.put(self._redis, self._settings.broker_namespace, token, validation)
                tokens.append(token)
                self._client.answer_challenge(challenge, response)
            # The acme library compares its deadline with naive local time.
            deadline = datetime.datetime.now() + datetime.timedelta(
                seconds=constants.ACME_ORDER_TIMEOUT_SECONDS
            )
            try:
                finished = self._client.poll_and_finalize(order, deadline)
            except acme_errors.TimeoutError:
                raise OrderFailed(
                    f"the CA did not validate and issue within "
                    f"{constants.ACME_ORDER_TIMEOUT_SECONDS:g} s"
                ) from None
        finally:
            for token in tokens:
                acme_challenges.drop(self._redis, self._settings.broker_namespace, token)
        return finished.fullchain_pem, certificate_pem.key_pem(key)


def order_due(
    *,
    settings: Settings,
    box: SecretBox,
    challenges_redis: redis.Redis,
    connect: Callable[[], AcmeClient] | None = None,
) -> list[OrderOutcome]:
    """Order every certificate due now, one at a time, each under its own claim (the beat's
    task, and the one the API sends when a domain is added or a renewal forced)."""
    if not settings.acme_directory_url:
        return []  # ACME is off: only uploaded certificates are served
    db_url = settings.sqlalchemy_url
    with session_scope(db_url) as session:
        due = certificates.due(session=session, now=utcnow(), renew_days=settings.acme_renew_days)
    connect = connect or (lambda: AcmeClient(settings, box, challenges_redis))
    client: AcmeClient | None = None
    unreachable: str | None = None  # the CA could not be reached: the others fail the same
    outcomes: list[OrderOutcome] = []
    # The notify pool's other work (the reconciler, schedules, deliveries) waits behind this
    # task: past its budget, what is left is the next tick's.
    budget_ends = time.monotonic() + constants.ACME_TASK_BUDGET_SECONDS
    for certificate_id in due:
        if time.monotonic() > budget_ends:
            log.info("certificate.orders_left_for_next_tick")
            break
        with session_scope(db_url) as session:
            order = certificates.claim(
                session=session,
                certificate_id=certificate_id,
                now=utcnow(),
                renew_days=settings.acme_renew_days,
            )
        if order is None:
            continue  # another worker has it, or it is no longer due
        if unreachable is not None:
            outcomes.append(_failed(db_url, order, unreachable))
            continue
        try:
            if client is None:
                try:
                    client = connect()
                except ORDER_ERRORS as exc:
                    unreachable = _describe(exc, settings)
                    raise
            chain, key = client.issue(order.domain)
        except ORDER_ERRORS as exc:
            if isinstance(exc, requests.Timeout | requests.ConnectionError):
                unreachable = _describe(exc, settings)  # a CA that hangs: no other order waits
            outcomes.append(_failed(db_url, order, _describe(exc, settings)))
            continue
        try:
            outcomes.append(_issued(settings, order, chain, key, box))
        except (ValueError, InvalidInput) as exc:  # what the CA sent does not parse
            message = exc.message if isinstance(exc, InvalidInput) else str(exc)
            outcomes.append(_failed(db_url, order, f"the CA's certificate is unusable: {message}"))
    return outcomes


def _issued(
    settings: Settings, order: OrderClaim, chain: str, key: str, box: SecretBox
) -> OrderOutcome:
    with session_scope(settings.sqlalchemy_url) as session:
        stored = certificates.record_issued(
            session=session,
            order=order,
            chain_text=chain,
            key_text=key,
            box=box,
            renew_days=settings.acme_renew_days,
        )
    if stored:
        log.info("certificate.issued", domain=order.domain, renewal=order.renewal)
    else:
        log.info("certificate.order_superseded", domain=order.domain)
    return OrderOutcome(domain=order.domain, issued=stored)


def _failed(db_url: str, order: OrderClaim, error: str) -> OrderOutcome:
    with session_scope(db_url) as session:
        row = certificates.record_failure(session=session, order=order, error=error)
        attempts = row.attempts if row is not None else None
        retry = row.next_attempt_at.isoformat() if row and row.next_attempt_at else None
    log.warning(
        "certificate.order_failed",
        domain=order.domain,
        renewal=order.renewal,
        error=error,
        attempts=attempts,
        next_attempt_at=retry,
    )
    return OrderOutcome(domain=order.domain, issued=False, error=error)


def _http01(authorization: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    raise OrderFailed(
        f"the CA offers no http-01 challenge for {authorization.body.identifier.value}"
    )


def _describe(exc: Exception, settings: Settings) -> str:
    """The error a user reads on the certificate: the CA's problem document when there is one."""
    if isinstance(exc, requests.RequestException):
        return f"cannot reach the ACME CA at {settings.acme_directory_url}: {type(exc).__name__}"
    text = str(exc).strip()
    if isinstance(exc, OrderFailed | messages.Error | acme_errors.ValidationError):
        return text  # says what went wrong, the CA's problem type first
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _account_key() -> str:
    """A new account key: RSA 2048 (RS256), which every ACME CA takes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return certificate_pem.key_pem(key)
