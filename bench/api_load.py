"""6. API under load: `GET /v1/pipelines/{id}` from a load generator on loopback.

One extra `shipyard api --workers W` per worker count, against the same store; the load
generator (bench.loadgen, in the harness process: it shares the 2 cores) keeps C keep-alive
connections busy for T seconds. Figures: successful requests/s, and p50/p99 latency.

Beside the one-worker API, in each repetition, the floors (bench/floors.py) on the same
uvicorn settings: a bare Starlette route returning a constant JSON (HTTP) and the same route
reading the pipeline's row over the API's engine (HTTP + SQL); the GET's target is a ratio
to the latter.
"""

from __future__ import annotations

import sys

from bench import floors
from bench.context import Bench
from bench.loadgen import LoadResult, generate_load
from bench.profiling import profiled
from bench.stack import free_port
from bench.stats import percentile

SCENARIO = "6. API under load"
FLOORS = "api-floors"
# `GET /v1/pipelines/{id}` against the HTTP + SQL floor's requests/s, one worker (issue 28).
FLOOR_RATIO_TARGET = 0.5


def _a_pipeline(bench: Bench) -> str:
    row = bench.stack.db.execute(
        "SELECT id FROM pipeline WHERE status = 'succeeded' ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    if row is not None:
        return str(row[0])
    bench.create_app("load", "noop")
    bench.create_environments("load", ["production"], runner="noop")
    pipeline_id = bench.stack.start_pipeline("load", "production", bench.commits.next())
    bench.stack.wait_pipeline(pipeline_id)
    return pipeline_id


def run(bench: Bench) -> None:
    stack, plan = bench.stack, bench.plan
    pipeline_id = _a_pipeline(bench)
    path = f"/v1/pipelines/{pipeline_id}"
    connections = plan.load_connections
    for workers in plan.api_workers:
        # One worker: the stack's own `shipyard api` (its default); more: one started here.
        name = "api" if workers == 1 else f"api-load-{workers}"
        port = int(stack.api_url.rsplit(":", 1)[1]) if workers == 1 else free_port()
        if workers > 1:
            stack.shipyard(name, "api", "--port", str(port), "--workers", str(workers))
        try:
            stack.wait_api(f"http://127.0.0.1:{port}", name)
            generate_load(port, path, stack.token, connections, min(1.0, plan.load_seconds))
            if workers == 1:
                _with_floors(bench, port, pipeline_id)
                continue
            label = f"{workers} uvicorn workers, {connections} conns"
            for _ in range(plan.repetitions):
                with profiled(stack, bench.profile_dir, f"load-{workers}", [name]):
                    result = _load(bench, name, port, path)
                _add_load_figures(bench, f"GET pipeline, {label}", label, result)
        finally:
            if workers > 1:
                stack.stop(name)


def _with_floors(bench: Bench, api_port: int, pipeline_id: str) -> None:
    """The one-worker API and its two floors, one after the other in each repetition."""
    stack, plan = bench.stack, bench.plan
    label = f"1 uvicorn worker, {plan.load_connections} conns"
    floor_port = free_port()
    stack.spawn(FLOORS, [sys.executable, "-m", "bench.floors", "--port", str(floor_port)])
    try:
        stack.wait_api(f"http://127.0.0.1:{floor_port}", FLOORS)
        sql_path = floors.SQL_PATH.format(pipeline_id=pipeline_id)
        for path in (floors.HTTP_PATH, sql_path):  # warm-up, as the API's
            generate_load(floor_port, path, stack.token, plan.load_connections, 1.0)
        for _ in range(plan.repetitions):
            with profiled(stack, bench.profile_dir, "load-1", ["api"]):
                api = _load(bench, "api", api_port, f"/v1/pipelines/{pipeline_id}")
            http = _load(bench, FLOORS, floor_port, floors.HTTP_PATH)
            sql = _load(bench, FLOORS, floor_port, sql_path)
            _add_load_figures(bench, f"GET pipeline, {label}", label, api)
            figures = bench.figures
            figures.add(
                SCENARIO, f"HTTP floor (bare Starlette route), {label}", "requests/s", http.rate
            )
            figures.add(
                SCENARIO,
                f"HTTP + SQL floor (the route reading one row), {label}",
                "requests/s",
                sql.rate,
            )
            figures.add(
                SCENARIO,
                "GET pipeline ÷ HTTP + SQL floor, requests/s, 1 worker",
                "×",
                api.rate / sql.rate,
                target=f"≥ {FLOOR_RATIO_TARGET}",
                check=(">=", FLOOR_RATIO_TARGET),
            )
    finally:
        stack.stop(FLOORS)


def _load(bench: Bench, name: str, port: int, path: str) -> LoadResult:
    plan = bench.plan
    result = generate_load(port, path, bench.stack.token, plan.load_connections, plan.load_seconds)
    if result.errors or not result.latencies:
        raise RuntimeError(f"{name}: {result.errors} failed requests on {path}")
    return result


def _add_load_figures(bench: Bench, rate_name: str, label: str, result: LoadResult) -> None:
    ms = 1000.0
    figures = bench.figures
    figures.add(SCENARIO, rate_name, "requests/s", result.rate)
    figures.add(SCENARIO, f"p50, {label}", "ms", percentile(result.latencies, 50) * ms)
    figures.add(SCENARIO, f"p99, {label}", "ms", percentile(result.latencies, 99) * ms)
