"""Webhooks: deliveries from GitHub, GitLab and CI (signed, no token), and their per-app config.

`public_router` is mounted without the bearer-token dependency: its routes authenticate each
delivery by its signature instead. `router` holds the token-protected configuration routes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from shipyard.api.deps import PublisherDep, SecretBoxDep, SessionDep
from shipyard.shared.exceptions import InvalidInput
from shipyard.shared.schemas import (
    GenericHook,
    HookConfigPublic,
    HookConfigUpdate,
    HookDeliveryPublic,
    HookReceipt,
)
from shipyard.shared.services import apps, hook_config, pipelines, webhooks
from shipyard.shared.services.webhooks import (
    DeliveryRejected,
    Outcome,
    Receipt,
    RejectionCounter,
)

log = structlog.get_logger(__name__)
public_router = APIRouter(prefix="/hooks", tags=["hooks"])
router = APIRouter(tags=["hooks"])
_T = TypeVar("_T")
# A ping or a redelivery is answered at once; what was (or was not) started now, as accepted.
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


@public_router.post("/github", response_model=HookReceipt)
def github(
    request: Request,
    body: RawBody,
    session: SessionDep,
    box: SecretBoxDep,
    publish: PublisherDep,
    rejections: RejectionsDep,
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
    event: Annotated[str | None, Header(alias="X-GitHub-Event")] = None,
    delivery_id: Annotated[str | None, Header(alias="X-GitHub-Delivery")] = None,
) -> JSONResponse:
    """A GitHub delivery (`push`, `ping`), signed with the app's webhook secret."""
    recipients = _authenticate(
        request,
        rejections,
        "github",
        lambda: webhooks.authenticate_github(
            session=session, box=box, body=body, signature=signature
        ),
    )
    delivery = webhooks.parse_github(body, delivery_id, event)
    receipt = webhooks.receive(session=session, delivery=delivery, recipients=recipients)
    return _answer(session, publish, receipt)


@public_router.post("/gitlab", response_model=HookReceipt)
def gitlab(
    request: Request,
    body: RawBody,
    session: SessionDep,
    box: SecretBoxDep,
    publish: PublisherDep,
    rejections: RejectionsDep,
    token: Annotated[str | None, Header(alias="X-Gitlab-Token")] = None,
    event: Annotated[str | None, Header(alias="X-Gitlab-Event")] = None,
    delivery_id: Annotated[str | None, Header(alias="X-Gitlab-Event-UUID")] = None,
) -> JSONResponse:
    """A GitLab delivery (`Push Hook`, `Tag Push Hook`), carrying the app's secret token."""
    recipients = _authenticate(
        request,
        rejections,
        "gitlab",
        lambda: webhooks.authenticate_gitlab(session=session, box=box, body=body, token=token),
    )
    delivery = webhooks.parse_gitlab(body, delivery_id, event)
    receipt = webhooks.receive(session=session, delivery=delivery, recipients=recipients)
    return _answer(session, publish, receipt)


@public_router.post("/generic", response_model=HookReceipt)
def generic(
    request: Request,
    body: RawBody,
    session: SessionDep,
    box: SecretBoxDep,
    publish: PublisherDep,
    rejections: RejectionsDep,
    signature: Annotated[str | None, Header(alias="X-Shipyard-Signature-256")] = None,
    delivery_id: Annotated[str | None, Header(alias="X-Shipyard-Delivery")] = None,
) -> JSONResponse:
    """Any CI system: `{"app", "environment", "ref"}`, signed with the app's webhook secret."""
    app = _authenticate(
        request,
        rejections,
        "generic",
        lambda: webhooks.authenticate_generic(
            session=session, box=box, body=body, signature=signature
        ),
    )
    try:
        data = GenericHook.model_validate_json(body)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) or "body" for e in exc.errors())
        raise InvalidInput(f"invalid generic hook body ({fields})") from None
    delivery = webhooks.parse_generic(delivery_id, data.environment, data.ref)
    receipt = webhooks.receive(session=session, delivery=delivery, recipients=[app])
    return _answer(session, publish, receipt)


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
