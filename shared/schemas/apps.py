"""Apps and their environments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    model_validator,
)

from shipyard.shared import constants
from shipyard.shared.drivers import BuilderName, RunnerName
from shipyard.shared.schemas.common import (
    Input,
    Name,
    _check_repo,
    _check_subpath,
    strip_credentials,
)
from shipyard.shared.schemas.rollouts import RolloutPlan, StoredPlan


class AppCreate(Input):
    name: Name
    repo: Annotated[
        str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_check_repo)
    ]
    path: Annotated[str, StringConstraints(max_length=1024), AfterValidator(_check_subpath)] = ""
    builder: BuilderName = "local"


class AppUpdate(Input):
    """What `apps update` changes (each field left out stays as it is); the next build uses it."""

    repo: (
        Annotated[
            str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_check_repo)
        ]
        | None
    ) = None
    path: (
        Annotated[str, StringConstraints(max_length=1024), AfterValidator(_check_subpath)] | None
    ) = None
    builder: BuilderName | None = None


class AppPublic(BaseModel):
    id: uuid.UUID
    name: str
    # Credentials in a repository URL are for the build workers, never for readers of the API.
    repo: Annotated[str, AfterValidator(strip_credentials)]
    path: str
    builder: str
    created_at: datetime


class AppDestroyedPublic(BaseModel):
    """What `DELETE /v1/apps/{app}` did: the app's processes stop on their run hosts within
    seconds; its persistent storage stays where it was."""

    name: str
    environments: list[str]
    stopped: int  # live deployments stopped
    one_offs_cancelled: int  # one-off commands still running, asked to end
    destroyed_at: datetime


def _no_parent_segments(value: str) -> str:
    if ".." in value.split("/"):
        raise ValueError("must not contain '..'")
    return value


StorageDir = Annotated[
    str,
    StringConstraints(pattern=r"^/[^\x00]*$", max_length=1024),
    AfterValidator(_no_parent_segments),
    Field(description="An absolute directory on the run host."),
]


RunHostName = Annotated[str, StringConstraints(pattern=constants.HOST_NAME_PATTERN, max_length=64)]
Domain = Annotated[
    str,
    StringConstraints(
        pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$",
        max_length=253,
        to_lower=True,
    ),
    Field(description="A host name such as www.example.com."),
]


class EnvironmentCreate(Input):
    name: Name
    runner: RunnerName = "local"
    health_path: Annotated[str, StringConstraints(pattern=r"^/[!-~]*$", max_length=1024)] = (
        constants.HEALTH_PATH
    )
    health_timeout: Annotated[float, Field(gt=0, le=600)] = constants.HEALTH_TIMEOUT_SECONDS
    memory_limit: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,8}[kmg]?$")] | None = (
        None
    )
    cpu_limit: Annotated[float, Field(gt=0, le=256)] | None = None
    # An absolute host directory for the environment's persistent storage (default: the run
    # host's data dir, or a named volume with the Docker runner).
    storage_dir: StorageDir | None = None
    # Host names the environment answers to on the routers, besides <env>.<app>.localhost.
    domains: Annotated[list[Domain], Field(max_length=20)] = []
    drain_timeout: Annotated[float, Field(ge=0, le=3600)] = constants.DRAIN_TIMEOUT_SECONDS
    # After a switch, how long the replaced release's processes stay running out of rotation, so
    # that a rollback to it is only a router change (0: stopped once drained).
    standby_seconds: Annotated[float, Field(ge=0, le=86400)] = constants.STANDBY_SECONDS
    # HTTPS of its domains: plain HTTP redirected to HTTPS once a domain has a certificate, and
    # HSTS (browsers then refuse plain HTTP for that domain for a year).
    https_redirect: bool = True
    hsts: bool = False
    # Where its processes run (docs/operations.md, "Run hosts"): one run host (its
    # SHIPYARD_HOST_NAME), or spread over `hosts` (the first coordinates), or over `spread` up
    # hosts with the fewest processes ("all": every up one). None of them: the host its first run
    # stage runs on. Kept until changed (PUT …/placement).
    run_host: RunHostName | None = None
    hosts: Annotated[list[RunHostName], Field(min_length=1, max_length=32)] | None = None
    spread: Annotated[int, Field(ge=1, le=32)] | Literal["all"] | None = None

    @model_validator(mode="after")
    def _one_placement(self) -> EnvironmentCreate:
        check_placement(self.run_host, self.hosts, self.spread)
        return self


class EnvironmentUpdate(Input):
    """What `PATCH …/environments/{env}` changes (each field left out stays as it is): its
    domains (the whole list; each one added is given a certificate from the ACME CA, each one
    removed loses its certificate), how its domains' HTTPS behaves, and how its deploys go live
    by default (`rollout`: a plan, or null for at once, unwatched; left out: unchanged), and how
    long a replaced release stands by (`standby_seconds`, 0: stopped once drained)."""

    domains: Annotated[list[Domain], Field(max_length=20)] | None = None
    https_redirect: bool | None = None
    hsts: bool | None = None
    rollout: RolloutPlan | None = None
    standby_seconds: Annotated[float, Field(ge=0, le=86400)] | None = None


class PlacementChange(Input):
    """Where an environment runs from now on: exactly one of the three."""

    run_host: RunHostName | None = None
    hosts: Annotated[list[RunHostName], Field(min_length=1, max_length=32)] | None = None
    spread: Annotated[int, Field(ge=1, le=32)] | Literal["all"] | None = None

    @model_validator(mode="after")
    def _one_placement(self) -> PlacementChange:
        check_placement(self.run_host, self.hosts, self.spread)
        if self.run_host is None and self.hosts is None and self.spread is None:
            raise ValueError("say where: run_host, hosts or spread")
        return self


def check_placement(
    run_host: str | None, hosts: list[str] | None, spread: int | str | None
) -> None:
    if sum(x is not None for x in (run_host, hosts, spread)) > 1:
        raise ValueError("give one of run_host, hosts and spread")
    if hosts is not None and len(set(hosts)) != len(hosts):
        raise ValueError("hosts lists a run host twice")


class EnvironmentPublic(BaseModel):
    id: uuid.UUID
    name: str
    runner: str
    health_path: str
    health_timeout: float
    memory_limit: str | None
    cpu_limit: float | None
    storage_dir: str | None
    domains: list[str]
    https_redirect: bool
    hsts: bool
    drain_timeout: float
    standby_seconds: float = constants.STANDBY_SECONDS
    formation: dict[str, int]
    run_host: str | None = None  # the run host its processes run on (None: not placed yet)
    extra_hosts: list[str] = []  # the other run hosts it is spread over
    url: str | None = None  # the stable URL, through the routers
    # How its deploys, config releases and promotions go live unless they say otherwise.
    rollout: StoredPlan = None
    created_at: datetime
    pipeline_id: uuid.UUID | None = None  # a placement change: the pipeline that moves it


class StoragePublic(BaseModel):
    """An environment's persistent storage: how the app finds it, and where it is."""

    variable: str
    configured: str | None  # the environment's storage_dir, if set
    location: str | None  # where the live deployment's runner put it (path or Docker volume)
