"""3. Cache hit: the build stage of a commit already built, against that commit's first build.

The app uses the local builder on examples/hello (its build command runs on the first build);
the environment uses the noop runner, so each pipeline ends quickly. Figures are the build
stage's own duration as its worker recorded it (stage_run.started_at → finished_at).
"""

from __future__ import annotations

from bench.context import Bench
from bench.stats import percentile

SCENARIO = "3. Cache hit"
APP = "cached"
ENV = "cache"


def build_stage(bench: Bench, pipeline_id: str) -> tuple[float, bool]:
    """(seconds, cache hit) of a pipeline's build stage."""
    row = bench.stack.db.execute(
        "SELECT EXTRACT(EPOCH FROM finished_at - started_at), cache_hit FROM stage_run"
        " WHERE pipeline_id = %s AND name = 'build'",
        (pipeline_id,),
    ).fetchone()
    assert row is not None
    return float(row[0]), bool(row[1])


def _deploy(bench: Bench, ref: str) -> tuple[float, bool]:
    pipeline_id = bench.stack.start_pipeline(APP, ENV, ref)
    bench.stack.wait_pipeline(pipeline_id)
    return build_stage(bench, pipeline_id)


def run(bench: Bench) -> None:
    bench.create_app(APP, "local")
    bench.create_environments(APP, [ENV], runner="noop")
    _deploy(bench, bench.commits.next())  # the worker's first local build: imports, caches
    for _ in range(bench.plan.repetitions):
        first: list[float] = []
        again: list[float] = []
        for _ in range(bench.plan.cache_samples):
            sha = bench.commits.next()
            seconds, hit = _deploy(bench, sha)
            assert not hit, "a new commit was a cache hit"
            first.append(seconds)
            seconds, hit = _deploy(bench, sha)
            assert hit, "the same commit again was not a cache hit"
            again.append(seconds)
        ms = 1000.0
        bench.figures.add(
            SCENARIO, "build stage p50, first build", "ms", percentile(first, 50) * ms
        )
        bench.figures.add(
            SCENARIO,
            "build stage p50, commit already built",
            "ms",
            percentile(again, 50) * ms,
            target="< 50 ms",
            check=("<=", 50.0),
        )
