"""`shipyard apps destroy` on a real stack: its processes stop and its URL stops answering within
seconds, its name is free again, and a new app of that name serves at the same URL."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from shipyard.shared import processes
from tests.integration.stack import Stack
from tests.integration.traffic import router_client


def _wait(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _status(url: str) -> int:
    with router_client(url, timeout=5) as client:
        return client.get("/").status_code


def test_a_destroyed_app_stops_and_its_name_serves_a_new_app(
    distributed: Stack, hello_repo: Path
) -> None:
    app = f"gone-{uuid.uuid4().hex[:6]}"
    distributed.create_app(app, hello_repo, envs=("staging",))
    assert distributed.deploy(app, "staging")["status"] == "succeeded"
    pids = [int(p["pid"]) for p in distributed.current(app, "staging")["processes"]]
    url = distributed.api("GET", f"/v1/apps/{app}/environments", 200)[0]["url"]
    assert _status(url) == 200

    refused = distributed.run_cli("apps", "destroy", app, "--confirm", "not-it", check=False)
    destroyed = distributed.run_cli("apps", "destroy", app, "--confirm", app)

    assert refused.returncode != 0 and "confirm with its name" in refused.stderr + refused.stdout
    assert destroyed.returncode == 0, destroyed.stderr
    assert f"Destroyed {app} (staging): 1 live release(s) stop" in destroyed.stdout
    _wait(
        lambda: not any(processes.is_alive(pid, None) for pid in pids),
        f"the router's supervision to stop {app}'s processes {pids}",
    )
    _wait(lambda: _status(url) == 404, f"the router to forget {url}'s host name")
    distributed.api("GET", f"/v1/apps/{app}", 404)

    distributed.create_app(app, hello_repo, envs=("staging",))
    assert distributed.deploy(app, "staging")["status"] == "succeeded"
    assert _status(url) == 200
