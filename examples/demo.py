"""`make demo`: embedded Shipyard end to end, through the CLI, in a throw-away data dir.

Starts `shipyard up`, deploys examples/hello to staging, fetches the page at the environment's
stable URL (through the router), sets a config var (→ release v2 with the same artifact, at the
same URL), prints the releases, then stops everything it started.
Every wait is bounded: on a failure it says what it was waiting for, prints the end of the logs
and exits non-zero, keeping the data dir to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPYARD = str(Path(sys.executable).parent / "shipyard")
# The whole demo gets this long, even on a slow, busy machine (it takes ~20 s on a quiet one).
DEMO_SECONDS = 300.0
# Lines of each log shown when something went wrong.
LOG_TAIL_LINES = 15
# The first line of what `shipyard up` prints once it is ready (serve/embedded.py).
READY = "Shipyard is up"


class DemoFailed(Exception):
    """A step did not happen in time or went wrong: the message says what was awaited."""


class Demo:
    """The demo's processes, data dir and deadline."""

    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="shipyard-demo-"))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.deadline = time.monotonic() + DEMO_SECONDS
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")},
            "SHIPYARD_DATA_DIR": str(self.data_dir),
            "SHIPYARD_URL": self.url,
            "SHIPYARD_LOG_LEVEL": "WARNING",
            # The router on a free port: the demo never collides with whatever uses 8080.
            "SHIPYARD_ROUTER_PORT": str(free_port()),
            "SHIPYARD_LOG_FORMAT": "console",
        }
        self.up_log = self.data_dir / "up.log"
        self.server: subprocess.Popen[bytes] | None = None

    def remaining(self, what: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DemoFailed(f"the demo ran out of its {DEMO_SECONDS:.0f} s while {what}")
        return left

    def start(self) -> None:
        print(f"$ shipyard up --port {self.url.rsplit(':', 1)[1]}", flush=True)
        with self.up_log.open("wb") as output:
            self.server = subprocess.Popen(
                [SHIPYARD, "up", "--port", self.url.rsplit(":", 1)[1]],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        what = f"waiting for `shipyard up` to be ready at {self.url}"
        # `up` prints its summary once its API answers and its children are started.
        while READY not in self.up_log.read_text(errors="replace"):
            if self.server.poll() is not None:
                raise DemoFailed(f"`shipyard up` exited with {self.server.returncode} while {what}")
            time.sleep(min(0.2, self.remaining(what)))
        print(self.up_log.read_text().strip(), flush=True)

    def shipyard(self, *args: str, capture: bool = False) -> str:
        """Run one CLI command within the demo's time; its failure is the demo's."""
        what = f"running `shipyard {' '.join(args)}`"
        print(f"$ shipyard {' '.join(args)}", flush=True)
        try:
            result = subprocess.run(
                [SHIPYARD, *args],
                env=self.env,
                text=True,
                capture_output=capture,
                stdin=subprocess.DEVNULL,
                timeout=self.remaining(what),
            )
        except subprocess.TimeoutExpired:
            raise DemoFailed(f"the demo ran out of time while {what}") from None
        if result.returncode != 0:
            detail = (result.stderr or "").strip() if capture else "its output is above"
            raise DemoFailed(f"{what}: exit status {result.returncode} ({detail})")
        return result.stdout if capture else ""

    def current(self) -> dict[str, object]:
        output = self.shipyard("ps", "-a", "hello", "-e", "staging", "--json", capture=True)
        current: dict[str, object] = json.loads(output)
        return current

    def wait_for_version(self, version: int) -> dict[str, object]:
        what = f"waiting for release v{version} to go live"
        while True:
            current = self.current()
            release = current.get("release")
            if isinstance(release, dict) and release.get("version") == version:
                return current
            time.sleep(min(0.2, self.remaining(what)))

    def stop(self) -> int | None:
        if self.server is None:
            return None
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print("`shipyard up` did not stop within 60 s of SIGTERM; killing it", flush=True)
                self.server.kill()
                self.server.wait()
        return self.server.returncode

    def print_logs(self) -> None:
        """The end of `up`'s output and of each supervised process's log."""
        logs = [self.up_log, *sorted((self.data_dir / "logs").glob("*.log"))]
        for path in logs:
            if not path.is_file():
                continue
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            print(f"----- last {len(lines)} lines of {path}", file=sys.stderr)
            print("\n".join(lines), file=sys.stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str) -> str:
    """GET `url`; a `*.localhost` name goes to loopback with the name in the Host header, as a
    browser or curl does by itself (this machine's resolver may not know such names)."""
    parsed = urllib.parse.urlsplit(url)
    request = urllib.request.Request(url)
    if parsed.hostname and parsed.hostname.endswith(".localhost"):
        request = urllib.request.Request(
            f"http://127.0.0.1:{parsed.port}{parsed.path or '/'}", headers={"Host": parsed.netloc}
        )
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.read().decode().strip())


def stable_url(current: dict[str, object]) -> str:
    return str(current["url"])


def run(demo: Demo) -> None:
    demo.start()
    demo.shipyard("apps", "create", "hello", "--repo", str(ROOT), "--path", "examples/hello")
    demo.shipyard("envs", "create", "staging", "--app", "hello")
    demo.shipyard("deploy", "--app", "hello", "--env", "staging")
    url = stable_url(demo.wait_for_version(1))
    print(f"GET {url} → {fetch(url)!r}")
    demo.shipyard("config", "set", "GREETING=Hello from the demo", "-a", "hello", "-e", "staging")
    demo.wait_for_version(2)  # the config change released v2, same artifact, same URL
    print(f"GET {url} → {fetch(url)!r}")
    demo.shipyard("releases", "-a", "hello", "-e", "staging")


def main() -> None:
    demo = Demo()
    failure: str | None = None
    try:
        run(demo)
    except (DemoFailed, OSError) as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    code = demo.stop()
    if failure is None and code not in (0, -signal.SIGTERM):
        failure = f"`shipyard up` exited with {code} when stopped"
    if failure is not None:
        demo.print_logs()
        print(f"\ndemo FAILED: {failure}", file=sys.stderr)
        print(f"its data dir is kept for a look: {demo.data_dir}", file=sys.stderr)
        raise SystemExit(1)
    shutil.rmtree(demo.data_dir, ignore_errors=True)
    print("demo finished: everything it started is stopped")


if __name__ == "__main__":
    main()
