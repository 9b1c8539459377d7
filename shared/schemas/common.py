"""Shared pieces of the API's inputs: names, refs, and the base of every input model."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from shipyard.shared import constants
from shipyard.shared.repo_location import is_local_path

Name = Annotated[
    str,
    StringConstraints(pattern=constants.NAME_PATTERN, max_length=63),
    Field(description="Lowercase letters, digits and '-', as a DNS label."),
]


_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def strip_credentials(text: str) -> str:
    """`text` with the user:password@ part of every URL in it removed."""
    return _URL_CREDENTIALS.sub("", text)


def _check_repo(value: str) -> str:
    if value.startswith("-") or any(ch in value for ch in "\n\r\0"):
        raise ValueError("repo must be a path or URL and may not start with '-'")
    if is_local_path(value) and not PurePosixPath(value).is_absolute():
        # Shipyard's servers run in their data directory, not in the caller's.
        raise ValueError("a local repo must be an absolute path (the CLI makes it one)")
    return value


def _check_subpath(value: str) -> str:
    if not value:
        return value
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or value.startswith("-"):
        raise ValueError("path must be a relative directory inside the repository, without '..'")
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
        raise ValueError("path may contain only letters, digits, '.', '_', '-' and '/'")
    return str(path)


def _check_ref(value: str) -> str:
    if value.startswith("-") or not re.fullmatch(r"[A-Za-z0-9._/@^~{}-]+", value):
        raise ValueError("ref must be a branch, tag or commit SHA")
    return value


Ref = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_check_ref)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A signing secret shared with a webhook sender or a notification receiver.
TriggerSecret = Annotated[
    str,
    StringConstraints(min_length=16, max_length=256, pattern=r"^[ -~]+$"),
    Field(description="16 to 256 printable ASCII characters."),
]
