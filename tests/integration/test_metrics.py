"""`/metrics` against real workers: the figures match the store after a few pipelines.

Distributed mode (noop drivers) for the stage histograms, finished pipelines, build cache and
release phase, and a worker's own `--metrics-port`; embedded mode (`shipyard up`, a real app)
for process restarts and drains, recorded by the router's process.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from tests.conftest import commit_file
from tests.integration.stack import Stack, free_port
from tests.integration.up import UpFactory

# What a router process of an earlier `up` left in the metrics dir.
_EARLIER_RESTART = """
import sys
from pathlib import Path
from shipyard.shared.metrics.multiprocess import use_metrics_dir
use_metrics_dir(Path(sys.argv[1]))
from shipyard.shared.metrics import instruments
instruments.PROCESS_RESTARTS.labels(app="web", environment="staging", process_type="web").inc()
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _parse(body: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _scrape(stack: Stack) -> Samples:
    response = stack.client.get("/metrics")
    assert response.status_code == 200, response.text
    return _parse(response.text)


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _stage_counts(samples: Samples) -> dict[str, float]:
    return {
        f"{dict(labels)['stage']}/{dict(labels)['result']}": value
        for (name, labels), value in samples.items()
        if name == "shipyard_stage_duration_seconds_count"
    }


def _until(
    condition: Callable[[], bool], what: str, timeout: float = 60, stack: Stack | None = None
) -> None:
    """Poll `condition`; on timeout fail with what was awaited (and the stack's scrape)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    scraped = stack.client.get("/metrics").text if stack is not None else ""
    shown = "\n".join(line for line in scraped.splitlines() if "_bucket" not in line)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{shown}")


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _pipelines_by_status(database_url: str) -> Counter[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT status, count(*) FROM pipeline GROUP BY status"))
            return Counter({status: count for status, count in rows})
    finally:
        engine.dispose()


@pytest.mark.timeout(300)
def test_the_figures_match_the_store_after_a_few_pipelines(
    distributed: Stack, hello_repo: Path
) -> None:
    app = f"metrics-{uuid.uuid4().hex[:8]}"
    commit_file(hello_repo, "Procfile", "web: python3 app.py\nrelease: true\n", "release phase")
    distributed.api(
        "POST", "/v1/apps", 201, json={"name": app, "repo": str(hello_repo), "builder": "noop"}
    )
    distributed.api(
        "POST", f"/v1/apps/{app}/environments", 201, json={"name": "staging", "runner": "noop"}
    )
    before = _scrape(distributed)

    first = distributed.deploy(app, "staging")
    second = distributed.deploy(app, "staging")  # the same commit: from the build cache
    broken = distributed.deploy(app, "staging", ref="no-such-branch")

    assert [first["status"], second["status"], broken["status"]] == [
        "succeeded",
        "succeeded",
        "failed",
    ]
    expected_stages = {
        "build/succeeded": 2,
        "release/succeeded": 2,
        "run/succeeded": 2,
        "build/failed": 1,
    }
    # A stage is observed just after its result commits: the API may see it finished first.
    _until(
        lambda: (
            _delta(_stage_counts(_scrape(distributed)), _stage_counts(before)) == expected_stages
        ),
        "the stage histograms to count the three pipelines' stages",
    )
    after = _scrape(distributed)
    finished = "shipyard_pipelines_finished_total"
    for result, count in (("succeeded", 2), ("failed", 1)):
        labels = {"result": result, "cause": "deploy", "trigger": "api"}
        assert _get(after, finished, **labels) - _get(before, finished, **labels) == count
    cache = "shipyard_build_cache_lookups_total"
    for result in ("hit", "miss"):
        assert _get(after, cache, result=result) - _get(before, cache, result=result) == 1
    phase = {"app": app, "environment": "staging", "result": "succeeded"}
    assert _get(after, "shipyard_release_phase_duration_seconds_count", **phase) == 2
    live = {"app": app, "environment": "staging"}
    assert _get(after, "shipyard_environment_live_release", **live) == 2
    assert _get(after, "shipyard_broker_up") == 1
    for queue in ("build", "release", "run", "notify"):
        assert _get(after, "shipyard_workers", queue=queue) >= 1, queue
    ages = [v for (n, _), v in after.items() if n == "shipyard_worker_heartbeat_age_seconds"]
    assert len(ages) >= 4 and all(0 <= age < 60 for age in ages), ages

    # Pipelines by status: the store's own count, read when nothing changed it meanwhile (a
    # schedule of another test may start one at any moment).
    database_url = distributed.env["SHIPYARD_DATABASE_URL"]

    def gauges_match_the_store() -> bool:
        stored = _pipelines_by_status(database_url)
        scraped = _scrape(distributed)
        if stored != _pipelines_by_status(database_url):
            return False
        return all(
            _get(scraped, "shipyard_pipelines", status=status) == stored[status]
            for status in ("queued", "running", "succeeded", "failed")
        )

    _until(gauges_match_the_store, "shipyard_pipelines to equal the store's counts")


@pytest.mark.timeout(180)
def test_a_worker_serves_its_hosts_metrics_on_its_own_port(distributed: Stack) -> None:
    port = free_port()
    name = f"metrics-worker-{uuid.uuid4().hex[:6]}"
    distributed.spawn(
        name, "worker", "notify", "--hostname", f"{name}@%h", "--metrics-port", str(port)
    )
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).is_success
            except httpx.HTTPError:
                return False

        _until(answers, f"the worker's metrics port {port}", timeout=90)
        # The same host, the same files: the worker's port and the API agree on the workers'
        # figures (the API adds the store's own gauges).
        own = _stage_counts(_parse(httpx.get(f"http://127.0.0.1:{port}/metrics").text))
        assert own == _stage_counts(_scrape(distributed))
        assert not any(
            n.startswith("shipyard_pipelines ")
            for n in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines()
        )
    finally:
        distributed.stop(name)


def _live_web_pid(stack: Stack) -> int:
    """The live web process's pid, from the store (the API does not show pids)."""
    with sqlite3.connect(stack.data_dir / "shipyard.db") as connection:
        (processes,) = connection.execute(
            "SELECT processes FROM deployment WHERE status = 'live'"
        ).fetchone()
    return int(next(p for p in json.loads(processes) if p["type"] == "web")["pid"])


@pytest.mark.timeout(300)
def test_up_counts_app_restarts_and_drains(
    start_up: UpFactory, hello_repo: Path, tmp_path: Path
) -> None:
    # A restart counted by an earlier run of `up` in this data dir: wiped at start.
    stale = tmp_path / "data" / "metrics"
    subprocess.run(
        [sys.executable, "-c", _EARLIER_RESTART, str(stale)],
        env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        check=True,
        timeout=60,
    )
    assert list(stale.glob("*.db"))
    stack = start_up()
    stack.create_app("web", hello_repo, envs=("staging",))
    assert stack.deploy("web", "staging")["status"] == "succeeded"

    os.kill(_live_web_pid(stack), signal.SIGKILL)

    labels = {"app": "web", "environment": "staging", "process_type": "web"}
    _until(
        lambda: _get(_scrape(stack), "shipyard_process_restarts_total", **labels) == 1,
        "the router's supervision to count the restart",
        timeout=90,
        stack=stack,
    )

    def back_in_the_router() -> bool:
        web = next(p for p in stack.current("web", "staging")["processes"] if p["type"] == "web")
        return bool(web["restarts"] == 1 and web["status"] == "running")

    # Healthy again and served: the next switch has a server of the old release to drain.
    _until(back_in_the_router, "the restarted web process to take traffic again", timeout=90)
    commit_file(hello_repo, "VERSION", "2\n", "second release")
    assert stack.deploy("web", "staging")["status"] == "succeeded"
    drained = {"app": "web", "environment": "staging", "outcome": "drained"}
    _until(
        lambda: _get(_scrape(stack), "shipyard_drain_duration_seconds_count", **drained) == 1,
        "the run pool to observe the first release's drain",
        stack=stack,
    )
