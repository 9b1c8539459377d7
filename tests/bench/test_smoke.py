"""The benchmark harness's smoke run (tiny sizes, one repetition), so that it cannot rot.

It starts the real stack (API, three pools, the raw Celery baseline) on real Redis and
PostgreSQL, runs every scenario and checks the figures' shape and sanity, not their values.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench import registry
from tests.conftest import REPO_ROOT, fresh_database

pytestmark = pytest.mark.integration

SCENARIOS = {
    "1. Pipeline overhead",
    "2. Rollback",
    "3. Cache hit",
    "4. Build farm",
    "5. History query",
    "6. API under load",
    "7. Serving",
    "9. Run hosts",
    "10. Code-only deploy",
    "11. CLI start-up",
    "12. HTTPS",
    "13. Progressive delivery",
}
# Scenario 8 needs Debian's docker-registry; without it the harness skips it (and
# tests/bench/test_registry.py says so).
REGISTRY = "8. Artifacts through a registry"
# Counts that are 0 when all goes well, and a difference of two tails that noise can flip.
MAY_BE_ZERO_OR_LESS = {
    "failed requests meanwhile (connection error or non-2xx)",
    "router's added latency, p99",
    "second fetch (cache hit): requests to the registry",
    "second fetch (cache hit): bytes the registry wrote (sockets, files)",
    "1 host: failed requests during the switches",
    "2 hosts: failed requests during the switches",
    # The deploy less the app's own parts timed apart: noise could make it so.
    "Shipyard's part: deploy p50 less the app's release command and start-up",
    "shipyard --help less the floor, p50",
    "shipyard ps less the floor, p50",
    "shipyard ps less the same GET from plain Python, p50",
    "router's added latency over HTTPS (HTTPS less direct), p99",
    "router's added latency over HTTP (HTTP less direct), p50",
    "router's added latency over HTTP (HTTP less direct), p99",
    # Progressive delivery: failures are 0 when all goes well; the part of an abort after the
    # breach is decided is a difference of two clocks' readings, which noise can flip.
    "canary abort: failed requests the canary did not answer",
    "warm rollback: failed requests (connection error or non-2xx)",
    "cold rollback: failed requests (connection error or non-2xx)",
    "canary abort, of which breach decided → no request to the canary",
    # The router serves the release before the store records the switch (a drain in between):
    # the first answer may come first.
    "warm rollback: router switched → first answer of the release, p50",
    "cold rollback: router switched → first answer of the release, p50",
}


@pytest.mark.timeout(400)
def test_the_smoke_run_produces_a_positive_median_for_every_figure(
    redis_url: str, broker_namespace: str, postgres_server: str, tmp_path: Path
) -> None:
    report = tmp_path / "benchmarks.md"
    figures_file = tmp_path / "figures.json"
    with fresh_database(postgres_server) as database_url:
        completed = subprocess.run(
            [
                sys.executable, "-m", "bench", "--smoke",
                "--redis-url", redis_url,
                "--namespace", f"{broker_namespace}-bench-{uuid.uuid4().hex[:6]}",
                "--postgres-dsn", postgres_server,
                "--database-url", database_url,
                "--out", str(report),
                "--json", str(figures_file),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=390,
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-5000:]

    figures = json.loads(figures_file.read_text())["figures"]
    expected = SCENARIOS | {REGISTRY} if registry.available() else SCENARIOS
    assert {f["scenario"] for f in figures} == expected
    for figure in figures:
        assert len(figure["values"]) == 1, figure  # one repetition
        if figure["name"] not in MAY_BE_ZERO_OR_LESS:
            assert figure["median"] > 0, figure
        assert figure["min"] <= figure["median"] <= figure["max"], figure
    by_name = {f["name"]: f for f in figures}
    # Stages hand over through Redis: a pipeline cannot beat the raw chain it is built on.
    assert (
        by_name["latency p50, Shipyard, new commit"]["median"]
        > by_name["latency p50, raw chain"]["median"]
    )
    assert by_name["build stage p50, commit already built"]["met"] is not None
    targets = [f for f in figures if f["target"]]
    assert len(targets) >= 5 and all(f["met"] in (True, False) for f in targets)

    text = report.read_text()
    assert "## Latest results" in text and "| 4. Build farm | throughput, K = 2 |" in text
