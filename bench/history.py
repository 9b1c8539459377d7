"""5. History query: `GET …/history?at=` over many deployments of one environment.

The deployments are written straight into PostgreSQL (one release per 100 deployments, one
deployment a minute, the last one live), then ANALYZEd. Each query asks for a random instant
within that history, one request at a time on a keep-alive connection; the figure is the
request's wall time seen by the client, over loopback HTTP.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from bench.context import Bench
from bench.profiling import profiled
from bench.stats import percentile

SCENARIO = "5. History query"
APP = "history"
ENV = "production"
BASE = datetime(2020, 1, 1, tzinfo=UTC)
DEPLOYMENTS_PER_RELEASE = 100


# The deployment part of shared.services.history.live_at's one query (ix_deployment_history
# serves it).
LIVE_AT_SQL = (
    "SELECT * FROM deployment WHERE environment_id = %s AND started_at IS NOT NULL"
    " AND started_at <= %s ORDER BY started_at DESC LIMIT 1"
)


def _environment_id(bench: Bench) -> object:
    row = bench.stack.db.execute(
        "SELECT e.id FROM environment e JOIN app a ON a.id = e.app_id"
        " WHERE a.name = %s AND e.name = %s",
        (APP, ENV),
    ).fetchone()
    assert row is not None
    return row[0]


def seed(bench: Bench, deployments: int) -> None:
    """Write `deployments` deployments of APP/ENV into the store."""
    db = bench.stack.db
    env_id = _environment_id(bench)
    config = db.execute(
        "SELECT id FROM config_version WHERE environment_id = %s", (env_id,)
    ).fetchone()
    assert config is not None
    artifact = "sha256:" + "0" * 64
    releases = max(1, deployments // DEPLOYMENTS_PER_RELEASE)
    params = {
        "env": env_id,
        "config": config[0],
        "artifact": artifact,
        "base": BASE,
        "n": deployments,
        "releases": releases,
    }
    with db.transaction():
        db.execute(
            "INSERT INTO artifact (id, app_id, commit_sha, builder, size, location, procfile,"
            " created_at) SELECT %(artifact)s, app_id, repeat('0', 40), 'noop', 1, 'seeded',"
            " '{}', %(base)s FROM environment WHERE id = %(env)s",
            params,
        )
        db.execute(
            'INSERT INTO "release" (id, environment_id, version, artifact_id, config_version_id,'
            " cause, status, created_at) SELECT gen_random_uuid(), %(env)s, g, %(artifact)s,"
            " %(config)s, 'deploy', 'succeeded', %(base)s + g * interval '1 minute'"
            " FROM generate_series(1, %(releases)s) AS g",
            params,
        )
        db.execute(
            "INSERT INTO deployment (id, environment_id, release_id, cause, status, processes,"
            " created_at, started_at, ended_at)"
            " SELECT gen_random_uuid(), %(env)s, r.id, 'deploy',"
            " CASE WHEN g = %(n)s THEN 'live' ELSE 'superseded' END, '[]',"
            " %(base)s + g * interval '1 minute', %(base)s + g * interval '1 minute',"
            " CASE WHEN g = %(n)s THEN NULL ELSE %(base)s + (g + 1) * interval '1 minute' END"
            ' FROM generate_series(1, %(n)s) AS g JOIN "release" r'
            " ON r.environment_id = %(env)s AND r.version = (g - 1) %% %(releases)s + 1",
            params,
        )
    db.execute("ANALYZE deployment")
    db.execute('ANALYZE "release"')


def run(bench: Bench) -> None:
    stack, plan = bench.stack, bench.plan
    bench.create_app(APP, "noop")
    bench.create_environments(APP, [ENV], runner="noop")
    seed(bench, plan.history_deployments)
    path = f"/v1/apps/{APP}/environments/{ENV}/history"
    headers = {"Authorization": f"Bearer {stack.token}"}
    chooser = random.Random(20261124)
    minutes = plan.history_deployments

    def query() -> float:
        at = BASE + timedelta(minutes=chooser.uniform(1.5, minutes + 0.5))
        started = time.perf_counter()
        response = stack.client.get(
            f"{stack.api_url}{path}", params={"at": at.isoformat()}, headers=headers
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"history?at={at.isoformat()}: {response.status_code}")
        return elapsed

    def floor() -> float:
        started = time.perf_counter()
        response = stack.client.get(f"{stack.api_url}/health")
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        return elapsed

    def sql_alone() -> float:
        at = BASE + timedelta(minutes=chooser.uniform(1.5, minutes + 0.5))
        started = time.perf_counter()
        stack.db.execute(LIVE_AT_SQL, (environment_id, at)).fetchone()
        return time.perf_counter() - started

    environment_id = _environment_id(bench)
    for _ in range(20):  # warm-up: connection, plans, caches
        query()
        floor()
        sql_alone()
    for _ in range(plan.repetitions):
        # The query and its floor alternate, sample by sample, so that both see the same
        # machine (a drift between two phases would show as a ratio).
        samples, floors = [], []
        # The profile (--profile) holds the /health requests' samples too: tell them apart by
        # their route.
        with profiled(stack, bench.profile_dir, "history", ["api"]):
            for _ in range(plan.history_queries):
                samples.append(query())
                floors.append(floor())
        name = f"{plan.history_deployments:,} deployments"
        history_p50, floor_p50 = percentile(samples, 50), percentile(floors, 50)
        bench.figures.add(
            SCENARIO,
            f"history?at= p50, {name}",
            "ms",
            history_p50 * 1000,
            target="< 5 ms",
            check=("<=", 5.0),
        )
        bench.figures.add(
            SCENARIO, f"history?at= p90, {name}", "ms", percentile(samples, 90) * 1000
        )
        alone = [sql_alone() for _ in range(plan.history_queries)]
        bench.figures.add(
            SCENARIO,
            f"its deployment lookup alone (SQL), p50, {name}",
            "ms",
            percentile(alone, 50) * 1000,
        )
        bench.figures.add(
            SCENARIO,
            "GET /health p50 (the API's floor: no auth, SELECT 1)",
            "ms",
            floor_p50 * 1000,
        )
        bench.figures.add(
            SCENARIO,
            f"history?at= p50 ÷ GET /health p50, {name}",
            "×",
            history_p50 / floor_p50,
            target="≤ 1.5×",
            check=("<=", 1.5),
        )
