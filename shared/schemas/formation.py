"""The formation: how many processes of each type run."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
)

from shipyard.shared import constants
from shipyard.shared.schemas.common import (
    Input,
)

ProcessType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,63}$")]


class FormationPatch(Input):
    """How many processes of each type to run (`ps:scale web=3 worker=2`); others unchanged."""

    processes: Annotated[
        dict[ProcessType, Annotated[int, Field(ge=0, le=constants.MAX_PROCESSES_PER_TYPE)]],
        Field(min_length=1, max_length=50),
    ]


class RestartCreate(Input):
    """Restart one process type only (`ps:restart web`); None: every process."""

    process_type: ProcessType | None = None


class FormationPublic(BaseModel):
    formation: dict[str, int]
    pipeline_id: uuid.UUID | None = None  # the scale of the live release, if one runs
