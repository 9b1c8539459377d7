"""`shipyard run`: a one-off command in the live release, on a real stack (API, pools, the run
host's agent), through the CLI: its output as it is printed, its exit code, its record."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.integration.stack import Stack

pytestmark = pytest.mark.integration


def test_a_one_off_runs_in_the_release_with_its_config_storage_and_exit_code(
    distributed: Stack, hello_repo: Path
) -> None:
    app = f"oneoff-{uuid.uuid4().hex[:8]}"
    secret = f"pw-{uuid.uuid4().hex}"
    distributed.create_app(app, hello_repo, envs=("production",))
    distributed.patch_config(
        app,
        "production",
        {"vars": {"GREETING": "hi there", "DB_PASSWORD": secret}, "secrets": ["DB_PASSWORD"]},
    )
    assert distributed.deploy(app, "production")["status"] == "succeeded"
    script = (
        'echo "greeting: $GREETING"; echo "password: $DB_PASSWORD"; '
        'echo made-by-run > "$SHIPYARD_STORAGE_DIR/init"; exit 3'
    )

    ran = distributed.run_cli("run", "-a", app, "-e", "production", "--", script, check=False)
    again = distributed.run_cli(
        "run", "-a", app, "-e", "production", "--", "cat", "$SHIPYARD_STORAGE_DIR/init", check=False
    )
    timed_out = distributed.run_cli(
        "run", "-a", app, "-e", "production", "--timeout", "1", "--", "sleep 60", check=False
    )
    listed = distributed.run_cli("runs", "-a", app, "-e", "production")

    assert ran.returncode == 3, ran.stderr
    assert ran.stdout.splitlines() == ["greeting: hi there", "password: <redacted>"]
    assert f"in {app}/production v1" in ran.stderr
    # Quoted by the CLI as one word each: `cat '$SHIPYARD_STORAGE_DIR/init'` finds no such file.
    assert again.returncode == 1 and "No such file" in again.stdout
    assert timed_out.returncode == 124 and "killed at its timeout (1s)" in timed_out.stderr
    runs = distributed.api("GET", f"/v1/apps/{app}/environments/production/runs", 200)
    by_command = {r["command"]: r for r in runs}
    first = by_command[script]
    assert (first["status"], first["exit_code"], first["release_version"]) == ("failed", 3, 1)
    assert secret not in first["output"] and "password: <redacted>" in first["output"]
    assert by_command["sleep 60"]["status"] == "timed_out"
    assert "sleep 60" in listed.stdout and "timed_out" in listed.stdout
    stored = distributed.run_cli(
        "run", "-a", app, "-e", "production", "--", 'cat "$SHIPYARD_STORAGE_DIR/init"'
    )
    assert stored.stdout == "made-by-run\n"  # the environment's storage, as its processes see it
    rows = "".join(f"row {n}\n" for n in range(1000))
    piped = distributed.run_cli(
        "run", "-a", app, "-e", "production", "--stdin", "--", "tail -n 2", input=rows
    )
    assert piped.stdout == "row 998\nrow 999\n"
