"""2. Rollback: from the API call until the previous release is live and answering.

examples/hello with the local builder and the local runner. Each sample deploys a new commit
(build → release → run: the "fresh deploy" figure), then rolls back to the release live before
it (run stage only: the "rollback" figure). Both are timed the same way: from before the POST
until the harness sees the pipeline's deployment live in PostgreSQL (polled every 2 ms) and its
web process answers on its own URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from bench.context import Bench
from bench.stats import percentile

SCENARIO = "2. Rollback"
APP = "hello"
ENV = "production"


def until_live(bench: Bench, pipeline_id: str, started: float, timeout: float = 120) -> float:
    """Seconds from `started` until the pipeline's deployment is live and its web answers."""
    stack = bench.stack
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = stack.db.execute(
            "SELECT status, processes FROM deployment WHERE pipeline_id = %s", (pipeline_id,)
        ).fetchone()
        if row is not None and row[0] == "live":
            url = next(p["url"] for p in row[1] if p["type"] == "web")
            while time.monotonic() < deadline:
                try:
                    if stack.client.get(url, timeout=2).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.002)
        if stack.pipeline_status(pipeline_id) == "failed":
            raise RuntimeError(
                f"pipeline {pipeline_id} failed: {stack.pipeline_error(pipeline_id)}"
            )
        time.sleep(0.002)
    raise RuntimeError(f"pipeline {pipeline_id} was not live in {timeout:g}s")


def _timed(bench: Bench, post: Callable[[], str]) -> float:
    started = time.monotonic()
    pipeline_id = post()
    seconds = until_live(bench, pipeline_id, started)
    bench.stack.wait_pipeline(pipeline_id)  # the previous release stopped: the stage is done
    return seconds


def run(bench: Bench) -> None:
    stack = bench.stack
    bench.create_app(APP, "local")
    bench.create_environments(APP, [ENV], runner="local", health_timeout=20)

    def deploy() -> str:
        return stack.start_pipeline(APP, ENV, bench.commits.next())

    def roll_back() -> str:
        path = f"/v1/apps/{APP}/environments/{ENV}/rollback"
        return str(stack.api("POST", path, 202, json={})["id"])

    _timed(bench, deploy)  # v1, and the workers' first local build and run
    for _ in range(bench.plan.repetitions):
        fresh: list[float] = []
        back: list[float] = []
        for _ in range(bench.plan.rollback_samples):
            fresh.append(_timed(bench, deploy))
            back.append(_timed(bench, roll_back))
        ms = 1000.0
        bench.figures.add(
            SCENARIO, "fresh deploy p50, new commit", "ms", percentile(fresh, 50) * ms
        )
        bench.figures.add(
            SCENARIO,
            "rollback p50",
            "ms",
            percentile(back, 50) * ms,
            target="< 1 s",
            check=("<=", 1000.0),
        )
