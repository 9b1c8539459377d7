"""The runner interface: start a release's processes, tell if they run, stop them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# A running process as recorded on the Deployment row (JSON): at least "type" and "status",
# "url" for web, plus whatever the runner needs to find it again (pid, container id, …).
ProcessRecord = dict[str, Any]


@dataclass(frozen=True)
class ReleaseSpec:
    """Everything a runner needs to start one release: IDs, the artifact and the environment."""

    app: str
    environment: str
    release_id: str
    release_version: int
    deployment_id: str
    artifact_id: str
    health_path: str
    health_timeout: float
    env: dict[str, str] = field(repr=False)  # the release's config: never logged
    memory_limit: str | None = None
    cpu_limit: float | None = None


@dataclass(frozen=True)
class OneOffResult:
    """How a one-off command (the release phase) ended: exit code (None: timed out) and output."""

    exit_code: int | None
    output: str


class Runner(Protocol):
    """Starts and stops the processes of releases in one kind of place (host, Docker, …)."""

    name: str

    def start(self, spec: ReleaseSpec) -> list[ProcessRecord]:
        """Start every process type of the release; raise StageFailed if it cannot."""
        ...

    def is_running(self, process: ProcessRecord) -> bool:
        """Whether the process is still running."""
        ...

    def output_tail(self, process: ProcessRecord, lines: int) -> str:
        """The last `lines` lines the process printed."""
        ...

    def stop(self, processes: list[ProcessRecord]) -> None:
        """Stop the processes (gracefully, then by force); gone ones are fine."""
        ...

    def run_once(self, spec: ReleaseSpec, command: str, timeout: float) -> OneOffResult:
        """Run `command` to completion in the release (artifact + config); kill it at `timeout`."""
        ...
