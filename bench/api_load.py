"""6. API under load: `GET /v1/pipelines/{id}` from a load generator on loopback.

One extra `shipyard api --workers W` per worker count, against the same store; the load
generator (bench.loadgen, in the harness process: it shares the 2 cores) keeps C keep-alive
connections busy for T seconds. Figures: successful requests/s, and p50/p99 latency.
"""

from __future__ import annotations

from bench.context import Bench
from bench.loadgen import generate_load
from bench.profiling import profiled
from bench.stack import free_port
from bench.stats import percentile

SCENARIO = "6. API under load"


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
    path = f"/v1/pipelines/{_a_pipeline(bench)}"
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
            for _ in range(plan.repetitions):
                with profiled(stack, bench.profile_dir, f"load-{workers}", [name]):
                    result = generate_load(port, path, stack.token, connections, plan.load_seconds)
                if result.errors or not result.latencies:
                    raise RuntimeError(f"{name}: {result.errors} failed requests")
                label = f"{workers} uvicorn worker{'s' if workers > 1 else ''}, {connections} conns"
                ms = 1000.0
                figures = bench.figures
                figures.add(SCENARIO, f"GET pipeline, {label}", "requests/s", result.rate)
                figures.add(SCENARIO, f"p50, {label}", "ms", percentile(result.latencies, 50) * ms)
                figures.add(SCENARIO, f"p99, {label}", "ms", percentile(result.latencies, 99) * ms)
        finally:
            if workers > 1:
                stack.stop(name)
