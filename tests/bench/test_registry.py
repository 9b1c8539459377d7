"""The registry scenario's smoke run: pushes, pulls and a cache hit against a real registry, and
the build farm on a second stack whose artifact store is that registry.

It runs `python -m bench --smoke --only registry` on real Redis and PostgreSQL with Debian's
`docker-registry`, checks the figures' shape and the invariants a cache hit must keep (no
request, no byte from the registry), and that the harness left no process behind: everything
it starts inherits TMPDIR, pointed at this test's folder, so a survivor is found by it (and
killed, whatever the test's outcome).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench import registry
from tests.conftest import REPO_ROOT, REQUIRE_SERVICES, fresh_database

pytestmark = pytest.mark.integration

SCENARIO = "8. Artifacts through a registry"
TARGETS = {
    "push throughput ratio, put / plain upload",
    "pull throughput ratio, fetch / plain GET",
    "second fetch (cache hit): requests to the registry",
    "second fetch (cache hit): bytes the registry wrote (sockets, files)",
    "build farm: efficiency, K = 2 (of linear)",
}
NO_TRANSFER = {
    "second fetch (cache hit): requests to the registry",
    "second fetch (cache hit): bytes the registry wrote (sockets, files)",
}
SMOKE_FARM_BUILDS = 1 * (1 + 1) + 2 * (1 + 1)  # K = 1, 2; a warm-up and one round of each


def _require_registry() -> None:
    if not registry.available():
        message = f"{registry.BINARY} is not installed (apt-get install docker-registry)"
        if REQUIRE_SERVICES:
            pytest.fail(message + "; SHIPYARD_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)


def processes_mentioning(marker: str) -> list[int]:
    """Pids of live processes whose command line or environment contains `marker`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker.encode() in seen:
            found.append(int(proc.name))
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.timeout(170)
def test_the_registry_smoke_run_reports_transfers_a_cache_hit_without_network_and_the_farm(
    redis_url: str, broker_namespace: str, postgres_server: str, tmp_path: Path
) -> None:
    _require_registry()
    work = tmp_path / "work"  # the harness's TMPDIR: its work folder, registry and stacks
    work.mkdir()
    figures_file = tmp_path / "figures.json"
    try:
        with fresh_database(postgres_server) as database_url:
            completed = subprocess.run(
                [
                    sys.executable, "-m", "bench", "--smoke", "--only", "registry",
                    "--redis-url", redis_url,
                    "--namespace", f"{broker_namespace}-bench-{uuid.uuid4().hex[:6]}",
                    "--postgres-dsn", postgres_server,
                    "--database-url", database_url,
                    "--json", str(figures_file),
                ],
                cwd=REPO_ROOT,
                env={**os.environ, "TMPDIR": str(work)},
                capture_output=True,
                text=True,
                timeout=160,
            )  # fmt: skip
        left = processes_mentioning(str(work))
    finally:
        _kill(processes_mentioning(str(work)))
    assert completed.returncode == 0, completed.stderr[-5000:]
    assert left == [], "the harness left processes behind"

    figures = json.loads(figures_file.read_text())["figures"]
    assert {f["scenario"] for f in figures} == {SCENARIO}
    by_name = {f["name"]: f for f in figures}
    for figure in figures:
        assert len(figure["values"]) == 1, figure  # one repetition
        if figure["name"] not in NO_TRANSFER:
            assert figure["median"] > 0, figure
    assert {f["name"] for f in figures if f["target"]} == TARGETS
    assert all(by_name[name]["met"] in (True, False) for name in TARGETS)
    # A cache hit is not a matter of noise: no request, not a byte from the registry.
    for name in NO_TRANSFER:
        assert by_name[name]["median"] == 0 and by_name[name]["met"] is True, by_name[name]
    # ... while the first fetch, through the same counting transport, received the whole blob.
    assert by_name["first fetch: bytes received from the registry"]["median"] == 2.0
    assert {
        "push 2 MB, RegistryStore.put",
        "push 2 MB, plain HTTP upload (POST, PUT ?digest=)",
        "pull 2 MB into an empty cache, RegistryStore.fetch (verified)",
        "pull 2 MB, plain HTTP GET to a file",
        "build farm: throughput, K = 1",
        "build farm: throughput, K = 2",
    } <= set(by_name)
    farm = "build farm: artifacts pushed to the registry, and pulled by the run pool"
    assert by_name[farm]["median"] == SMOKE_FARM_BUILDS
