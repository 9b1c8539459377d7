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


# What `shipyard ps` runs with: only its command is imported and built, and no value of its
# options goes through pydantic.
PS_RUN = """\
import json, sys
sys.argv = ["shipyard", "ps", "--app", "web", "--env", "production"]
from shipyard.cli.main import main
try:
    main()
except SystemExit as exited:
    print(json.dumps({"code": exited.code, "modules": sorted(sys.modules)}))
"""
OTHER_COMMANDS = (
    "shipyard.cli.deploy",
    "shipyard.cli.one_offs",
    "shipyard.cli.operations",
    "shipyard.cli.server",
    "shipyard.cli.tokens",
    "shipyard.cli.triggers",
)


def test_shipyard_ps_imports_its_command_alone_and_no_servers_library() -> None:
    # Nothing listens on port 1: the command gets as far as its request, which fails at once.
    environment = {
        "PATH": "/usr/bin:/bin",
        "SHIPYARD_URL": "http://127.0.0.1:1",
        "SHIPYARD_TOKEN": "unused",
    }
    completed = subprocess.run(
        [sys.executable, "-c", PS_RUN],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    ran = json.loads(completed.stdout)
    assert ran["code"] == 1 and "cannot reach Shipyard" in completed.stderr
    imported = set(ran["modules"])
    assert "httpx" in imported and "shipyard.cli.inspection" in imported
    unwanted = SERVERS_ONLY + OTHER_COMMANDS
    assert (
        sorted(m for m in imported if any(m == u or m.startswith(f"{u}.") for u in unwanted)) == []
    )
