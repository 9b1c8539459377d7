"""A started process as a Deployment row records it (JSON), typed once for every room."""

from __future__ import annotations

from enum import StrEnum
from typing import NotRequired  # pydantic needs these on Python 3.11

from typing_extensions import TypedDict

from shipyard.shared.drivers import RunnerName


class ProcessStatus(StrEnum):
    """What a started process is now, as its record says (`shipyard ps`, `GET …/current`)."""

    RUNNING = "running"  # up; a web process is healthy and in the router
    STARTING = "starting"  # restarted, not yet healthy (a web process, out of the router)
    RESTARTING = "restarting"  # it exited: started again after a delay
    CRASHED = "crashed"  # it keeps exiting (a crash loop): still restarted, at the longest delay


class ProcessRecord(TypedDict):
    """What a runner returns for each process it started, and what supervision updates.

    `type` and `status` are always there; the rest depends on the runner that started it, which
    `runner` names (records of an older Shipyard may lack it: then the keys tell).
    """

    type: str  # the Procfile's process type: web, worker, …
    status: ProcessStatus
    runner: NotRequired[RunnerName]
    index: NotRequired[int]  # 1…N within its type (the formation)
    url: NotRequired[str | None]  # where a web process answers HTTP on its host
    port: NotRequired[int]
    server: NotRequired[str]  # its server name in the environment's router backend
    host: NotRequired[str]  # the run host it is on
    storage: NotRequired[str]  # the environment's persistent storage it mounts
    restarts: NotRequired[int]  # times supervision started it again after it exited
    last_exit: NotRequired[int | None]
    restarted_at: NotRequired[str]
    # The local runner's: the process group's leader, its start time (against pid reuse), output.
    pid: NotRequired[int]
    started: NotRequired[int | None]
    log: NotRequired[str]
    # The Docker runner's.
    container: NotRequired[str]
    name: NotRequired[str]
    image: NotRequired[str]
    # The noop runner's.
    noop: NotRequired[bool]
    deployment: NotRequired[str]
