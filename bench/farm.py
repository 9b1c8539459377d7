"""4. Build farm scaling: K build worker processes, noop builds that each wait a fixed time.

The wait (SHIPYARD_NOOP_BUILD_SECONDS, 1 s by default) stands for an I/O-bound build. Each
repetition posts rounds × K pipelines of new commits and measures, from the store, the span
from the first pipeline's creation to the last build stage's end: builds/s = builds / span.
Efficiency = builds/s at K ÷ (K × builds/s at K = 1). Workers are added to the running farm
(1, then 2, 4, 8 processes: `shipyard worker build --hostname farm-N@%h`), and each new size
is warmed up with one round first.

`scale` is the measurement alone, for any stack: scenario 8 runs it again on a stack whose
artifact store is an OCI registry.
"""

from __future__ import annotations

import statistics
import time

from bench.context import Bench
from shipyard.workers.builders.noop import WAIT_VARIABLE

SCENARIO = "4. Build farm"
APP = "farm"
ENVIRONMENTS = 8  # releases queue per environment; spread them so builds are all that waits


def _batch(bench: Bench, app: str, builds: int) -> float:
    """Builds/s of `builds` new commits posted at once."""
    jobs = [(f"farm-{i % ENVIRONMENTS}", sha) for i, sha in enumerate(bench.commits.take(builds))]
    pipeline_ids = bench.submit(app, jobs)
    db = bench.stack.db
    deadline = time.monotonic() + 600
    while True:
        row = db.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
            " count(*) FILTER (WHERE status = 'failed')"
            " FROM stage_run WHERE pipeline_id = ANY(%s) AND name = 'build'",
            (pipeline_ids,),
        ).fetchone()
        assert row is not None
        if row[1]:
            raise RuntimeError(f"{row[1]} farm builds failed")
        if row[0] == builds:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("farm builds did not finish within 600 s")
        time.sleep(0.02)
    span = db.execute(
        "SELECT EXTRACT(EPOCH FROM (SELECT max(finished_at) FROM stage_run"
        "  WHERE pipeline_id = ANY(%(ids)s) AND name = 'build')"
        " - (SELECT min(created_at) FROM pipeline WHERE id = ANY(%(ids)s)))",
        {"ids": pipeline_ids},
    ).fetchone()
    assert span is not None
    bench.wait_all(pipeline_ids)  # releases and runs drain before the next batch
    return builds / float(span[0])


def run(bench: Bench) -> None:
    bench.stack.terminate("worker-build")  # the farm replaces the stack's one build worker
    scale(bench, SCENARIO, APP)


def scale(bench: Bench, scenario: str, app: str, label: str = "") -> None:
    """Grow a farm of build workers (`APP-build-N`) on `bench.stack` through the plan's sizes,
    measuring builds/s at each (figures named `LABEL…`); the stack must have no other build
    worker running."""
    stack, plan = bench.stack, bench.plan
    bench.create_app(app, "noop")
    bench.create_environments(app, [f"farm-{i}" for i in range(ENVIRONMENTS)], runner="noop")
    wait = {WAIT_VARIABLE: str(plan.farm_build_seconds)}
    running: list[str] = []
    per_worker: float | None = None  # builds/s of one worker, from the smallest farm
    for workers in plan.farm_workers:
        while len(running) < workers:
            name = f"{app}-build-{len(running)}"
            stack.shipyard(name, "worker", "build", "--hostname", f"{name}@%h", extra_env=wait)
            running.append(name)
        stack.wait_workers(running)
        _batch(bench, app, workers)  # warm-up: new workers' first tasks connect and import
        rates = [_batch(bench, app, workers * plan.farm_rounds) for _ in range(plan.repetitions)]
        if per_worker is None:
            per_worker = statistics.median(rates) / workers
        for rate in rates:
            bench.figures.add(scenario, f"{label}throughput, K = {workers}", "builds/s", rate)
        # The smallest farm is the yardstick (100 % by construction): no target of its own.
        baseline = workers == plan.farm_workers[0]
        for rate in rates:
            bench.figures.add(
                scenario,
                f"{label}efficiency, K = {workers} (of linear)",
                "%",
                100 * rate / (workers * per_worker),
                target="" if baseline else "≥ 90 %",
                check=None if baseline else (">=", 90.0),
            )
    bench.figures.add(
        scenario,
        f"{label}ideal, K = 1",
        "builds/s",
        1 / plan.farm_build_seconds,
        note="one worker doing nothing but the wait",
    )
