"""Server commands refuse to start, with a clear message, when what they need is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

# Each test starts `shipyard` in a new interpreter: seconds each.
pytestmark = pytest.mark.slow

SHIPYARD = str(Path(sys.executable).parent / "shipyard")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    return subprocess.run(
        [SHIPYARD, *args], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


DISTRIBUTED = {
    "SHIPYARD_SECRET_KEY": Fernet.generate_key().decode(),
    "SHIPYARD_ADMIN_TOKEN": "a-long-enough-admin-token",
}


@pytest.mark.parametrize("command", [["worker", "build"], ["api"]])
def test_an_unreachable_database_is_refused_clearly(tmp_path: Path, command: list[str]) -> None:
    result = _run(
        *command,
        SHIPYARD_DATA_DIR=str(tmp_path),
        SHIPYARD_BROKER_URL="redis://127.0.0.1:6379/15",
        SHIPYARD_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none",
        **DISTRIBUTED,
    )

    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_broker_is_refused_clearly(tmp_path: Path) -> None:
    result = _run(
        "worker",
        "release",
        SHIPYARD_DATA_DIR=str(tmp_path),
        SHIPYARD_BROKER_URL="redis://127.0.0.1:9/0",
        SHIPYARD_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        **DISTRIBUTED,
    )

    assert result.returncode == 1
    assert "cannot reach the broker" in result.stderr


def test_distributed_mode_without_a_secret_key_is_refused(tmp_path: Path) -> None:
    result = _run("worker", "run", SHIPYARD_BROKER_URL="redis://127.0.0.1:6379/15")

    assert result.returncode == 1
    assert "SHIPYARD_SECRET_KEY is required in distributed mode" in result.stderr


def test_an_unknown_queue_is_refused(tmp_path: Path) -> None:
    result = _run("worker", "deploy", SHIPYARD_DATA_DIR=str(tmp_path))

    assert result.returncode == 1
    assert "unknown queue 'deploy'" in result.stderr
