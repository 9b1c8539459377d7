"""Config: the environment's variables (secret values never come back)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    StringConstraints,
)

from shipyard.shared import constants
from shipyard.shared.schemas.common import (
    Input,
)

ConfigKey = Annotated[str, StringConstraints(pattern=constants.CONFIG_KEY_PATTERN)]


def _check_value(value: str) -> str:
    # A process's environment cannot carry a NUL (execve would end the value there): refused
    # now, not as a failed release later. (Lone surrogates are refused as invalid strings.)
    if "\0" in value:
        raise ValueError("a config value cannot contain a NUL character (\\x00)")
    return value


ConfigValue = Annotated[str, StringConstraints(max_length=65536), AfterValidator(_check_value)]


class ConfigPatch(Input):
    vars: dict[ConfigKey, ConfigValue | None] = {}
    secrets: list[ConfigKey] = []
    deploy: bool = True


class ConfigPublic(BaseModel):
    version: int
    vars: dict[str, str]
    secrets: list[str]
    pipeline_id: uuid.UUID | None = None
    # The config version of the release live now (None: nothing live). When it is older than
    # `version`, the latest did not go live (its release failed, or none was made): the next
    # deploy takes the latest.
    live_version: int | None = None
