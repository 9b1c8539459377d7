"""The metrics Shipyard's worker-side processes record, defined once (docs/operations.md).

Defined at import, as prometheus-client intends. In a worker process the multiprocess
directory must be set before this module (or any of prometheus-client) is imported: the entry
points call `shared.metrics.multiprocess.use_metrics_dir` first. Every metric has labels, so no
value (and no file) exists until something is recorded.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

from shipyard.shared.models import Pipeline, PipelineStatus
from shipyard.shared.stages import Stage

# Stages take from a tenth of a second (a cached build, a noop run) to many minutes (a build).
_STAGE_BUCKETS: Final = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
# Release commands (migrations) and drains: seconds to the drain and release timeouts.
_PHASE_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

STAGE_DURATION: Final = Histogram(
    "shipyard_stage_duration_seconds",
    "Time a worker spent on one stage attempt, work and recording, by stage and result.",
    ["stage", "result"],
    buckets=_STAGE_BUCKETS,
)
PIPELINES_FINISHED: Final = Counter(
    "shipyard_pipelines_finished_total",
    "Pipelines that finished, by result, cause (the pipeline's kind) and trigger.",
    ["result", "cause", "trigger"],
)
BUILD_CACHE: Final = Counter(
    "shipyard_build_cache_lookups_total",
    "Successful builds, by whether the commit's artifact was reused (hit) or built (miss).",
    ["result"],
)
RELEASE_PHASE_DURATION: Final = Histogram(
    "shipyard_release_phase_duration_seconds",
    "Time the release command ran (lock held), by app, environment and result.",
    ["app", "environment", "result"],
    buckets=_PHASE_BUCKETS,
)
DRAIN_DURATION: Final = Histogram(
    "shipyard_drain_duration_seconds",
    "Time an old release's web servers took to drain on a router, by outcome.",
    ["app", "environment", "outcome"],
    buckets=_PHASE_BUCKETS,
)
PROCESS_RESTARTS: Final = Counter(
    "shipyard_process_restarts_total",
    "App processes the run host's supervision started again after they exited.",
    ["app", "environment", "process_type"],
)

UNPACKED_BYTES: Final = Gauge(
    "shipyard_unpacked_artifact_bytes",
    "Disk an app's unpacked artifacts take on a run host, after its last run stage there.",
    ["app", "host"],
    multiprocess_mode="mostrecent",
)


def record_stage(*, stage: Stage, result: str, seconds: float) -> None:
    """One stage attempt finished with `result` (succeeded or failed) after `seconds`."""
    STAGE_DURATION.labels(stage=stage, result=result).observe(seconds)


def record_pipeline_finished(*, result: str, cause: str, trigger: str) -> None:
    """A pipeline reached `result` (succeeded or failed)."""
    PIPELINES_FINISHED.labels(result=result, cause=cause, trigger=trigger).inc()


def record_if_finished(pipeline: Pipeline) -> None:
    """Count `pipeline` as finished if the transaction that just committed made it final."""
    if pipeline.status in (PipelineStatus.SUCCEEDED, PipelineStatus.FAILED):
        record_pipeline_finished(
            result=str(pipeline.status), cause=str(pipeline.kind), trigger=pipeline.trigger
        )


def record_build(*, cache_hit: bool) -> None:
    """A build succeeded, from the cache or not."""
    BUILD_CACHE.labels(result="hit" if cache_hit else "miss").inc()
