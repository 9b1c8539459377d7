"""The router's request log end to end: a request through a real router (its own process, as on
a run host) becomes a `router:` line of `logs`, read by the API from the broker's Redis, and
`logs --tail` prints a new request's line as it comes."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.stack import SHIPYARD, Stack
from tests.integration.traffic import router_client


def router_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("router: ")]


def wait_for(condition: Callable[[], bool], what: str, stack: Stack, timeout: float = 60) -> None:
    """Poll `condition`; on timeout fail with what was awaited and the end of the router's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what}; the router's log ends:\n"
        + stack.log_path("router").read_text()[-3000:]
    )


@pytest.mark.timeout(300)
def test_a_request_through_the_router_is_a_router_line_of_logs_and_of_logs_tail(
    distributed: Stack, hello_repo: Path
) -> None:
    app = f"routed-{uuid.uuid4().hex[:8]}"
    distributed.create_app(app, hello_repo, envs=("staging",))
    assert distributed.deploy(app, "staging")["status"] == "succeeded"
    url = distributed.current(app, "staging")["url"]
    logs = f"/v1/apps/{app}/environments/staging/logs"
    with router_client(url) as http:
        assert http.get("/first/page?token=s3cret").status_code == 200

    def first_line() -> list[str]:
        text = distributed.client.get(logs, params={"lines": 50}).text
        return [line for line in router_lines(text) if 'path="/first/page"' in line]

    wait_for(lambda: bool(first_line()), "the request's router line", distributed)
    (line,) = first_line()
    assert line.startswith('router: at=info method=GET path="/first/page" host=staging.')
    assert " dyno=web.1 " in line and " status=200 " in line
    assert "s3cret" not in line and "token" not in line  # the query string is never logged
    only = distributed.client.get(logs, params={"process": "router", "lines": 50}).text
    assert only.splitlines() == router_lines(only) and line in only.splitlines()

    output = distributed.log_path(f"logs-tail-{app}")
    env = {**distributed.env, "SHIPYARD_URL": distributed.url, "SHIPYARD_TOKEN": distributed.token}
    with output.open("wb") as sink:
        tail = subprocess.Popen(
            [SHIPYARD, "logs", "-a", app, "-e", "staging", "--tail", "-n", "5"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        wait_for(lambda: 'path="/first/page"' in output.read_text(), "the first lines", distributed)
        with router_client(url) as http:
            assert http.post("/").status_code == 501  # hello answers GET only

        wait_for(
            lambda: any(
                'method=POST path="/"' in line and " status=501 " in line
                for line in router_lines(output.read_text())
            ),
            "the new request's router line in logs --tail",
            distributed,
        )
    finally:
        tail.kill()
        tail.wait()
