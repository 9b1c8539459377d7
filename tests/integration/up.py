"""`shipyard up` for integration tests: (re)started on a stack's data dir and waited for."""

from __future__ import annotations

import time
from collections.abc import Callable

from shipyard.serve.embedded import READY
from tests.integration.stack import Stack

UpFactory = Callable[..., Stack]


def restart_up(stack: Stack) -> None:
    """(Re)start `shipyard up` on the stack's data dir and port; wait until it is ready."""
    log = stack.log_path("up")
    start = log.stat().st_size if log.exists() else 0  # the log is appended to
    port, router_port = stack.url.rsplit(":", 1)[1], stack.env["SHIPYARD_ROUTER_PORT"]
    # The router's port as a user gives it (the stack's environment names it too, for its other
    # processes).
    stack.spawn("up", "up", "--port", port, "--router-port", router_port)
    wait_for(lambda: READY in log.read_text()[start:], "`shipyard up` to be ready", stack)
    stack.token = (stack.data_dir / "admin-token").read_text().strip()
    stack.client.headers["Authorization"] = f"Bearer {stack.token}"


def wait_for(condition: Callable[[], bool], what: str, stack: Stack, timeout: float = 90) -> None:
    """Poll `condition`; on timeout fail with what was awaited and the end of `up`'s log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what}; up's log ends:\n"
        + stack.log_path("up").read_text()[-3000:]
    )
