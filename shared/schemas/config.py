"""Config: the environment's variables (secret values never come back)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import (
    BaseModel,
    StringConstraints,
)

from shipyard.shared import constants
from shipyard.shared.schemas.common import (
    Input,
)

ConfigKey = Annotated[str, StringConstraints(pattern=constants.CONFIG_KEY_PATTERN)]


class ConfigPatch(Input):
    vars: dict[ConfigKey, Annotated[str, StringConstraints(max_length=65536)] | None] = {}
    secrets: list[ConfigKey] = []
    deploy: bool = True


class ConfigPublic(BaseModel):
    version: int
    vars: dict[str, str]
    secrets: list[str]
    pipeline_id: uuid.UUID | None = None
