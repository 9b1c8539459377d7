"""The serving scenario's smoke run: the router, a small app, deploys and rollbacks under load.

It starts the real stack and `shipyard router` (HAProxy) on real Redis and PostgreSQL, runs the
scenario at its smoke sizes and checks the figures' shape and sanity, not their values.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, fresh_database

pytestmark = pytest.mark.integration

TARGETS = {
    "rollback until the stable URL serves it, p50",
    "failed requests meanwhile (connection error or non-2xx)",
    "router's added latency, p50",
}
# A count that is 0 when all goes well, and a difference of two tails that noise can flip.
MAY_BE_ZERO_OR_LESS = {
    "failed requests meanwhile (connection error or non-2xx)",
    "router's added latency, p99",
}


@pytest.mark.timeout(90)
def test_the_serving_smoke_run_reports_switches_drains_and_the_routers_latency(
    redis_url: str, broker_namespace: str, postgres_server: str, tmp_path: Path
) -> None:
    figures_file = tmp_path / "figures.json"
    with fresh_database(postgres_server) as database_url:
        completed = subprocess.run(
            [
                sys.executable, "-m", "bench", "--smoke", "--only", "serving",
                "--redis-url", redis_url,
                "--namespace", f"{broker_namespace}-bench-{uuid.uuid4().hex[:6]}",
                "--postgres-dsn", postgres_server,
                "--database-url", database_url,
                "--json", str(figures_file),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=80,
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-5000:]

    figures = json.loads(figures_file.read_text())["figures"]
    assert {f["scenario"] for f in figures} == {"7. Serving"}
    by_name = {f["name"]: f for f in figures}
    for figure in figures:
        assert len(figure["values"]) == 1, figure  # one repetition
        if figure["name"] not in MAY_BE_ZERO_OR_LESS:
            assert figure["median"] > 0, figure
    assert {f["name"] for f in figures if f["target"]} == TARGETS
    assert all(by_name[name]["met"] in (True, False) for name in TARGETS)
    # The router is one more hop on the same path: it cannot answer faster at the median.
    assert (
        by_name["GET through the router, p50"]["median"]
        > by_name["GET straight to the web process, p50"]["median"]
    )
    # The run stage's parts are inside the wait that the rollback figure times from the API.
    parts = [
        "rollback, of which run stage started → live in the store (start, health), p50",
        "rollback, of which live in the store → router switched, p50",
    ]
    assert (
        sum(by_name[name]["median"] for name in parts)
        < by_name["rollback until the stable URL serves it, p50"]["median"]
    )
    assert (
        by_name["requests to the stable URL meanwhile (4 keep-alive clients + the probe)"]["median"]
        >= 10
    )
