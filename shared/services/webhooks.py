"""Incoming webhooks: authenticate a delivery, map its push to an environment, start it once.

A delivery is authenticated before anything in it is trusted: GitHub's and the generic hook's
`sha256=<hex>` HMAC of the raw body, GitLab's shared token. The payload is read beforehand only to
find which apps' secrets to check it with (the repository, or the app the generic hook names);
nothing is stored for a delivery that fails, and nothing it says is used.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import re
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.crypto import SecretBox
from shipyard.shared.exceptions import InvalidInput, ShipyardError
from shipyard.shared.models import (
    App,
    Environment,
    Pipeline,
    WebhookConfig,
    WebhookDelivery,
)
from shipyard.shared.schemas import GenericHook
from shipyard.shared.services import pipelines, rollouts
from shipyard.shared.stages import PipelineKind

HOOK_PATHS = {
    "github": "/v1/hooks/github",
    "gitlab": "/v1/hooks/gitlab",
    "generic": "/v1/hooks/generic",
}
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_ZERO_COMMIT = "0" * 40
_GITLAB_PUSHES = ("Push Hook", "Tag Push Hook")
Outcome = Literal["started", "duplicate", "ignored", "ping"]


class DeliveryRejected(ShipyardError):
    """A delivery that could not be authenticated: refused, and nothing stored."""

    def __init__(self, reason: str) -> None:
        super().__init__("the delivery could not be authenticated (see the hooks documentation)")
        self.reason = reason  # missing_signature, bad_signature, unknown_repository, unknown_app


class RejectionCounter:
    """Rejected deliveries by provider and reason, in this API process since it started."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, provider: str, reason: str) -> None:
        with self._lock:
            self._counts[f"{provider}:{reason}"] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`, as GitHub sends it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, presented: str) -> bool:
    """Whether `presented` is `body`'s signature under `secret`, compared in constant time."""
    return hmac.compare_digest(sign(secret, body).encode(), presented.encode("utf-8", "replace"))


def new_secret() -> str:
    """A random secret for a hook or a subscription."""
    return secrets.token_urlsafe(constants.TRIGGER_SECRET_BYTES)


# --- authentication ----------------------------------------------------------------------------


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
        return None
    return payload if isinstance(payload, dict) else None


def _text(payload: dict[str, Any] | None, *path: str) -> str | None:
    value: Any = payload
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None


def _configs_where(session: Session, *condition: Any) -> list[tuple[App, WebhookConfig]]:
    rows = session.exec(
        select(App, WebhookConfig)
        .join(WebhookConfig, col(WebhookConfig.app_id) == col(App.id))
        .where(*condition)
        .order_by(col(App.name))
    ).all()
    return [(app, config) for app, config in rows]


def _authenticated(
    candidates: list[tuple[App, WebhookConfig]],
    box: SecretBox,
    accepts: Callable[[str], bool],
    unknown: str,
) -> list[App]:
    if not candidates:
        raise DeliveryRejected(unknown)
    # Every candidate is checked, so the time taken does not tell which secret came close.
    verified = [app for app, config in candidates if accepts(box.decrypt(config.secret))]
    if not verified:
        raise DeliveryRejected("bad_signature")
    return verified


def authenticate_github(
    *, session: Session, box: SecretBox, body: bytes, signature: str | None
) -> list[App]:
    """The apps of the pushed repository whose secret signed `body`; else DeliveryRejected."""
    if not signature:
        raise DeliveryRejected("missing_signature")
    repository = _text(_json_object(body), "repository", "full_name")
    candidates = (
        _configs_where(session, WebhookConfig.github_repository == repository.lower())
        if repository
        else []
    )
    return _authenticated(
        candidates,
        box,
        lambda secret: signature_matches(secret, body, signature),
        "unknown_repository",
    )


def authenticate_gitlab(
    *, session: Session, box: SecretBox, body: bytes, token: str | None
) -> list[App]:
    """The apps of the pushed project whose secret is `token`; else DeliveryRejected."""
    if not token:
        raise DeliveryRejected("missing_signature")
    project = _text(_json_object(body), "project", "path_with_namespace")
    candidates = (
        _configs_where(session, WebhookConfig.gitlab_project == project.lower()) if project else []
    )
    presented = token.encode("utf-8", "replace")
    return _authenticated(
        candidates,
        box,
        lambda secret: hmac.compare_digest(secret.encode(), presented),
        "unknown_repository",
    )


def authenticate_generic(
    *, session: Session, box: SecretBox, body: bytes, signature: str | None
) -> App:
    """The app the body names, if its secret signed `body`; else DeliveryRejected."""
    if not signature:
        raise DeliveryRejected("missing_signature")
    name = _text(_json_object(body), "app")
    candidates = _configs_where(session, App.name == name) if name else []
    (app,) = _authenticated(
        candidates, box, lambda secret: signature_matches(secret, body, signature), "unknown_app"
    )
    return app


# --- what a delivery asks for --------------------------------------------------------------


@dataclass(frozen=True)
class Push:
    """A pushed ref: `refs/heads/<branch>` or `refs/tags/<tag>`, and its commit."""

    ref: str
    commit: str | None  # None when the ref was deleted

    def target(self, rules: list[dict[str, str]]) -> tuple[str | None, str]:
        """The environment of the first matching rule, and a reason when there is none."""
        for kind, prefix in (("branch", "refs/heads/"), ("tag", "refs/tags/")):
            if self.ref.startswith(prefix):
                name = self.ref.removeprefix(prefix)
                for rule in rules:
                    if kind in rule and fnmatch.fnmatchcase(name, rule[kind]):
                        return rule["environment"], ""
                return None, f"no rule maps {kind} {name!r} to an environment"
        return None, f"ref {self.ref!r} is neither a branch nor a tag"


def github_push(payload: dict[str, Any]) -> Push:
    """The push a GitHub `push` payload describes."""
    ref = _text(payload, "ref") or ""
    if payload.get("deleted") is True:
        return Push(ref=ref, commit=None)
    # For an annotated tag `after` is the tag object; head_commit is the commit it points to.
    commit = _text(payload, "head_commit", "id") or _text(payload, "after")
    return Push(ref=ref, commit=commit)


def gitlab_push(payload: dict[str, Any]) -> Push:
    """The push a GitLab `Push Hook` or `Tag Push Hook` payload describes."""
    ref = _text(payload, "ref") or ""
    commit = _text(payload, "checkout_sha") or _text(payload, "after")
    return Push(ref=ref, commit=None if commit in (None, _ZERO_COMMIT) else commit)


@dataclass
class Delivery:
    """An authenticated delivery: who sent it, its id, its event and, for a push, what moved."""

    provider: str
    delivery_id: str
    event: str
    push: Push | None = None
    ping: bool = False
    # Generic hook: the environment and ref are named, not derived from rules.
    environment: str | None = None
    ref: str | None = None

    def __post_init__(self) -> None:
        if not self.delivery_id or len(self.delivery_id) > 100:
            raise InvalidInput("the delivery id header is missing or longer than 100 characters")
        self.event = self.event[:64]


def parse_github(body: bytes, delivery_id: str | None, event: str | None) -> Delivery:
    """What an authenticated GitHub delivery asks for."""
    delivery = Delivery(provider="github", delivery_id=delivery_id or "", event=event or "")
    if delivery.event == "ping":
        delivery.ping = True
    elif delivery.event == "push":
        delivery.push = github_push(_require_json(body))
    return delivery


def parse_gitlab(body: bytes, delivery_id: str | None, event: str | None) -> Delivery:
    """What an authenticated GitLab delivery asks for."""
    delivery = Delivery(provider="gitlab", delivery_id=delivery_id or "", event=event or "")
    if delivery.event in _GITLAB_PUSHES:
        delivery.push = gitlab_push(_require_json(body))
    return delivery


def parse_generic(delivery_id: str | None, environment: str, ref: str) -> Delivery:
    """What an authenticated generic delivery asks for (its body already validated)."""
    return Delivery(
        provider="generic",
        delivery_id=delivery_id or str(uuid.uuid4()),
        event="deploy",
        environment=environment,
        ref=ref,
    )


def parse_generic_body(body: bytes, delivery_id: str | None) -> Delivery:
    """What an authenticated generic delivery's body asks for; InvalidInput naming bad fields."""
    try:
        data = GenericHook.model_validate_json(body)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) or "body" for e in exc.errors())
        raise InvalidInput(f"invalid generic hook body ({fields})") from None
    return parse_generic(delivery_id, data.environment, data.ref)


def _require_json(body: bytes) -> dict[str, Any]:
    payload = _json_object(body)
    if payload is None:
        raise InvalidInput("the payload must be a JSON object (content type application/json)")
    return payload


# --- receiving ---------------------------------------------------------------------------------


@dataclass
class Receipt:
    """What a delivery did: its outcome, the pipelines involved, the new ones to start."""

    delivery_id: str
    outcome: Outcome
    reason: str | None = None
    pipelines: list[Pipeline] = field(default_factory=list)
    started: list[Pipeline] = field(default_factory=list)


def receive(*, session: Session, delivery: Delivery, recipients: list[App]) -> Receipt:
    """Record `delivery` once per app and start what it maps to; a redelivery changes nothing.

    The delivery row and its pipeline are inserted in one savepoint: a concurrent redelivery
    fails on the unique (provider, delivery id, app) key and is answered with the first's pipeline.
    The caller commits, then starts `Receipt.started`.
    """
    rows: list[WebhookDelivery] = []
    started: list[Pipeline] = []
    duplicate = False
    for app in recipients:
        existing = _existing(session, delivery, app)
        if existing is None:
            try:
                with session.begin_nested():
                    row, pipeline = _record(session, delivery, app)
            except IntegrityError:
                existing = _existing(session, delivery, app)
                assert existing is not None, "a unique key conflict means the row exists"
            else:
                rows.append(row)
                started.extend([pipeline] if pipeline is not None else [])
        if existing is not None:
            duplicate = True
            rows.append(existing)
    involved = [
        pipeline
        for row in rows
        if row.pipeline_id is not None
        and (pipeline := session.get(Pipeline, row.pipeline_id)) is not None
    ]
    reasons = [row.reason for row in rows if row.reason]
    outcome: Outcome
    if started:
        outcome = "started"
    elif duplicate:
        outcome = "duplicate"
    elif delivery.ping:
        outcome = "ping"
    else:
        outcome = "ignored"
    return Receipt(
        delivery_id=delivery.delivery_id,
        outcome=outcome,
        reason="; ".join(reasons) if outcome == "ignored" else None,
        pipelines=involved,
        started=started,
    )


def _existing(session: Session, delivery: Delivery, app: App) -> WebhookDelivery | None:
    return session.exec(
        select(WebhookDelivery).where(
            WebhookDelivery.provider == delivery.provider,
            WebhookDelivery.delivery_id == delivery.delivery_id,
            WebhookDelivery.app_id == app.id,
        )
    ).first()


def _record(
    session: Session, delivery: Delivery, app: App
) -> tuple[WebhookDelivery, Pipeline | None]:
    row = WebhookDelivery(
        provider=delivery.provider,
        delivery_id=delivery.delivery_id,
        app_id=app.id,
        event=delivery.event,
        outcome="ping" if delivery.ping else "ignored",
        ref=(delivery.push.ref[:255] or None) if delivery.push else delivery.ref,
        commit_sha=delivery.push.commit[:64] if delivery.push and delivery.push.commit else None,
    )
    pipeline = None
    if not delivery.ping:
        environment, ref, reason = _target(session, delivery, app)
        plan = None
        if environment is not None:
            try:  # the environment's default plan, which its placement may refuse for now
                plan = rollouts.resolve_plan(
                    environment=environment, kind=PipelineKind.DEPLOY, request=None
                )
            except InvalidInput as exc:
                environment, reason = None, exc.message
        if environment is None:
            row.reason = reason
        else:
            pipeline = pipelines.create_pipeline(
                session=session,
                app=app,
                environment=environment,
                kind=PipelineKind.DEPLOY,
                trigger="webhook",
                requested_by=f"{delivery.provider} delivery {delivery.delivery_id}"[:100],
                ref=ref,
                rollout=plan,
            )
            row.outcome = "started"
            row.environment = environment.name
            row.pipeline_id = pipeline.id
    session.add(row)
    session.flush()
    return row, pipeline


def _target(session: Session, delivery: Delivery, app: App) -> tuple[Environment | None, str, str]:
    """The environment and ref to deploy, or None and the reason to ignore the delivery."""
    if delivery.environment is not None and delivery.ref is not None:
        name, ref = delivery.environment, delivery.ref
    elif delivery.push is None:
        return None, "", f"event {delivery.event!r} is not handled (only pushes are)"
    elif delivery.push.commit is None:
        return None, "", f"{delivery.push.ref} was deleted"
    elif not _COMMIT.match(delivery.push.commit):
        return None, "", "the payload names no commit"
    else:
        config = session.exec(select(WebhookConfig).where(WebhookConfig.app_id == app.id)).one()
        target, reason = delivery.push.target(config.rules)
        if target is None:
            return None, "", reason
        name, ref = target, delivery.push.commit
    environment = session.exec(
        select(Environment).where(Environment.app_id == app.id, Environment.name == name)
    ).first()
    if environment is None:
        return None, "", f"environment {name!r} of app {app.name!r} does not exist"
    return environment, ref, ""
