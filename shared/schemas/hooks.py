"""Incoming webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    model_validator,
)

from shipyard.shared.schemas.common import (
    Input,
    Name,
    Ref,
    TriggerSecret,
)
from shipyard.shared.schemas.pipelines import PipelinePublic

RefPattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._/*?\[\]!-]+$"),
    Field(description="A branch or tag name, or a glob over them (`release/*`, `v*`)."),
]


class HookRule(Input):
    """Pushes to a matching branch (or tag) deploy the commit to `environment`."""

    branch: RefPattern | None = None
    tag: RefPattern | None = None
    environment: Name

    @model_validator(mode="after")
    def _one_ref_kind(self) -> HookRule:
        if (self.branch is None) == (self.tag is None):
            raise ValueError("a rule names either a branch or a tag pattern")
        return self


class HookConfigUpdate(Input):
    github_repository: (
        Annotated[
            str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", max_length=255)
        ]
        | None
    ) = None
    gitlab_project: (
        Annotated[
            str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$", max_length=255)
        ]
        | None
    ) = None
    rules: Annotated[list[HookRule], Field(max_length=50)] = []
    # Without one, a secret is generated (once, or again with rotate_secret) and shown once.
    secret: TriggerSecret | None = None
    rotate_secret: bool = False


class HookConfigPublic(BaseModel):
    app: str
    github_repository: str | None
    gitlab_project: str | None
    rules: list[HookRule]
    urls: dict[str, str]  # provider → path under the API's URL
    created_at: datetime
    updated_at: datetime
    secret: str | None = None  # only in the answer that generated it


class HookDeliveryPublic(BaseModel):
    provider: str
    delivery_id: str
    event: str
    outcome: str
    reason: str | None
    ref: str | None
    commit_sha: str | None
    environment: str | None
    pipeline_id: uuid.UUID | None
    received_at: datetime


class HookReceipt(BaseModel):
    """The answer to a webhook delivery."""

    delivery_id: str
    outcome: Literal["started", "duplicate", "ignored", "ping"]
    ignored: str | None = None  # why nothing was started
    pipelines: list[PipelinePublic] = []


class GenericHook(Input):
    """The body of the generic hook, for CI systems: what to deploy where."""

    app: Name
    environment: Name
    ref: Ref
