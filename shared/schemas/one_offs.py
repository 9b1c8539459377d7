"""One-off commands (`shipyard run`): what is asked, what is recorded, what streams."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from shipyard.shared import constants
from shipyard.shared.schemas.common import Input

MAX_STDIN_BYTES = constants.ONE_OFF_MAX_STDIN_BYTES
# A day at most: a one-off is an admin task, not a process (use the Procfile for those).
MAX_TIMEOUT_SECONDS = 24 * 3600
DEFAULT_TIMEOUT_SECONDS = 3600.0


def _one_line_or_script(command: str) -> str:
    if "\x00" in command:
        raise ValueError("a command cannot hold a NUL character")
    if not command.strip():
        raise ValueError("the command is empty")
    return command


def _base64(text: str) -> str:
    try:
        decoded = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"stdin is not base64 ({exc})") from None
    if len(decoded) > MAX_STDIN_BYTES:
        raise ValueError(f"stdin is over {MAX_STDIN_BYTES // (1024 * 1024)} MiB")
    return text


class OneOffCreate(Input):
    # Run by /bin/sh -c in the release, as the Procfile's commands are.
    command: Annotated[
        str, StringConstraints(min_length=1, max_length=8192), AfterValidator(_one_line_or_script)
    ]
    timeout: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_SECONDS)] = DEFAULT_TIMEOUT_SECONDS
    # The release to run it in (vN); default: the live one, or else the newest.
    release: Annotated[int, Field(ge=1)] | None = None
    # Its standard input, base64 (`shipyard run --stdin`); none: it reads an empty one. Never
    # stored in the record: it goes to the run host through the broker, once.
    stdin: (
        Annotated[
            str,
            StringConstraints(max_length=4 * (MAX_STDIN_BYTES // 3 + 1)),
            AfterValidator(_base64),
        ]
        | None
    ) = None


class OneOffPublic(BaseModel):
    id: uuid.UUID
    app: str
    environment: str
    release_version: int
    command: str
    host: str
    requested_by: str
    timeout: float
    status: str
    exit_code: int | None
    output: str  # its tail, the release's secrets redacted
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None  # seconds, once it ended


class OneOffOutputPublic(BaseModel):
    """The output's lines after a position, while the run goes on, and how it stands."""

    lines: list[str]
    after: str
    status: str
    exit_code: int | None
