"""The CLI's entry module imports what a client needs (typer, rich; httpx once it calls the API),
none of the servers' libraries: a client command starts about as fast as Python with httpx (bench
scenario 11)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT

# What the servers need and a client never does. Each costs tens to hundreds of milliseconds
# at every `shipyard ps` when imported.
SERVERS_ONLY = (
    "alembic",
    "celery",
    "cryptography",
    "fastapi",
    "kombu",
    "prometheus_client",
    "pydantic",
    "pydantic_settings",
    "redis",
    "sqlalchemy",
    "sqlmodel",
    "structlog",
    "uvicorn",
    "shipyard.shared.settings",
    "shipyard.shared.schemas",
)


def test_importing_the_cli_pulls_in_none_of_the_servers_libraries() -> None:
    program = "import json, sys, shipyard.cli.main; print(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    imported = set(json.loads(completed.stdout))
    assert "typer" in imported and "shipyard.cli.client" in imported  # it did import the CLI
    servers = [m for m in imported if any(m == s or m.startswith(f"{s}.") for s in SERVERS_ONLY)]
    assert sorted(servers) == []
