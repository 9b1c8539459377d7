"""Stored artifacts are read-only, and a tampered one is refused at the run stage."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

from tests.conftest import commit_file
from tests.integration.stack import Stack, fetch


def test_a_tampered_artifact_is_refused_naming_both_digests(
    distributed: Stack, hello_repo: Path
) -> None:
    app = f"tamper-{uuid.uuid4().hex[:8]}"
    # No standby: the rollback starts v1 anew, from its stored artifact (a warm one would take
    # v1's processes, started from it before it was tampered with, back).
    distributed.create_app(app, hello_repo, envs=("staging",), standby_seconds=0)
    first = distributed.deploy(app, "staging")
    commit_file(hello_repo, "VERSION", "2\n")
    second = distributed.deploy(app, "staging")
    assert first["status"] == second["status"] == "succeeded"
    stored = (
        distributed.data_dir
        / "artifacts"
        / "sha256"
        / f"{first['artifact_id'].removeprefix('sha256:')}.tar.gz"
    )
    assert stat.S_IMODE(stored.stat().st_mode) == 0o444  # read-only once stored
    stored.chmod(0o644)
    with stored.open("ab") as handle:
        handle.write(b"tampered")

    pipeline = distributed.api(
        "POST", f"/v1/apps/{app}/environments/staging/rollback", 202, json={"to_version": 1}
    )
    done = distributed.wait_pipeline(pipeline["id"])

    assert done["status"] == "failed"
    error = next(s for s in done["stages"] if s["name"] == "run")["error"]
    assert f"expected {first['artifact_id']}" in error
    assert "found sha256:" in error and "refusing to run it" in error
    assert distributed.current(app, "staging")["release"]["id"] == second["release_id"]
    assert fetch(distributed.web_url(app, "staging")) == "Hello from Shipyard"
