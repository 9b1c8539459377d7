"""The runner interface: start a release's processes, tell if they run, stop them."""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from shipyard.shared import constants
from shipyard.shared.drivers import RunnerName
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.services.formation import share_indexes


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
    storage_dir: str | None = None  # the environment's own storage directory, if it set one
    formation: dict[str, int] = field(default_factory=dict)  # processes per type (default 1)
    host: str = field(default_factory=socket.gethostname)  # the run host (SHIPYARD_HOST_NAME)
    # Which part of the formation this host runs: (its position, how many hosts share it).
    share: tuple[int, int] = (0, 1)
    # Start only this type's processes (`ps:restart web`); None: every type of the release.
    only_type: str | None = None
    # The Host header of the health check, as a browser sends it: the environment's first
    # domain, else its stable host name (`<env>.<app>.localhost`); None: the process's address.
    health_host: str | None = None


@dataclass(frozen=True)
class OneOffResult:
    """How a one-off command (the release phase) ended: exit code (None: timed out) and output."""

    exit_code: int | None
    output: str


@dataclass(frozen=True)
class OneOffEnd:
    """How a streamed one-off command (`shipyard run`) ended."""

    exit_code: int | None  # None: killed (timed out or cancelled)
    timed_out: bool = False
    cancelled: bool = False


OutputSink = Callable[[str], None]  # receives each line of output as it is printed
CancelCheck = Callable[[], bool]  # asked every STREAM_POLL_SECONDS: stop it now?
STREAM_POLL_SECONDS = 0.2
# A printed line longer than this reaches the sink in pieces (the output is followed in memory).
MAX_LINE_BYTES = 16_384


class Runner(Protocol):
    """Starts and stops the processes of releases in one kind of place (host, Docker, …)."""

    name: RunnerName

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

    def stream_once(
        self,
        spec: ReleaseSpec,
        command: str,
        timeout: float,
        output: OutputSink,
        cancelled: CancelCheck,
        stdin: bytes | None = None,
    ) -> OneOffEnd:
        """Run `command` once in the release (artifact + config, as its processes get them),
        reading `stdin` (else an empty input), each line of its output to `output` as it is
        printed; kill it (its whole process group or container) at `timeout` or once
        `cancelled` says so."""
        ...


def run_to_end(runner: Runner, spec: ReleaseSpec, command: str, timeout: float) -> OneOffResult:
    """`command` run once in the release until it ends (killed at `timeout`), its output kept."""
    lines: list[str] = []
    ended = runner.stream_once(spec, command, timeout, lines.append, lambda: False)
    return OneOffResult(
        exit_code=ended.exit_code,
        output=output_tail("".join(f"{line}\n" for line in lines).encode()),
    )


# --- what every driver needs the same way ------------------------------------------------------


def with_storage(env: dict[str, str], storage: str) -> dict[str, str]:
    """The release's config with `$SHIPYARD_STORAGE_DIR` (or `${…}`) in its values replaced by
    where the processes find their storage, so that config can name a path in it before the
    first run (`DATABASE_URL=sqlite:///$SHIPYARD_STORAGE_DIR/blog.db`). Nothing else expands."""
    names = (f"${{{constants.STORAGE_VARIABLE}}}", f"${constants.STORAGE_VARIABLE}")
    expanded = {}
    for key, value in env.items():
        for name in names:
            value = value.replace(name, storage)
        expanded[key] = value
    return expanded


def indexes_to_start(spec: ReleaseSpec, process_type: str) -> list[int]:
    """The indexes of the `process_type` processes `spec` starts on its host: its share of the
    formation, and none of a type other than the one restarted alone (`spec.only_type`)."""
    if spec.only_type is not None and process_type != spec.only_type:
        return []
    return share_indexes(spec.formation, process_type, *spec.share)


# The ports free_port gave lately: a process given one may not listen on it yet, and the kernel
# may offer the same port again meanwhile (seen: two `web` processes of one start given one port).
_GIVEN: deque[int] = deque(maxlen=256)
_GIVEN_LOCK = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and not one this process gave
    lately."""
    with _GIVEN_LOCK:
        for _ in range(32):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _GIVEN:
                break
        _GIVEN.append(port)
        return port


def server_name(deployment_id: str, process_type: str, index: int, port: int) -> str:
    """A process's server name in the environment's router backend (unique per process
    started, port included)."""
    return f"{deployment_id[:8]}-{process_type}-{index}-p{port}"


def web_url(process_type: str, port: int | None) -> str | None:
    """Where a started process answers HTTP: only `web` does, on its loopback port."""
    return f"http://127.0.0.1:{port}" if process_type == "web" else None


def output_tail(output: bytes, limit: int = constants.RELEASE_OUTPUT_LIMIT_BYTES) -> str:
    """The end of a one-off command's output, as text."""
    return output[-limit:].decode(errors="replace")
