"""API tokens and their scopes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
)

from shipyard.shared.schemas.common import (
    Input,
)

Scope = Annotated[
    str,
    StringConstraints(pattern=r"^(read|admin|metrics|deploy:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$"),
]


class TokenCreate(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[ -~]+$")]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=50)]


class TokenPublic(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str  # shown once, never stored
