"""30 pipelines at once on each of 3 environments: numbering, one live, order (noop drivers)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.stack import Stack

PIPELINES_PER_ENVIRONMENT = 30
ENVIRONMENTS = ("alpha", "beta", "gamma")


@pytest.mark.timeout(600)
def test_thirty_pipelines_per_environment_in_three_environments_at_once(
    distributed: Stack, hello_repo: Path
) -> None:
    app = f"race-{uuid.uuid4().hex[:8]}"
    distributed.api(
        "POST", "/v1/apps", 201, json={"name": app, "repo": str(hello_repo), "builder": "noop"}
    )
    for env in ENVIRONMENTS:
        distributed.api(
            "POST", f"/v1/apps/{app}/environments", 201, json={"name": env, "runner": "noop"}
        )
    requests = [env for _ in range(PIPELINES_PER_ENVIRONMENT) for env in ENVIRONMENTS]

    with ThreadPoolExecutor(max_workers=8) as pool:
        started = list(pool.map(lambda env: (env, distributed.start_pipeline(app, env)), requests))
    finished = {pid: distributed.wait_pipeline(pid, timeout=300) for _, pid in started}

    assert [p["status"] for p in finished.values()] == ["succeeded"] * len(requests)
    for env in ENVIRONMENTS:
        releases = distributed.api("GET", f"/v1/apps/{app}/environments/{env}/releases", 200)
        versions = sorted(r["version"] for r in releases)
        assert versions == list(range(1, PIPELINES_PER_ENVIRONMENT + 1))  # no gap, no duplicate
        by_pipeline = {r["pipeline_id"]: r["version"] for r in releases}
        created = sorted((finished[pid]["created_at"], pid) for e, pid in started if e == env)
        assert [by_pipeline[pid] for _, pid in created] == versions  # in creation order
        deployments = distributed.api(
            "GET", f"/v1/apps/{app}/environments/{env}/deployments?limit=1000", 200
        )
        assert [d["status"] for d in deployments].count("live") == 1
        in_switch_order = sorted(deployments, key=lambda d: d["started_at"])
        assert [d["release_version"] for d in in_switch_order] == versions
        assert distributed.current(app, env)["release"]["version"] == PIPELINES_PER_ENVIRONMENT
