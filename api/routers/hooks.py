"""Webhooks: deliveries from GitHub, GitLab and CI (signed, no token), and their per-app config.

`public_router` is mounted without the bearer-token dependency: its routes authenticate each
delivery by its signature instead. `router` holds the token-protected configuration routes.
Every provider's delivery route is the one skeleton `_delivery_route`, given its row of
`PROVIDERS`: the headers it sends and the services that authenticate and read its deliveries.
"""

# No `from __future__ import annotations` here: the delivery route's `headers` annotation names
# its provider's dependency, which FastAPI must receive as an object, not as a name to look up.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from shipyard.api.deps import PublisherDep, SecretBoxDep, SessionDep
from shipyard.shared.crypto import SecretBox
from shipyard.shared.models import App
from shipyard.shared.schemas import (
    HookConfigPublic,
    HookConfigUpdate,
    HookDeliveryPublic,
    HookReceipt,
)
from shipyard.shared.services import apps, hook_config, pipelines, webhooks
from shipyard.shared.services.webhooks import (
    Delivery,
    DeliveryRejected,
    Outcome,
    Receipt,
    RejectionCounter,
)

log = structlog.get_logger(__name__)
public_router = APIRouter(prefix="/hooks", tags=["hooks"])
router = APIRouter(tags=["hooks"])
_T = TypeVar("_T")
# A ping or a redelivery is answered at once (200); a delivery that started, or did not start,
# something now is accepted (202).
STATUS_BY_OUTCOME: dict[Outcome, int] = {
    "ping": 200,
    "duplicate": 200,
    "started": 202,
    "ignored": 202,
}


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent: signatures are computed over these bytes, before any parsing."""
    return await request.body()


def get_rejections(request: Request) -> RejectionCounter:
    counter: RejectionCounter = request.app.state.hook_rejections
    return counter


RawBody = Annotated[bytes, Depends(raw_body)]
RejectionsDep = Annotated[RejectionCounter, Depends(get_rejections)]


@dataclass(frozen=True)
class DeliveryHeaders:
    """What a delivery's headers say, whatever its provider names them."""

    credential: str | None  # the body's `sha256=` signature, or GitLab's shared token
    delivery_id: str | None
    event: str | None = None  # the generic hook sends none


def github_headers(
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
    event: Annotated[str | None, Header(alias="X-GitHub-Event")] = None,
    delivery_id: Annotated[str | None, Header(alias="X-GitHub-Delivery")] = None,
) -> DeliveryHeaders:
    """A GitHub delivery's headers."""
    return DeliveryHeaders(credential=signature, delivery_id=delivery_id, event=event)


def gitlab_headers(
    token: Annotated[str | None, Header(alias="X-Gitlab-Token")] = None,
    event: Annotated[str | None, Header(alias="X-Gitlab-Event")] = None,
    delivery_id: Annotated[str | None, Header(alias="X-Gitlab-Event-UUID")] = None,
) -> DeliveryHeaders:
    """A GitLab delivery's headers."""
    return DeliveryHeaders(credential=token, delivery_id=delivery_id, event=event)


def generic_headers(
    signature: Annotated[str | None, Header(alias="X-Shipyard-Signature-256")] = None,
    delivery_id: Annotated[str | None, Header(alias="X-Shipyard-Delivery")] = None,
) -> DeliveryHeaders:
    """A generic delivery's headers."""
    return DeliveryHeaders(credential=signature, delivery_id=delivery_id)


@dataclass(frozen=True)
class Provider:
    """A sender of deliveries: its route's name and description, the headers it sends, and the
    services (in `shared/services/webhooks.py`) that authenticate and read what it sends."""

    name: str  # the path under /hooks, the route's name, and the key its rejections count under
    description: str
    headers: Callable[..., DeliveryHeaders]  # a dependency declaring the provider's headers
    authenticate: Callable[[Session, SecretBox, bytes, str | None], list[App]]
    parse: Callable[[bytes, DeliveryHeaders], Delivery]


PROVIDERS = (
    Provider(
        name="github",
        description="A GitHub delivery (`push`, `ping`), signed with the app's webhook secret.",
        headers=github_headers,
        authenticate=lambda session, box, body, signature: webhooks.authenticate_github(
            session=session, box=box, body=body, signature=signature
        ),
        parse=lambda body, headers: webhooks.parse_github(body, headers.delivery_id, headers.event),
    ),
    Provider(
        name="gitlab",
        description=(
            "A GitLab delivery (`Push Hook`, `Tag Push Hook`), carrying the app's secret token."
        ),
        headers=gitlab_headers,
        authenticate=lambda session, box, body, token: webhooks.authenticate_gitlab(
            session=session, box=box, body=body, token=token
        ),
        parse=lambda body, headers: webhooks.parse_gitlab(body, headers.delivery_id, headers.event),
    ),
    Provider(
        name="generic",
        description=(
            'Any CI system: `{"app", "environment", "ref"}`, signed with the app\'s webhook secret.'
        ),
        headers=generic_headers,
        authenticate=lambda session, box, body, signature: [
            webhooks.authenticate_generic(session=session, box=box, body=body, signature=signature)
        ],
        parse=lambda body, headers: webhooks.parse_generic_body(body, headers.delivery_id),
    ),
)


def _authenticate(
    request: Request, rejections: RejectionCounter, provider: str, check: Callable[[], _T]
) -> _T:
    """Run `check`; a rejection leaves a log line and a count, nothing else."""
    try:
        return check()
    except DeliveryRejected as exc:
        rejections.add(provider, exc.reason)
        client = request.client.host if request.client else None
        log.warning("hook.rejected", provider=provider, reason=exc.reason, client=client)
        raise


def _answer(session: SessionDep, publish: PublisherDep, receipt: Receipt) -> JSONResponse:
    session.commit()  # the delivery's receipt, whether or not it starts anything
    launched = {
        pipeline.id: pipelines.launch(session=session, pipeline=pipeline, publish=publish)
        for pipeline in receipt.started
    }
    answer = HookReceipt(
        delivery_id=receipt.delivery_id,
        outcome=receipt.outcome,
        ignored=receipt.reason,
        pipelines=[  # a redelivery answers with the pipelines its first delivery started
            launched.get(p.id) or pipelines.pipeline_public(session=session, pipeline=p)
            for p in receipt.pipelines
        ],
    )
    return JSONResponse(
        answer.model_dump(mode="json"), status_code=STATUS_BY_OUTCOME[receipt.outcome]
    )


def _delivery_route(provider: Provider) -> Callable[..., JSONResponse]:
    """The route receiving `provider`'s deliveries: authenticate, read, record, start."""

    def receive_delivery(
        request: Request,
        body: RawBody,
        session: SessionDep,
        box: SecretBoxDep,
        publish: PublisherDep,
        rejections: RejectionsDep,
        headers: Annotated[DeliveryHeaders, Depends(provider.headers)],
    ) -> JSONResponse:
        recipients = _authenticate(
            request,
            rejections,
            provider.name,
            lambda: provider.authenticate(session, box, body, headers.credential),
        )
        delivery = provider.parse(body, headers)
        receipt = webhooks.receive(session=session, delivery=delivery, recipients=recipients)
        return _answer(session, publish, receipt)

    return receive_delivery


for _provider in PROVIDERS:
    public_router.add_api_route(
        f"/{_provider.name}",
        _delivery_route(_provider),
        methods=["POST"],
        name=_provider.name,
        description=_provider.description,
        response_model=HookReceipt,
    )


@router.get("/hooks/stats")
def rejection_stats(rejections: RejectionsDep) -> dict[str, int]:
    """Deliveries refused with 401 by this API process since it started, by provider:reason."""
    return rejections.snapshot()


@router.put("/apps/{app}/hooks")
def configure_hooks(
    app: str, data: HookConfigUpdate, session: SessionDep, box: SecretBoxDep
) -> HookConfigPublic:
    """Set the app's repository, ref rules and secret; a generated secret is shown this once."""
    owner = apps.get_app(session=session, name=app)
    config, generated = hook_config.configure(session=session, box=box, app=owner, data=data)
    session.commit()
    return hook_config.config_public(app=owner, config=config, secret=generated)


@router.get("/apps/{app}/hooks")
def get_hooks(app: str, session: SessionDep) -> HookConfigPublic:
    """The app's hook config and URLs (never the secret)."""
    owner = apps.get_app(session=session, name=app)
    config = hook_config.get_config(session=session, app=owner)
    return hook_config.config_public(app=owner, config=config)


@router.get("/apps/{app}/hooks/deliveries")
def list_deliveries(
    app: str, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> list[HookDeliveryPublic]:
    """The app's recorded deliveries, newest first."""
    owner = apps.get_app(session=session, name=app)
    rows = hook_config.recent_deliveries(session=session, app=owner, limit=limit)
    return [HookDeliveryPublic.model_validate(row, from_attributes=True) for row in rows]
