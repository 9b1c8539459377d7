"""The noop runner: every code path of a run but the processes themselves, for benchmarks.

It verifies the release's artifact like the local runner does, then "starts" one `web` record
that serves nothing (its `url` is None): the shared switch treats a running web without a URL as
healthy, so the switch, the go-live transaction and the stop of the previous release all run.
"""

from __future__ import annotations

from shipyard.shared.artifacts import ArtifactStore
from shipyard.shared.drivers import RunnerName
from shipyard.shared.process_record import ProcessRecord, ProcessStatus
from shipyard.workers.runners.base import (
    CancelCheck,
    OneOffEnd,
    OutputSink,
    ReleaseSpec,
)


class NoopRunner:
    """Records a web process per release without starting anything."""

    name: RunnerName = "noop"

    def __init__(self, store: ArtifactStore) -> None:
        self._store = store

    def start(self, spec: ReleaseSpec) -> list[ProcessRecord]:
        # A real digest check: a missing or modified artifact fails the run stage as usual.
        self._store.fetch(spec.artifact_id, app=spec.app)
        return [
            {
                "type": "web",
                "status": ProcessStatus.RUNNING,
                "url": None,
                "noop": True,
                "deployment": spec.deployment_id,
            }
        ]

    def is_running(self, process: ProcessRecord) -> bool:
        return bool(process.get("noop"))

    def output_tail(self, process: ProcessRecord, lines: int) -> str:
        return ""

    def stop(self, processes: list[ProcessRecord]) -> None:
        return None  # nothing was started

    def stream_once(
        self,
        spec: ReleaseSpec,
        command: str,
        timeout: float,
        output: OutputSink,
        cancelled: CancelCheck,
        stdin: bytes | None = None,
    ) -> OneOffEnd:
        self._store.fetch(spec.artifact_id, app=spec.app)
        return OneOffEnd(exit_code=0)
